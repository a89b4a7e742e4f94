"""Augmentations and robustness corruptions are deterministic for a seed and independent of batching."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gallery_core.data.decode import load_photo
from gallery_core.evaluation.robustness import corrupted_pixels, corruption_rng
from gallery_core.training.augment import (
    AUGMENTATIONS,
    Augmenter,
    augment_image,
    load_corrupted_photo,
    photo_rng,
)


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_each_augmentation_is_deterministic_for_a_seed(kind):
    img = _photo()
    a, name_a = augment_image(img, np.random.default_rng(5), probability=1.0, kinds=(kind,))
    b, name_b = augment_image(img, np.random.default_rng(5), probability=1.0, kinds=(kind,))
    assert name_a == name_b == kind
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size == img.size
    assert not np.array_equal(np.asarray(a), np.asarray(img))  # it did change the photo
    assert np.array_equal(np.asarray(img), np.asarray(_photo()))  # and left the input alone


def test_probability_zero_keeps_the_photo_and_bad_arguments_fail():
    img = _photo()
    same, name = augment_image(img, np.random.default_rng(1), probability=0.0)
    assert name is None and np.array_equal(np.asarray(same), np.asarray(img))
    with pytest.raises(ValueError, match="probability"):
        augment_image(img, np.random.default_rng(1), probability=1.5)
    with pytest.raises(ValueError, match="unknown augmentations"):
        augment_image(img, np.random.default_rng(1), kinds=("blur",))


def test_photo_rng_depends_on_seed_epoch_and_row_only():
    assert photo_rng(0, 1, 7).random() == photo_rng(0, 1, 7).random()
    draws = {photo_rng(s, e, r).random() for s, e, r in [(0, 1, 7), (1, 1, 7), (0, 2, 7), (0, 1, 8)]}
    assert len(draws) == 4


def test_augmenter_is_independent_of_batch_order(tiny_catalogue):
    paths = sorted(str(p) for p in (tiny_catalogue / "photos").rglob("*.jpg"))[:6]
    rows = list(range(6))
    augmenter = Augmenter(image_size=32, seed=3, probability=1.0, workers=2)
    forward = augmenter.pixels(paths, rows, epoch=1)
    backward = augmenter.pixels(paths[::-1], rows[::-1], epoch=1)
    assert forward.shape == (6, 32, 32, 3) and forward.dtype == np.uint8
    assert np.array_equal(forward, backward[::-1])
    assert not np.array_equal(forward, augmenter.pixels(paths, rows, epoch=2))  # a new epoch, new corruptions
    clean = Augmenter(image_size=32, probability=0.0).pixels(paths, rows, epoch=1)
    assert np.array_equal(clean, np.stack([load_photo(p, 32) for p in paths]))


def test_robustness_corruptions_are_deterministic(tiny_catalogue):
    paths = sorted(str(p) for p in (tiny_catalogue / "photos").rglob("*.jpg"))[:3]
    for kind in AUGMENTATIONS:
        a = corrupted_pixels(paths, [10, 11, 12], 32, kind, seed=0)
        b = corrupted_pixels(paths, [10, 11, 12], 32, kind, seed=0)
        assert np.array_equal(a, b)
        single = load_corrupted_photo(paths[1], 32, corruption_rng(0, kind, 11), kind=kind)
        assert np.array_equal(a[1], single)
    with pytest.raises(ValueError, match="unknown corruption"):
        corruption_rng(0, "blur", 1)
