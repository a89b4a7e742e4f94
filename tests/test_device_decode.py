"""JPEGs decoded in batches on the model's device (issue 21), run here with ``decode_jpeg`` on the CPU device:
the same photos through it and through the CPU decoder give the same features (cosine >= 0.99), and what the
device path cannot take (PNG, CMYK, huge, cut short) goes through the CPU decoder, counted in the log."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gallery_core.data.photos import compute_trunk_features, decode_batch, to_model_input
from gallery_core.engine.cpu_runtime import row_cosines
from gallery_core.engine.device_decode import decode_batch_on_device, device_problem
from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD, create_backbone

CPU = torch.device("cpu")
SIZE = 64


def scene(width: int, height: int) -> Image.Image:
    """A smooth, asymmetric picture (a turned or mirrored copy of it is another picture)."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    red = 255 * x
    green = 255 * (0.5 + 0.5 * np.sin(9 * y + 3 * x))
    blue = 255 * ((x - 0.2) ** 2 + (y - 0.3) ** 2 < 0.05)
    return Image.fromarray(np.stack([red, green, blue], axis=-1).astype(np.uint8))


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    picture = scene(320, 240)
    files = {name: tmp_path / name for name in ("plain.jpg", "grey.jpg", "exif.jpg", "huge.jpg", "cmyk.jpg",
                                                "photo.png", "cut.jpg")}
    picture.save(files["plain.jpg"], quality=92)
    picture.convert("L").save(files["grey.jpg"], quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees clockwise
    picture.save(files["exif.jpg"], quality=92, exif=exif)
    scene(2400, 1800).save(files["huge.jpg"], quality=85)  # the CPU decoder reads it reduced
    picture.convert("CMYK").save(files["cmyk.jpg"], quality=92)
    picture.save(files["photo.png"])
    files["cut.jpg"].write_bytes(files["plain.jpg"].read_bytes()[:900])
    return files


def test_the_device_path_takes_plain_jpegs_only(photos):
    reasons = {name: device_problem(path.read_bytes(), SIZE) for name, path in photos.items()}
    assert reasons["plain.jpg"] is None and reasons["grey.jpg"] is None and reasons["exif.jpg"] is None
    assert reasons["photo.png"] == "not a JPEG" and reasons["cmyk.jpg"] == "CMYK JPEG"
    assert reasons["huge.jpg"].startswith("large") and reasons["cut.jpg"] is not None


def test_both_decode_paths_give_the_same_model_input_and_the_same_bad_photos(photos, caplog):
    paths = [str(p) for p in photos.values()]
    counts: Counter = Counter()
    with ThreadPoolExecutor(2) as pool:
        on_device, bad = decode_batch_on_device(paths, SIZE, pool, CPU, IMAGENET_MEAN, IMAGENET_STD, counts)
        pixels, cpu_bad = decode_batch(paths, SIZE, pool)
    reference = to_model_input(pixels)  # (G, 3, S, S)
    assert set(bad) == set(cpu_bad) == {paths.index(str(photos["cut.jpg"]))}
    assert on_device.shape == reference.shape and on_device.is_contiguous(memory_format=torch.channels_last)
    # Per photo: the same picture, the same way up (a turned or mirrored one is far below), to JPEG decoders'
    # and resize kernels' rounding.
    cosine = row_cosines(on_device, reference)
    assert float(cosine.min()) >= 0.99, cosine
    assert float((on_device - reference).abs().mean()) < 0.05
    assert counts["device"] == 3  # plain, grey, exif
    assert counts["cpu: not a JPEG"] == 1 and counts["cpu: CMYK JPEG"] == 1 and counts["cpu: large: decoded reduced on the CPU"] == 1


def test_the_trunk_pass_decoding_on_the_device_gives_the_features_of_the_cpu_decoder(photos, caplog):
    paths = [str(p) for p in photos.values()]
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    with caplog.at_level(logging.INFO, logger="gallery_core"):
        device, bad = compute_trunk_features(backbone, paths, SIZE, batch_size=4, progress=False,
                                             decode_on_device=True)
    cpu, cpu_bad = compute_trunk_features(backbone, paths, SIZE, batch_size=4, progress=False)
    assert bad.keys() == cpu_bad.keys() == {paths.index(str(photos["cut.jpg"]))}
    cosine = row_cosines(torch.from_numpy(device.astype(np.float32)), torch.from_numpy(cpu.astype(np.float32)))
    assert float(cosine.min()) >= 0.99, cosine
    assert "decoded on cpu: 3 photos; on the CPU: 4" in caplog.text
