"""The camera: how a drawn scene becomes a catalogue photo.

Why separate from the scenes: every photo, whatever its kind, goes through the same viewpoint change,
downscaling, lighting and uploader edits, and that is where photos of one scene differ from each other.
Its probabilities are module constants so tests can switch an effect off.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops

from gallery_core.data import corruptions

#: Probability that a photo is cropped by its uploader, and that it carries a watermark or scribble.
CROP_PROBABILITY = 0.15
DEFACE_PROBABILITY = 0.03
#: Share of photos taken at an oblique angle (perspective warp) rather than roughly square-on (affine).
KEYSTONE_PROBABILITY = 0.35


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """Coefficients for ``Image.transform(PERSPECTIVE)`` mapping output corners ``dst`` to input ``src``."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(float(c) for c in np.linalg.solve(np.asarray(rows, np.float64), np.asarray(rhs, np.float64)))


def _affine_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """Coefficients for ``Image.transform(AFFINE)`` mapping three output points ``dst`` to input ``src``."""
    a = np.hstack([dst, np.ones((3, 1))])
    (ca, cb, cc), (cd, ce, cf) = np.linalg.solve(a, src[:, 0]), np.linalg.solve(a, src[:, 1])
    return float(ca), float(cb), float(cc), float(cd), float(ce), float(cf)


_VIGNETTE_LEVELS = 9  # strengths 0, 0.05, ..., 0.4 (darkening at the corners)


@lru_cache(maxsize=32)
def _vignette_mask(size: int, level: int) -> Image.Image:
    """RGB multiplier image: 255 at the centre, 255 * (1 - 0.05 * level) in the corners."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    r2 = (c[None, :] ** 2 + c[:, None] ** 2) / 2.0
    mask = np.rint(255.0 * (1.0 - 0.05 * level * r2)).astype(np.uint8)
    return Image.fromarray(mask, "L").convert("RGB")


@lru_cache(maxsize=16)
def _noise_texture(size: int, sigma: int) -> Image.Image:
    """Grey sensor noise centred on 128 with std ``sigma``, twice the photo size so a random window of it can
    be used per photo. Drawn from a fixed generator: the same on every machine and in every process."""
    noise = np.random.default_rng([104_729, size, sigma]).normal(128.0, sigma, size=(2 * size, 2 * size))
    return Image.fromarray(np.clip(np.rint(noise), 0, 255).astype(np.uint8), "L").convert("RGB")


def photograph(scene: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """Take a catalogue photo of ``scene``: viewpoint, downscale to ``size``, lighting, user edits.

    The viewpoint is a single perspective warp (zoom 1.08-1.3, shift, rotation up to 3 degrees and corner
    jitter) that always stays inside the scene, so no blank borders appear. Lighting varies exposure,
    contrast, colour temperature, vignetting and sensor noise. Then, as uploaders do, a few photos are
    cropped (``CROP_PROBABILITY``) and a few get a watermark or scribbles (``DEFACE_PROBABILITY``).
    """
    r = scene.size[0]
    zoom = float(rng.uniform(1.08, 1.3))
    half = r / (2.0 * zoom)
    theta = math.radians(float(rng.uniform(-3.0, 3.0)))
    slack = r / 2.0 - half * (abs(math.cos(theta)) + abs(math.sin(theta)))
    jitter = 0.03 * r
    room = max(0.0, slack - jitter)
    cx = r / 2.0 + float(rng.uniform(-room, room))
    cy = r / 2.0 + float(rng.uniform(-room, room))
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    corners = np.array([(-half, -half), (half, -half), (half, half), (-half, half)])
    src = np.stack([cx + corners[:, 0] * cos_t - corners[:, 1] * sin_t,
                    cy + corners[:, 0] * sin_t + corners[:, 1] * cos_t], axis=1)
    offsets = rng.uniform(-jitter, jitter, size=(4, 2)) * min(1.0, slack / max(jitter, 1e-6))
    dst = np.array([(0, 0), (r, 0), (r, r), (0, r)], dtype=np.float64)
    # Nearest-neighbour sampling at the supersampled size, then box averaging: 4+ samples per output pixel
    # (antialiased) at a fraction of the cost of Pillow's bilinear warp. A true keystone (perspective) warp
    # costs 4x an affine one, so only some photos get it; the others get rotation, zoom, shift and shear.
    if rng.random() < KEYSTONE_PROBABILITY:
        method, coeffs = Image.Transform.PERSPECTIVE, _perspective_coeffs(dst, src + offsets)
    else:
        # three corners define the affine map; the fourth follows, so it moves by up to 3 offsets: shrink them
        method, coeffs = Image.Transform.AFFINE, _affine_coeffs(dst[[0, 1, 3]], (src + offsets / 3.0)[[0, 1, 3]])
    warped = scene.transform((r, r), method, coeffs, resample=Image.Resampling.NEAREST)
    if r == size:
        small = warped
    elif r == 2 * size:
        small = warped.reduce(2)
    else:
        small = warped.resize((size, size), Image.Resampling.BOX)
    # Lighting with Pillow primitives (a per-channel lookup table, a cached vignette mask and a cached noise
    # texture at a random offset): about 5x cheaper than the same arithmetic on float arrays.
    exposure = float(rng.uniform(0.72, 1.18))
    contrast = float(rng.uniform(0.85, 1.15))
    temp = float(rng.uniform(-0.09, 0.09))
    vignette_level = int(rng.integers(0, _VIGNETTE_LEVELS))
    noise_sigma = int(rng.integers(0, 5))
    noise_offset = (int(rng.integers(0, size)), int(rng.integers(0, size)))
    levels = (np.arange(256, dtype=np.float64) - 128.0) * contrast + 128.0
    lut = np.concatenate([levels * exposure * (1.0 + temp), levels * exposure, levels * exposure * (1.0 - temp)])
    out = small.point(np.clip(np.rint(lut), 0, 255).astype(np.uint8).tolist())
    if vignette_level:
        out = ImageChops.multiply(out, _vignette_mask(size, vignette_level))
    if noise_sigma:
        x, y = noise_offset
        out = ImageChops.add(out, _noise_texture(size, noise_sigma).crop((x, y, x + size, y + size)), 1.0, -128)
    if rng.random() < CROP_PROBABILITY:
        out = corruptions.random_crop(out, rng, min_fraction=0.75)
    if rng.random() < DEFACE_PROBABILITY:
        out = corruptions.watermark(out, rng) if rng.random() < 0.5 else corruptions.scribble(out, rng)
    return out
