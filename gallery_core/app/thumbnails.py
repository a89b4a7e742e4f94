"""Small square JPEG thumbnails of catalogue photos, made once and kept on disk.

A thumbnail is cached under ``<run>/cache/ui-thumbnails/`` by a key of the photo's path, modification time,
size in bytes and the thumbnail size, so a changed photo gets a new thumbnail. Files are written
atomically (a temp file, then a rename), so concurrent app sessions never read a half-written one.
Photos are decoded by ``decode.decode_photo``, as the model's input is (EXIF orientation, colour modes, large
photos decoded reduced). A photo that is missing, too large or undecodable gets a grey placeholder, which is
not cached.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from gallery_core.artifacts.store import RunPaths, atomic_path, hash_key
from gallery_core.data.decode import PhotoError, PhotoTooLargeError, open_photo

logger = logging.getLogger(__name__)

SMALL_THUMBNAIL = 96
LARGE_THUMBNAIL = 256
JPEG_QUALITY = 85
PLACEHOLDER_GREY = (200, 200, 200)


def thumbnail_dir(run_root: str | Path) -> Path:
    return RunPaths(Path(run_root)).ui_thumbnails


def make_thumbnail(source: str | Path | bytes, size: int, *, name: str | None = None) -> bytes:
    """A ``size`` x ``size`` centre-cropped JPEG of a photo (never upscaled beyond the photo's short side).

    Raises ``PhotoError`` (naming the photo: ``name``, else its path) when it cannot be read or decoded.
    """
    img = open_photo(source, size, name=name)  # upright RGB, reduced while decoding if much larger than size
    side = min(size, *img.size)
    thumb = ImageOps.fit(img, (side, side), Image.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def placeholder_thumbnail(size: int, text: str = "no photo") -> bytes:
    """A grey square saying why there is no picture."""
    img = Image.new("RGB", (size, size), PLACEHOLDER_GREY)
    ImageDraw.Draw(img).text((6, size // 2 - 6), text, fill=(90, 90, 90))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_cache_path(cache_dir: Path, photo_path: Path, size: int) -> Path | None:
    """Where the thumbnail of this version of the photo lives; None if the photo does not exist."""
    try:
        stat = photo_path.stat()
    except OSError:
        return None
    key = hash_key(str(photo_path), stat.st_mtime_ns, stat.st_size, size)
    return cache_dir / key[:2] / f"{key}.jpg"


def thumbnail_bytes(photo_path: str | Path, size: int, cache_dir: str | Path) -> bytes:
    """The photo's thumbnail, from the disk cache or made (and cached) now; a placeholder if unreadable."""
    photo_path, cache_dir = Path(photo_path), Path(cache_dir)
    cached = thumbnail_cache_path(cache_dir, photo_path, size)
    if cached is None:
        return placeholder_thumbnail(size, "missing")
    if cached.is_file():
        return cached.read_bytes()
    try:
        data = make_thumbnail(photo_path, size)
    except PhotoError as err:
        logger.debug("no thumbnail: %s", err)
        return placeholder_thumbnail(size, "too large" if isinstance(err, PhotoTooLargeError) else "unreadable")
    try:
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
    except OSError as err:  # a run folder the server may not write (a read-only deployment): serve it uncached
        logger.debug("thumbnail not cached: %s", err)
    return data


def gallery_strip(thumbnails: Sequence[bytes], size: int) -> bytes:
    """Thumbnails side by side in one JPEG (height ``size``): a compact picture of a gallery."""
    if not thumbnails:
        return placeholder_thumbnail(size)
    strip = Image.new("RGB", (size * len(thumbnails), size), PLACEHOLDER_GREY)
    for i, data in enumerate(thumbnails):
        with Image.open(io.BytesIO(data)) as img:
            strip.paste(img.convert("RGB").resize((size, size), Image.BILINEAR), (i * size, 0))
    buffer = io.BytesIO()
    strip.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def data_uri(image: bytes) -> str:
    """An image as a ``data:`` URI (what a dataframe's image column displays)."""
    mime = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
