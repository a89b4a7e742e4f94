"""Decoding a photo: the one function every path uses (model input, VAE targets, thumbnails, uploads,
augmentation), so the model sees what the user sees.

The file type is recognised by its magic bytes; EXIF orientation is applied; colour modes are converted
(16-bit scaled, transparency composited); large photos are decoded reduced and huge ones refused. Every
failure is a ``PhotoError`` naming the file and saying what is wrong.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)


class PhotoError(UsageError):
    """A photo cannot be decoded. ``reason`` is the message without the file's name."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


class PhotoTooLargeError(PhotoError):
    """A photo has more pixels than the decoder accepts (a decompression-bomb guard)."""


# --- the one photo decoder: model input, VAE targets, app thumbnails and uploads all go through decode_photo ---

# Largest photo decoded, in pixels (width x height as its header states); a larger one is skipped and reported.
# 150 MP covers the largest real photos (a 12000 x 12000 scan or stitched panorama is 144 MP) and stays below
# PIL's own refusal threshold (DecompressionBombError over 2 x Image.MAX_IMAGE_PIXELS, ~179 MP by default), so
# normally this check, which names the file and the limit, is the one that fires. A JPEG is decoded reduced
# (see below), so even at the limit it costs under 10 MB; other formats cannot be decoded reduced and cost up to
# 4 bytes a pixel (600 MB at the limit) before being reduced. PIL's warning (DecompressionBombWarning, over
# Image.MAX_IMAGE_PIXELS, ~89 MP) is silenced while decoding, since this limit decides instead; PIL's error
# still fires first if someone lowered Image.MAX_IMAGE_PIXELS, and is reported the same way.
MAX_PHOTO_PIXELS = 150_000_000

# Large photos are decoded reduced: a JPEG by its decoder (``Image.draft``: DCT scaling by 1/2, 1/4 or 1/8, which
# never decodes the full-size pixels), other formats by ``Image.reduce`` (a box filter by an integer factor)
# right after decoding. The reduction stops while both sides are still >= max(REDUCE_HEADROOM x the target
# side, MIN_REDUCED_SIDE): the final bilinear resize then still averages over >= 4 source pixels per output
# pixel in each direction, so the result is close to resizing the full photo, and photos under 1024 px
# (the demo's 128 px photos among them) are never reduced: they decode exactly as a plain decode + resize.
REDUCE_HEADROOM = 4
MIN_REDUCED_SIDE = 512

# Transparent pixels (RGBA, LA, palette or grey/RGB with a transparent colour) are composited on this neutral
# mid-grey, not left to whatever colour happens to be hidden under alpha 0 (often black, sometimes anything).
# Mid-grey is close to the backbone's normalisation mean (ImageNet: 124, 116, 104), so transparent areas enter
# the model as near-zero input rather than as a strong black or white region, and it is neither the white
# background of product shots nor black.
TRANSPARENT_BACKGROUND = (128, 128, 128)

# The file types the decoder accepts, by their magic bytes (sniff_format); GIF and TIFF: the first frame/page.
PHOTO_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF")
_PIL_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "WebP": "WEBP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF"}

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
)
_FORMAT_HINTS = {  # what to do with a file type the decoder does not take
    "HEIC/MP4": "the iPhone's HEIC/HEIF photo format, which is not supported: export or convert it to JPEG",
    "AVIF": "AVIF photos are not supported: convert it to JPEG or PNG",
}


def sniff_format(data: bytes) -> str | None:
    """The file type its first bytes (16 are enough) announce, or None when unrecognised.

    The one copy of the sniffing: the decoder and the upload checks both use it.
    """
    if data[4:8] == b"ftyp":  # ISO base media file: HEIC/HEIF photos, AVIF, MP4/MOV videos
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIC/MP4"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def describe_content(data: bytes) -> str:
    """What a file that is not an accepted image holds, for messages: "it is a GIF file" / "its content is ..."."""
    kind = sniff_format(data)
    if kind is not None:
        hint = _FORMAT_HINTS.get(kind)
        article = "an" if kind[0] in "AEIOU" else "a"
        return f"it is {article} {kind} file" + (f" ({hint})" if hint else "")
    head = data[:64]
    if _looks_like_text(head):
        return "its content is not a recognised image (it looks like text)"
    return f"its content is not a recognised image (it starts with bytes {head[:8].hex(' ')})"


def _looks_like_text(head: bytes) -> bool:
    for cut in range(4):  # a multi-byte character may be cut at the end of the head
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return bool(text) and all(c.isprintable() or c in "\t\r\n" for c in text)
    return False


