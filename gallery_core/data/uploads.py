"""Checks on photos that users upload as retrieval seeds: type, size, count, decodability.

Only JPEG and PNG are accepted, recognised by their content (magic bytes), not their file name.
Every refusal is a ``UploadError`` whose message names the file and says what to do.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_COUNT = 10
MAX_UPLOAD_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
MIN_UPLOAD_SIDE = 8
ACCEPTED_FORMATS = ("JPEG", "PNG")

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"PK\x03\x04", "ZIP archive"),
)
from gallery_core.errors import UsageError


class UploadError(UsageError):
    """An uploaded file cannot be used as a seed photo; the message says which and why."""


@dataclass(frozen=True)
class CheckedUpload:
    name: str
    data: bytes
    format: str  # "JPEG" or "PNG"
    width: int
    height: int

    @property
    def digest(self) -> str:
        """Identity of the content (the same photo uploaded twice has one digest)."""
        return hashlib.blake2b(self.data, digest_size=12).hexdigest()


def sniff_format(data: bytes) -> str | None:
    """The file type its first bytes announce, or None when unrecognised."""
    if data[4:8] == b"ftyp":
        return "HEIC/MP4"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def format_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def check_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> CheckedUpload:
    """Accept one uploaded photo or raise ``UploadError`` saying why not."""
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise UploadError(f"{name}: {format_bytes(len(data))} is too big; the limit is {format_bytes(max_bytes)} "
                          "per photo")
    kind = sniff_format(data)
    if kind not in ACCEPTED_FORMATS:
        found = f"it is a {kind} file" if kind else "its content is not a recognised image"
        raise UploadError(f"{name}: only JPEG and PNG photos are accepted, but {found}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise UploadError(f"{name}: {width}x{height} pixels is too large; the limit is "
                                  f"{MAX_UPLOAD_PIXELS // 1_000_000} megapixels")
            img.load()  # decode fully: truncated or corrupt files fail here
    except UploadError:
        raise
    except Exception as err:  # PIL raises many types for corrupt files
        raise UploadError(f"{name}: looks like a {kind} but cannot be decoded ({type(err).__name__}: {err})") from None
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise UploadError(f"{name}: {width}x{height} pixels is too small to be a photo")
    return CheckedUpload(name=name, data=data, format=kind, width=width, height=height)


def check_uploads(files: Sequence[tuple[str, bytes]], max_count: int = MAX_UPLOAD_COUNT,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[list[CheckedUpload], list[str]]:
    """Check a batch of (name, bytes): the accepted photos (first ``max_count``, duplicates dropped)
    and one message per refused file."""
    accepted: list[CheckedUpload] = []
    errors: list[str] = []
    seen: set[str] = set()
    for name, data in files:
        try:
            upload = check_upload(name, data, max_bytes)
        except UploadError as err:
            errors.append(str(err))
            continue
        if upload.digest in seen:
            continue
        if len(accepted) >= max_count:
            errors.append(f"{name}: ignored; at most {max_count} uploaded photos per seed gallery")
            continue
        seen.add(upload.digest)
        accepted.append(upload)
    return accepted, errors
