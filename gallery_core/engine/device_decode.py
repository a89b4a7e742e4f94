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

Two stages, so that the CPU's share can run ahead of the device's (``engine.prefetch``): ``read_batch`` (CPU
threads: the files' bytes, their headers, the CPU decoder's photos, all in host buffers that are pinned for a GPU)
and ``decode_read_batch`` (the device: nvJPEG, orientation, resize, normalisation; pinned buffers are copied
asynchronously). On the CPU device (``decode_jpeg``'s CPU decoder) the same code runs, without pinning: the tests
compare it with the CPU decoder.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    return _inspect(data, size)[0]


def _inspect(data: bytes, size: int | None) -> tuple[str | None, int]:
    """(``device_problem``, ``exif_orientation``) from one read of the header (no pixel is decoded); ``size``
    None: the orientation only."""
    if size is not None:
        if sniff_format(data[:32]) != "JPEG":
            return "not a JPEG", 1
        if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":  # libjpeg decodes a cut-short file with a warning: PIL refuses it
            return "no end marker", 1
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            width, height, mode = img.width, img.height, img.mode
            try:
                value = img.getexif().get(EXIF_ORIENTATION, 1)
            except Exception:  # as the CPU decoder, which ignores an unreadable EXIF block
                value = 1
    except Exception:  # the CPU decoder names what is wrong
        return "unreadable header", 1
    orientation = int(value) if value in range(1, 9) else 1
    if size is None:
        return None, orientation
    if mode not in DEVICE_MODES:
        return f"{mode} JPEG", orientation
    if width * height > MAX_PHOTO_PIXELS:
        return "over the pixel limit", orientation
    if reduction_factor(width, height, size) > 1:
        return "large: decoded reduced on the CPU", orientation
    return None, orientation


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


def read_photo_bytes(path: str | Path) -> bytes | None:
    """A photo file's bytes, or None when it cannot be read (the CPU decoder says why)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None  # the CPU decoder says why


def pin_host(device: torch.device) -> bool:
    """Whether host buffers bound for ``device`` are pinned: on CUDA, where a pinned buffer is copied by DMA
    without a staging copy and asynchronously (``non_blocking``); elsewhere pinning means nothing."""
    return device.type == "cuda"


def host_tensor(shape: tuple[int, ...], pin: bool) -> torch.Tensor:
    """An uninitialised uint8 host buffer, page-locked when ``pin`` (``pin_host``)."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pin)


def host_pixels(pixels: np.ndarray, pin: bool) -> torch.Tensor:
    """Decoded photos (P, S, S, 3) uint8 as a host tensor, pinned when ``pin``: what crosses to the device (a
    quarter of the bytes of the normalised floats, which the device then computes: ``normalise_pixels``)."""
    tensor = host_tensor(pixels.shape, pin)
    tensor.numpy()[...] = pixels
    return tensor


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: copied asynchronously when it is pinned (later work on the device's stream
    waits for the copy; torch keeps a pinned block until the copies using it are done), else as ``.to``."""
    return tensor.to(device, non_blocking=tensor.is_pinned())


@dataclass
class ReadBatch:
    """A batch of photos made ready on CPU threads for ``decode_read_batch`` on the device: the JPEGs the device
    decodes, as views of one host buffer (pinned for a GPU), and what the CPU decoder made of the others."""

    names: list[str | None]  # each photo's name in messages (None: "uploaded photo")
    jpegs: list[torch.Tensor]  # 1-D uint8 views of one host buffer, the files' bytes
    on_device: list[int]  # the positions of those JPEGs in the batch
    orientations: list[int]  # their EXIF orientations
    cpu_pixels: torch.Tensor  # (C, S, S, 3) uint8 host buffer: the photos the CPU decoder took
    on_cpu: list[int]  # their positions
    problems: dict[int, str]  # position -> why it went to the CPU decoder (those in on_cpu and the bad ones)
    errors: dict[int, PhotoError]  # position -> why it cannot be decoded at all

    def __len__(self) -> int:
        return len(self.names)


def read_batch(photos: Sequence[str | Path | bytes], size: int, pool: ThreadPoolExecutor, pin: bool = False,
               datas: Sequence[bytes | None] | None = None) -> ReadBatch:
    """The CPU's share of decoding a batch on a device, in ``pool``'s threads: read the files' bytes (``datas``
    when already read: None where a file could not be), sort out what the device cannot take, decode that with
    the CPU decoder (``data.decode.load_photo``) and put the device's JPEGs in one host buffer (``pin``: pinned)."""
    names = [None if isinstance(p, bytes) else str(p) for p in photos]
    if datas is None:
        datas = list(pool.map(lambda p: p if isinstance(p, bytes) else read_photo_bytes(p), photos))
    inspected = list(pool.map(lambda d: _inspect(d, size) if d is not None else ("unreadable file", 1), datas))
    on_device = [i for i, (problem, _) in enumerate(inspected) if problem is None]
    problems = {i: problem for i, (problem, _) in enumerate(inspected) if problem is not None}

    def cpu_decode(i: int) -> np.ndarray | PhotoError:
        data = datas[i]
        try:
            return load_photo(data if data is not None else photos[i], size, name=names[i])
        except PhotoError as err:
            return err

    decoded = dict(zip(problems, pool.map(cpu_decode, problems), strict=True))
    errors = {i: r for i, r in decoded.items() if isinstance(r, PhotoError)}
    on_cpu = [i for i in problems if i not in errors]
    cpu_pixels = host_tensor((len(on_cpu), size, size, 3), pin)  # (C, S, S, 3)
    rows = cpu_pixels.numpy()
    for row, i in enumerate(on_cpu):
        rows[row] = decoded[i]
    return ReadBatch(names, _host_views([datas[i] for i in on_device], pin), on_device,
                     [inspected[i][1] for i in on_device], cpu_pixels, on_cpu, problems, errors)


