"""JPEG photos decoded in batches on the model's device (nvJPEG on a GPU), resized and normalised there.

Why: on one H200 the product's trunk pass decoding with PIL on 16 CPU threads ran 1,136 photos/s, the same
encoder fed by nvJPEG 11,383 (docs/benchmarks/gpu.md). CPU threads only read the files' bytes here; the
device decodes them (``torchvision.io.decode_jpeg(..., device=...)``), applies the EXIF orientation, resizes
(bilinear with antialiasing, as PIL's resize averages when it shrinks) and normalises.

What the device path does not take goes through the project's CPU decoder (``data.decode.load_photo``), so
every rule of that decoder still holds: a file that is not a JPEG (PNG, WebP...), a JPEG that is not RGB or grey
(CMYK, YCCK), one over the pixel limit (refused there, with its message) or so large that the CPU decoder reads
it reduced (its DCT scaling: the device would decode every pixel), one that does not end with the JPEG end marker
(cut short, or with data after the image), a file that cannot be read, and a JPEG the device's decoder fails on
(an unsupported coding). The count of each kind goes to the log.

On the CPU device (``decode_jpeg``'s CPU decoder) the same code runs: the tests compare it with the CPU decoder.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gallery_core.data.decode import (
    MAX_PHOTO_PIXELS,
    PhotoError,
    load_photo,
    reduction_factor,
    sniff_format,
)

logger = logging.getLogger(__name__)

EXIF_ORIENTATION = 0x0112
DEVICE_MODES = ("RGB", "L")  # YCbCr and grey JPEGs; CMYK/YCCK ones (Adobe) go to the CPU decoder


def normalise_pixels(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or 0..255 float) photos (P, 3, H, W) -> float32 normalised by ``mean``/``std``, channels-last, on
    the photos' device: the one normalisation of model input (``data.photos.to_model_input`` calls it)."""
    x = pixels.float() / 255.0
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def device_problem(data: bytes, size: int) -> str | None:
    """Why the device path cannot take a photo (its bytes), or None when it can: a JPEG in RGB or grey,
    within the pixel limit and small enough that the CPU decoder would not reduce it (read from its header)."""
    if sniff_format(data[:32]) != "JPEG":
        return "not a JPEG"
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":  # libjpeg decodes a cut-short file with a warning: PIL refuses it
        return "no end marker"
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:  # the header only: no pixel is decoded
            width, height, mode = img.width, img.height, img.mode
    except Exception:  # the CPU decoder names what is wrong
        return "unreadable header"
    if mode not in DEVICE_MODES:
        return f"{mode} JPEG"
    if width * height > MAX_PHOTO_PIXELS:
        return "over the pixel limit"
    if reduction_factor(width, height, size) > 1:
        return "large: decoded reduced on the CPU"
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of a JPEG's bytes (1: upright; 1 also when it has none or it is unreadable,
    as the CPU decoder ignores an unreadable EXIF block)."""
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:
        return 1
    return int(value) if value in range(1, 9) else 1


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """(3, H, W) turned as EXIF ``orientation`` says, as PIL's ``ImageOps.exif_transpose`` turns it."""
    turned = {
        2: lambda x: x.flip(-1),  # mirrored
        3: lambda x: x.flip(-1, -2),  # 180 degrees
        4: lambda x: x.flip(-2),  # mirrored vertically
        5: lambda x: x.transpose(-1, -2),  # transposed
        6: lambda x: torch.rot90(x, -1, (-2, -1)),  # 90 degrees clockwise
        7: lambda x: x.transpose(-1, -2).flip(-1, -2),  # transversed
        8: lambda x: torch.rot90(x, 1, (-2, -1)),  # 90 degrees counter-clockwise
    }.get(orientation)
    return image if turned is None else turned(image)