@dataclass(frozen=True)
class DecodedPhoto:
    image: Image.Image  # RGB, upright (EXIF orientation applied), possibly reduced (see reduced_by)
    format: str  # as sniff_format names it
    width: int  # the full photo's size, upright
    height: int
    reduced_by: int  # 1: decoded at full size; n: each side divided by ~n while decoding

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _pixels_text(n: int) -> str:
    """A pixel count for messages: "144 megapixels", "1.5 megapixels", "4,096 pixels"."""
    if n >= 10_000_000:
        return f"{n / 1_000_000:.0f} megapixels"
    return f"{n / 1_000_000:.1f} megapixels" if n >= 100_000 else f"{n:,} pixels"


def photo_file_problem(path: str | Path) -> str | None:
    """Why there is no photo file to read at ``path``, or None when there is a regular file.

    "is a folder, not a photo", "symlink loop: ...", "broken symlink: ...", "cannot read photo: No such file or
    directory", ...: what a catalogue check can report instead of a bare "file not found".
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return (f"broken symlink: it points to {os.readlink(path)}, which does not exist "
                    "(No such file or directory)")
        return "cannot read photo: No such file or directory"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop: following the link leads back to itself, so there is no photo"
        return f"cannot read photo: {err.strerror or err}"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a photo"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a pipe, socket or device), not a photo"
    return None


def _read_head(source: str | Path | bytes, name: str) -> tuple[bytes, int]:
    """The first bytes of a photo and its size in bytes, or PhotoError saying why there is no photo to read."""
    if isinstance(source, bytes):
        return source[:32], len(source)
    problem = photo_file_problem(source)
    if problem is None:
        try:
            with open(source, "rb") as f:
                return f.read(32), os.fstat(f.fileno()).st_size
        except OSError as err:
            problem = f"cannot read photo: {err.strerror or err}"
    raise PhotoError(f"{name}: {problem}", reason=problem)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB, by what the mode means (PIL's plain ``convert("RGB")`` gets some of them wrong)."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey: PIL's convert clips at 255, so every pixel above 255 (nearly all) would turn white.
        # Scale 0..65535 to 0..255, rounding ((v + 128) // 257 is round(v / 257)); "I" is read as 16-bit data.
        values = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
        return Image.fromarray(((values + 128) // 257).astype(np.uint8), "L").convert("RGB")
    if img.has_transparency_data:  # RGBA, LA, PA, RGBa, La, or P/L/RGB with a transparent colour
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if mode == "RGB" else img.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGBX, F, ...


# Modes Image.reduce averages correctly (not palette indices, not colours under alpha, which would bleed).
_REDUCIBLE_MODES = ("L", "RGB", "I", "F", "CMYK", "YCbCr", "RGBX")


def _exif_upright(img: Image.Image, name: str) -> Image.Image:
    """The image turned as its EXIF orientation says (in place); unchanged if the EXIF block is unreadable."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as err:  # a corrupt EXIF block does not make the pixels unusable
        logger.debug("%s: EXIF orientation ignored (%s: %s)", name, type(err).__name__, err)
    return img


