"""Checks on photos that users upload as retrieval seeds: type, size, count, decodability.

Only JPEG and PNG are accepted, recognised by their content (magic bytes, ``decode.sniff_format``), not their
file name, and decoded by ``decode.decode_photo``, the decoder the model's input and the thumbnails use too.
Every refusal is a ``UploadError`` whose message names the file and says what to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# sniff_format: the one copy of the sniffing (in decode), imported from here too.
from gallery_core.data.decode import (
    PhotoError,
    PhotoTooLargeError,
    decode_photo,
    describe_content,
    sniff_format,
)
from gallery_core.errors import UsageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_COUNT = 10
MAX_UPLOAD_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
MIN_UPLOAD_SIDE = 8
ACCEPTED_FORMATS = ("JPEG", "PNG")
_CHECK_SIZE = 1  # check_upload decodes as reduced as the decoder allows: it only checks that the photo decodes


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
        raise UploadError(f"{name}: only JPEG and PNG photos are accepted, but {describe_content(data)}")
    try:  # the decoder every path uses: the same refusals, orientation and colour handling
        photo = decode_photo(data, _CHECK_SIZE, name=name, max_pixels=MAX_UPLOAD_PIXELS)
    except PhotoTooLargeError as err:
        raise UploadError(str(err)) from None
    except PhotoError as err:
        raise UploadError(f"{name}: looks like a {kind} but cannot be decoded ({err.reason})") from None
    width, height = photo.width, photo.height
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