def resize_on_device(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (3, H, W) -> float (3, size, size) of whole values 0..255, bilinear with antialiasing (as PIL's
    BILINEAR averages over every source pixel when it shrinks), rounded as PIL stores its result."""
    x = image[None].float()
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    return x[0].round_().clamp_(0, 255)


def read_photo_bytes(path: str) -> bytes | None:
    """A photo file's bytes, or None when it cannot be read (the CPU decoder says why)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None  # the CPU decoder says why


def _decode_jpegs(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """(3, H, W) uint8 of each JPEG, decoded on ``device`` as one batch; None for one the decoder fails on."""
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    if not encoded:
        return []
    try:
        return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:  # one bad file fails the batch: decode one by one to find it
        decoded: list[torch.Tensor | None] = []
        for data in encoded:
            try:
                decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
        return decoded


def decode_batch_on_device(paths: Sequence[str], size: int, pool: ThreadPoolExecutor, device: torch.device,
                           mean: Sequence[float], std: Sequence[float], counts: Counter | None = None,
                           ) -> tuple[torch.Tensor, dict[int, str]]:
    """Photos -> (model input (G, 3, size, size) float32 normalised, channels-last, on ``device``, for the good
    ones in order; {position: reason} of the bad ones): JPEGs decoded on ``device``, the rest by the CPU decoder
    in ``pool``'s threads (see the module docstring). ``counts`` gathers how many went which way, and why."""
    return decode_bytes_on_device(list(pool.map(read_photo_bytes, paths)), paths, size, pool, device, mean, std,
                                  counts)  # CPU threads only read bytes


def decode_bytes_on_device(datas: Sequence[bytes | None], paths: Sequence[str], size: int, pool: ThreadPoolExecutor,
                           device: torch.device, mean: Sequence[float], std: Sequence[float],
                           counts: Counter | None = None) -> tuple[torch.Tensor, dict[int, str]]:
    """``decode_batch_on_device`` of photos already read (``datas``, None where a file could not be read: the
    CPU decoder then names the problem from ``paths``)."""
    counts = counts if counts is not None else Counter()
    problems = [device_problem(d, size) if d is not None else "unreadable file" for d in datas]
    on_device = [i for i, p in enumerate(problems) if p is None]
    decoded = _decode_jpegs([datas[i] for i in on_device], device)
    images: dict[int, torch.Tensor] = {}
    for i, image in zip(on_device, decoded, strict=True):
        if image is None:
            problems[i] = "the device's decoder failed"
        else:
            images[i] = resize_on_device(upright(image, exif_orientation(datas[i])), size)
    on_cpu = [i for i, p in enumerate(problems) if p is not None]

    def cpu_decode(i: int) -> np.ndarray | str:
        try:
            return load_photo(datas[i] if datas[i] is not None else paths[i], size, name=str(paths[i]))
        except PhotoError as err:
            return err.reason

    bad: dict[int, str] = {}
    for i, result in zip(on_cpu, pool.map(cpu_decode, on_cpu), strict=True):
        counts[f"cpu: {problems[i]}"] += 1
        if isinstance(result, str):
            bad[i] = result
        else:
            images[i] = torch.tensor(result).permute(2, 0, 1).to(device).float()  # (3, S, S); PIL arrays are read-only
    counts["device"] += len(on_device) - sum(problems[i] is not None for i in on_device)
    good = [images[i] for i in range(len(paths)) if i in images]
    pixels = torch.stack(good) if good else torch.zeros((0, 3, size, size), device=device)
    return normalise_pixels(pixels, mean, std), bad


def log_decode_counts(counts: Counter, device: torch.device) -> None:
    """One log line: how many photos the device decoded and how many went to the CPU decoder, by reason."""
    cpu = {k.removeprefix("cpu: "): v for k, v in sorted(counts.items()) if k.startswith("cpu: ")}
    logger.info("decoded on %s: %d photos; on the CPU: %d%s", device, counts.get("device", 0), sum(cpu.values()),
                f" ({', '.join(f'{k}: {v}' for k, v in cpu.items())})" if cpu else "")
