"""JPEGs decoded in batches on the model's device (issue 21), run here with ``decode_jpeg`` on the CPU device:
the same photos through it and through the CPU decoder give the same features (cosine >= 0.99), and what the
device path cannot take (PNG, CMYK, huge, cut short) goes through the CPU decoder, counted in the log; in the
trunk pass and for new photos (retrieve, search-photo, uploads: ``engine.photo_files``)."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gallery_core.artifacts.run import Run
from gallery_core.cli import build_parser
from gallery_core.data.decode import PhotoError
from gallery_core.data.photos import compute_trunk_features, decode_batch, to_model_input
from gallery_core.engine.cpu_runtime import row_cosines
from gallery_core.engine.device_decode import decode_batch_on_device, device_problem
from gallery_core.engine.photo_files import embed_photo_files
from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD, create_backbone
from gallery_core.models.encoder import GalleryEncoder

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


# --- new photos (retrieve, search-photo, uploads) through the device decoder: engine.photo_files ---

@pytest.fixture(scope="module")
def encoder() -> GalleryEncoder:
    return GalleryEncoder(create_backbone("efficientnet_lite0", 2, pretrained=True)).eval()


def test_new_photos_decoded_on_the_device_embed_as_the_cpu_decoder_embeds_them(photos, encoder, caplog):
    good = [photos[name] for name in ("plain.jpg", "grey.jpg", "exif.jpg", "huge.jpg", "cmyk.jpg", "photo.png")]
    sources = [*good, photos["exif.jpg"].read_bytes(), photos["cmyk.jpg"].read_bytes()]  # files and uploads
    with caplog.at_level(logging.INFO, logger="gallery_core"):
        on_device = embed_photo_files(encoder, sources, SIZE, decode_on_device=True, batch_size=3)
    on_cpu = embed_photo_files(encoder, sources, SIZE)
    assert on_device.shape == on_cpu.shape == (len(sources), encoder.embed_dim)
    cosine = row_cosines(torch.from_numpy(on_device), torch.from_numpy(on_cpu))
    assert float(cosine.min()) >= 0.99, cosine
    # the EXIF-rotated photo is turned on the device as the CPU decoder turns it: unturned it is another picture
    unturned = embed_photo_files(encoder, [photos["plain.jpg"]], SIZE, decode_on_device=True)
    assert float(row_cosines(torch.from_numpy(unturned), torch.from_numpy(on_device[2:3]))[0]) < float(cosine[2])
    assert "decoded on cpu: 4 photos; on the CPU: 4 (CMYK JPEG: 2, large: decoded reduced on the CPU: 1, " \
           "not a JPEG: 1)" in caplog.text


def test_a_bad_new_photo_raises_the_cpu_decoders_error_on_either_path(photos, encoder):
    sources = [photos["plain.jpg"], photos["cut.jpg"], b"not a photo"]
    for decode_on_device in (False, True):
        with pytest.raises(PhotoError) as raised:
            embed_photo_files(encoder, sources, SIZE, decode_on_device=decode_on_device, batch_size=2)
        assert str(raised.value).startswith(f"{photos['cut.jpg']}: cannot decode image")
    with pytest.raises(PhotoError, match="^uploaded photo: cannot decode image"):
        embed_photo_files(encoder, [photos["plain.jpg"], b"not a photo"], SIZE, decode_on_device=True)


def test_a_run_embeds_new_photos_on_its_device(tiny_run, monkeypatch):
    seen = {}

    def fake_embed(encoder, photos, image_size):
        seen.update(device=next(encoder.parameters()).device, photos=photos)
        return np.zeros((len(photos), encoder.embed_dim), np.float32)

    monkeypatch.setattr("gallery_core.engine.photo_files.embed_photo_files", fake_embed)
    run = Run(tiny_run, device="cpu")
    assert run.upload_encoder is run.model.encoder  # on the CPU, no second copy of the model
    run.embed_uploads([b"bytes"])
    assert seen == {"device": CPU, "photos": [b"bytes"]}
    args = build_parser().parse_args(["search-photo", "--photo", "x.jpg", "--device", "cpu"])
    assert args.device == "cpu" and build_parser().parse_args(["retrieve", "--photos", "x.jpg"]).device == "auto"