def _host_views(datas: list[bytes], pin: bool) -> list[torch.Tensor]:
    """The files' bytes as 1-D uint8 views of one host buffer: one (pinned) allocation a batch, not one a photo."""
    ends = np.cumsum([len(d) for d in datas]).tolist()
    buffer = host_tensor((ends[-1] if ends else 0,), pin)
    array = buffer.numpy()
    views = []
    for data, start, end in zip(datas, [0, *ends][:-1], ends, strict=True):
        array[start:end] = np.frombuffer(data, dtype=np.uint8)
        views.append(buffer[start:end])
    return views


def _decode_jpegs(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """(3, H, W) uint8 of each JPEG, decoded on ``device`` as one batch; None for one the decoder fails on."""
    from torchvision.io import ImageReadMode, decode_jpeg

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


def decode_read_batch(batch: ReadBatch, size: int, device: torch.device, mean: Sequence[float],
                      std: Sequence[float], counts: Counter | None = None,
                      ) -> tuple[torch.Tensor, dict[int, PhotoError]]:
    """The device's share: (model input (G, 3, size, size) float32 normalised, channels-last, on ``device``, for
    the good photos in order; {position: the CPU decoder's error} of the bad ones). ``counts`` gathers how many
    went which way, and why (``log_decode_counts``)."""
    counts = counts if counts is not None else Counter()
    problems, errors = dict(batch.problems), dict(batch.errors)
    images: dict[int, torch.Tensor] = {}
    for i, jpeg, orientation, image in zip(batch.on_device, batch.jpegs, batch.orientations,
                                           _decode_jpegs(batch.jpegs, device), strict=True):
        if image is not None:
            images[i] = resize_on_device(upright(image, orientation), size)
            continue
        problems[i] = "the device's decoder failed"  # an unsupported coding: the CPU decoder takes it
        try:
            pixels = load_photo(jpeg.numpy().tobytes(), size, name=batch.names[i])
            images[i] = to_device(torch.from_numpy(pixels.copy()).permute(2, 0, 1), device).float()
        except PhotoError as err:
            errors[i] = err
    cpu = to_device(batch.cpu_pixels, device).permute(0, 3, 1, 2).float()  # (C, 3, S, S)
    images.update(zip(batch.on_cpu, cpu, strict=True))
    for reason in problems.values():
        counts[f"cpu: {reason}"] += 1
    counts["device"] += len(batch.on_device) - sum(i in problems for i in batch.on_device)
    good = [images[i] for i in range(len(batch)) if i in images]
    pixels = torch.stack(good) if good else torch.zeros((0, 3, size, size), device=device)
    return normalise_pixels(pixels, mean, std), dict(sorted(errors.items()))


def decode_batch_on_device(paths: Sequence[str], size: int, pool: ThreadPoolExecutor, device: torch.device,
                           mean: Sequence[float], std: Sequence[float], counts: Counter | None = None,
                           ) -> tuple[torch.Tensor, dict[int, str]]:
    """Photos -> (model input (G, 3, size, size) float32 normalised, channels-last, on ``device``, for the good
    ones in order; {position: reason} of the bad ones): JPEGs decoded on ``device``, the rest by the CPU decoder
    in ``pool``'s threads (see the module docstring). ``counts`` gathers how many went which way, and why."""
    return decode_bytes_on_device(None, paths, size, pool, device, mean, std, counts)


def decode_bytes_on_device(datas: Sequence[bytes | None] | None, paths: Sequence[str], size: int, pool: ThreadPoolExecutor,
                           device: torch.device, mean: Sequence[float], std: Sequence[float],
                           counts: Counter | None = None) -> tuple[torch.Tensor, dict[int, str]]:
    """``decode_batch_on_device`` of photos already read (``datas``, None where a file could not be read: the
    CPU decoder then names the problem from ``paths``; ``datas`` None: read here)."""
    x, errors = decode_read_batch(read_batch(paths, size, pool, pin_host(device), datas=datas), size, device, mean,
                                  std, counts)
    return x, {i: err.reason for i, err in errors.items()}


def log_decode_counts(counts: Counter, device: torch.device) -> None:
    """One log line: how many photos the device decoded and how many went to the CPU decoder, by reason."""
    cpu = {k.removeprefix("cpu: "): v for k, v in sorted(counts.items()) if k.startswith("cpu: ")}
    logger.info("decoded on %s: %d photos; on the CPU: %d%s", device, counts.get("device", 0), sum(cpu.values()),
                f" ({', '.join(f'{k}: {v}' for k, v in cpu.items())})" if cpu else "")