class _SilencedWhileDecoding:
    """PIL's DecompressionBombWarning ignored while any thread is decoding here (``decode_batch`` decodes in
    threads). ``warnings.catch_warnings`` alone is not thread-safe: each exit restores its own snapshot of the
    process-wide filter list, so overlapping decodes would undo each other's filter and the warning would leak.
    Here the first decode to start enters one ``catch_warnings`` and the last one to finish leaves it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._context: warnings.catch_warnings | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._context = warnings.catch_warnings()
                self._context.__enter__()
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            self._active += 1

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._context is not None:
                self._context.__exit__(None, None, None)
                self._context = None


_PIL_BOMB_WARNING_SILENCED = _SilencedWhileDecoding()


def reduction_factor(width: int, height: int, size: int | None) -> int:
    """By how much a photo may be reduced while decoding for a ``size`` target (1: not at all)."""
    if size is None:
        return 1
    keep = max(REDUCE_HEADROOM * size, MIN_REDUCED_SIDE)
    return max(1, min(width // keep, height // keep))


def decode_photo(source: str | Path | bytes, size: int | None = None, *, name: str | None = None,
                 max_pixels: int = MAX_PHOTO_PIXELS) -> DecodedPhoto:
    """Decode a photo (a file or its bytes) to an upright RGB image: the one decoder every path uses.

    - the file type is recognised by its magic bytes; only ``PHOTO_FORMATS`` are decoded, and anything else
      (HEIC, AVIF, PDF, text...) is refused with a message saying what it is and what is accepted;
    - a photo over ``max_pixels`` is refused (``PhotoTooLargeError``), never decoded;
    - ``size`` (the side the caller will resize to; None: full size): a photo much larger than that is decoded
      reduced (JPEG: by the decoder itself), see ``REDUCE_HEADROOM``;
    - the EXIF orientation is applied (``ImageOps.exif_transpose``);
    - colour modes are converted by what they mean: 16-bit grey scaled to 8 bit, transparency composited on
      ``TRANSPARENT_BACKGROUND``, CMYK / YCbCr / grey / palette / bilevel to RGB.

    Raises ``PhotoError`` naming the photo (``name``, else the path, else "uploaded photo") and what is wrong.
    """
    name = name or ("uploaded photo" if isinstance(source, bytes) else str(source))
    head, n_bytes = _read_head(source, name)
    if not n_bytes:
        raise PhotoError(f"{name}: cannot decode image: the file is empty (0 bytes)", reason="the file is empty")
    kind = sniff_format(head)
    if kind not in PHOTO_FORMATS:
        what = describe_content(head)
        raise PhotoError(f"{name}: cannot decode image: {what}; accepted: {', '.join(PHOTO_FORMATS)}", reason=what)
    limit = max_pixels if Image.MAX_IMAGE_PIXELS is None else min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS)
    try:
        # PIL warns (DecompressionBombWarning) over Image.MAX_IMAGE_PIXELS: max_pixels decides instead
        with _PIL_BOMB_WARNING_SILENCED, Image.open(io.BytesIO(source) if isinstance(source, bytes) else source,
                                                    formats=[_PIL_FORMAT[kind]]) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise PhotoTooLargeError(
                    f"{name}: {width}x{height} pixels ({_pixels_text(width * height)}) is too large; "
                    f"the limit is {_pixels_text(max_pixels)}", reason="too large")
            factor, reduced_by = reduction_factor(width, height, size), 1
            if factor > 1 and kind == "JPEG":
                keep = max(REDUCE_HEADROOM * size, MIN_REDUCED_SIDE)
                drafted = opened.draft(None, (keep, keep))  # the decoder scales by 1/2, 1/4 or 1/8
                reduced_by = round(width / drafted[1][2]) if drafted else 1
            opened.load()  # a truncated or corrupt file fails here
            stored_size = opened.size
            img = _exif_upright(opened, name)
            if img.size != stored_size:
                width, height = height, width  # turned by 90 degrees
            if factor > 1 and reduced_by == 1 and img.mode in _REDUCIBLE_MODES:
                img, reduced_by = img.reduce(factor), factor  # before the mode conversion: less to convert
            rgb = _to_rgb(img)
            if factor > 1 and reduced_by == 1:
                rgb, reduced_by = rgb.reduce(factor), factor
    except PhotoError:
        raise
    except Image.DecompressionBombError as err:  # over PIL's own limit (2 x Image.MAX_IMAGE_PIXELS)
        found = re.search(r"\((\d+) pixels\)", str(err))
        size_text = _pixels_text(int(found.group(1))) if found else "the photo"
        raise PhotoTooLargeError(f"{name}: {size_text} is too large; the limit is {_pixels_text(limit)}",
                                 reason="too large") from None
    except Exception as err:  # PIL raises many types for corrupt files (OSError, SyntaxError, struct.error...)
        detail = f"{type(err).__name__}: {err}"
        raise PhotoError(f"{name}: cannot decode image: looks like a {kind} but its data is broken or cut short "
                         f"({detail})", reason=detail) from None
    if reduced_by > 1:
        logger.debug("%s: %dx%d pixels decoded reduced by %d", name, width, height, reduced_by)
    return DecodedPhoto(image=rgb, format=kind, width=width, height=height, reduced_by=reduced_by)


def open_photo(source: str | Path | bytes, size: int | None = None, *, name: str | None = None) -> Image.Image:
    """``decode_photo``'s upright RGB image (reduced if much larger than ``size``); raises PhotoError."""
    return decode_photo(source, size, name=name).image


def load_photo(source: str | Path | bytes, size: int, *, name: str | None = None) -> np.ndarray:
    """Decode a photo file (or its bytes) to RGB uint8 (size, size, 3), resized bilinearly as in the paper.

    Decoded by ``decode_photo`` (orientation, colour modes, large photos); raises ``PhotoError``.
    """
    return resize_square(decode_photo(source, size, name=name).image, size)


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image -> uint8 (size, size, 3), bilinear with antialiasing as in the paper.

    PyTorch's uint8 kernel rather than PIL's ``resize(BILINEAR)``: the same filter (antialiased when it shrinks;
    within two grey levels of PIL's result, at most a quarter of one on average, tested), at about a third of the
    cost on a 640x480 photo (1.2-1.6 ms -> 0.5 ms, one thread). The GPU path
    (``engine.device_decode.resize_on_device``) uses the same PyTorch filter, in float.
    """
    if image.size == (size, size):
        return np.asarray(image, dtype=np.uint8)
    import torch  # here, not at the top: thumbnails and the catalogue check decode photos without the model

    pixels = np.array(image, dtype=np.uint8)  # (H, W, 3), writable: torch will not wrap a read-only array
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # (1, 3, H, W), channels last in memory
    out = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())
