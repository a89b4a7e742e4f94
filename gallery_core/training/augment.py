"""Training augmentations for robustness: JPEG re-compression, cropping, scribbles and watermarks.

Resellers' photos arrive re-compressed, cropped and drawn on (the visual-search paper's setting); the
encoder learns to ignore that by seeing such photos in training. The corruptions themselves are the
shared ones of ``gallery_core.data.corruptions`` (the robustness evaluation uses the same), applied to the
decoded photo at its own resolution before it is resized to the model's input, as happens in life.

Every photo's randomness comes from ``photo_rng(seed, epoch, row)``: the same photo in the same epoch
gets the same corruption whatever the batch order, thread or machine, and a new one the next epoch.
Augmentation changes pixels, so it cannot use the frozen-trunk cache: training decodes every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gallery_core.data.corruptions import CORRUPTION_KINDS, CORRUPTIONS
from gallery_core.data.decode import open_photo

AUGMENTATIONS: tuple[str, ...] = CORRUPTION_KINDS  # every shared corruption, in its fixed order
DEFAULT_PROBABILITY = 0.5  # half the photos stay clean, so clean photos remain the common case


def photo_rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    """The generator of one photo's augmentation in one epoch (independent of batching)."""
    return np.random.default_rng([int(seed), int(epoch), int(row)])


def augment_image(img: Image.Image, rng: np.random.Generator, probability: float = DEFAULT_PROBABILITY,
                  kinds: Sequence[str] = AUGMENTATIONS) -> tuple[Image.Image, str | None]:
    """With ``probability``, one corruption drawn uniformly from ``kinds``; returns (image, its name or None).

    The input image is never modified.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    unknown = [k for k in kinds if k not in CORRUPTIONS]
    if unknown or not kinds:
        raise ValueError(f"unknown augmentations {unknown}; choose from {sorted(CORRUPTIONS)}")
    if rng.random() >= probability:
        return img.copy(), None
    kind = kinds[int(rng.integers(len(kinds)))]
    return CORRUPTIONS[kind](img, rng), kind


def load_corrupted_photo(source: str | Path, size: int, rng: np.random.Generator, kind: str | None = None,
                         probability: float = 1.0, kinds: Sequence[str] = AUGMENTATIONS) -> np.ndarray:
    """Decode a photo, corrupt it (``kind`` if given, else as ``augment_image``), resize -> uint8 (size, size, 3).

    Decoding (``decode.open_photo``: orientation, colour modes, large photos) and resizing are those of
    ``load_photo``, so a photo left clean has its usual pixels.
    """
    if kind is not None and kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    img = open_photo(source, size)
    if kind is None:
        img, _ = augment_image(img, rng, probability, kinds)
    else:
        img = CORRUPTIONS[kind](img, rng)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


@dataclass
class Augmenter:
    """Decodes a training batch's photos with augmentations: ``pixels(paths, rows, epoch)``."""

    image_size: int
    seed: int = 0
    probability: float = DEFAULT_PROBABILITY
    kinds: tuple[str, ...] = AUGMENTATIONS
    workers: int = 2

    def __post_init__(self) -> None:
        augment_image(Image.new("RGB", (4, 4)), np.random.default_rng(0), self.probability, self.kinds)  # validates

    def pixels(self, paths: Sequence[str], rows: Sequence[int], epoch: int) -> np.ndarray:
        """uint8 (P, S, S, 3): photo ``paths[i]`` (catalogue photo row ``rows[i]``) as augmented in ``epoch``."""
        def one(item: tuple[str, int]) -> np.ndarray:
            path, row = item
            return load_corrupted_photo(path, self.image_size, photo_rng(self.seed, epoch, row),
                                        probability=self.probability, kinds=self.kinds)

        items = list(zip(paths, rows, strict=True))
        if self.workers <= 1 or len(items) < 8:
            return np.stack([one(i) for i in items])
        with ThreadPoolExecutor(max_workers=self.workers) as pool:  # PIL releases the GIL while decoding
            return np.stack(list(pool.map(one, items)))
