"""Photo corruptions: deterministic for a seed, never mutate their input, actually change the photo."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from gallery_core.data.corruptions import CORRUPTIONS, jpeg_compress, random_crop, scribble, watermark


def _photo(size: int = 64, mode: str = "RGB") -> Image.Image:
    """A smooth gradient with a few hard edges: like a photo, JPEG and crops visibly change it."""
    y, x = np.mgrid[0:size, 0:size] / size
    arr = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x * y) + 60], axis=-1)
    arr[size // 4: size // 2, size // 5: size // 2] = (250, 30, 30)
    arr[size // 2:, size // 2: size // 2 + 3] = (10, 10, 10)
    return Image.fromarray(arr.astype(np.uint8), "RGB").convert(mode)


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_registry_names_and_picklability():
    assert set(CORRUPTIONS) == {"jpeg", "crop", "scribble", "watermark"}
    for fn in CORRUPTIONS.values():
        assert pickle.loads(pickle.dumps(fn)) is fn  # usable from DataLoader / multiprocessing workers


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_deterministic_for_a_seed_and_changes_the_image(name):
    img = _photo()
    before = img.tobytes()
    a = CORRUPTIONS[name](img, np.random.default_rng(7))
    b = CORRUPTIONS[name](img, np.random.default_rng(7))
    assert img.tobytes() == before  # input untouched
    assert a is not img and a.mode == "RGB" and a.size == img.size
    assert a.tobytes() == b.tobytes()
    assert np.abs(_px(a) - _px(img)).mean() > 0.5


@pytest.mark.parametrize("name", ["crop", "scribble", "watermark"])
def test_different_seeds_give_different_results(name):
    img = _photo()
    outs = {CORRUPTIONS[name](img, np.random.default_rng(seed)).tobytes() for seed in range(4)}
    assert len(outs) > 1


def test_jpeg_quality_draw_is_in_10_to_30():
    img = _photo()
    qualities = {q: jpeg_compress(img, q).tobytes() for q in range(10, 31)}
    for seed in range(12):
        out = CORRUPTIONS["jpeg"](img, np.random.default_rng(seed)).tobytes()
        assert out in qualities.values()


def test_lower_jpeg_quality_loses_more():
    img = _photo()
    err = {q: np.abs(_px(jpeg_compress(img, q)) - _px(img)).mean() for q in (10, 50, 95)}
    assert err[10] > err[50] > err[95]


@pytest.mark.parametrize("quality", [0, 96, -3])
def test_jpeg_rejects_out_of_range_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(_photo(), quality)


def test_jpeg_rejects_non_int_quality():
    with pytest.raises(TypeError):
        jpeg_compress(_photo(), 50.0)


def test_random_crop_keeps_size_and_full_fraction_is_identity():
    img = _photo()
    assert random_crop(img, np.random.default_rng(0), min_fraction=1.0).tobytes() == img.tobytes()
    out = random_crop(_photo(48), np.random.default_rng(0), min_fraction=0.5)
    assert out.size == (48, 48)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.2])
def test_random_crop_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="min_fraction"):
        random_crop(_photo(), np.random.default_rng(0), min_fraction=fraction)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_image_modes_come_back_as_rgb(mode):
    img = _photo(mode=mode)
    for fn in CORRUPTIONS.values():
        out = fn(img, np.random.default_rng(1))
        assert out.mode == "RGB" and out.size == img.size
    assert img.mode == mode


def test_tiny_and_non_square_images():
    for size in [(16, 16), (40, 24)]:
        img = Image.new("RGB", size, (120, 130, 140))
        for fn in (lambda i, r: scribble(i, r), lambda i, r: watermark(i, r, text="PHOTO")):
            out = fn(img, np.random.default_rng(3))
            assert out.size == size


def test_watermark_is_semi_transparent():
    """The photo must still show through: the watermark blends, it does not paint over."""
    img = Image.new("RGB", (96, 96), (0, 0, 0))
    out = _px(watermark(img, np.random.default_rng(5)))
    assert out.max() > 30  # something was drawn
    assert out.max() < 200  # but never fully opaque white on black


def test_rejects_non_images():
    with pytest.raises(TypeError):
        scribble(np.zeros((8, 8, 3), np.uint8), np.random.default_rng(0))
