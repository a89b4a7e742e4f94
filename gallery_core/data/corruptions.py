"""Deterministic photo corruptions.

Real catalogue photos arrive re-compressed, cropped, scribbled on and watermarked. The visual-search
paper trains and evaluates against exactly these, so they live in one small module that the demo
generator (a few corrupted photos in the catalogue), robustness training (augmentation) and robustness
evaluation (corrupted query photos) all share.

Every function:

* takes a ``PIL.Image`` and returns a **new** RGB image of the same size (the input is never mutated);
* draws all its randomness from the ``numpy.random.Generator`` it is given, so the same generator state
  gives the same pixels (the only other inputs are Pillow's JPEG codec and its bundled default font).

``CORRUPTIONS`` maps a short name to a ``(image, rng) -> image`` callable with randomised strength, so a
caller can pick one by name from a config file. The callables are module-level functions (not lambdas)
so they can be pickled into worker processes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["CORRUPTIONS", "CORRUPTION_KINDS", "jpeg_compress", "random_crop", "scribble", "watermark"]


def _as_rgb(img: Image.Image) -> Image.Image:
    """Return an RGB copy (never the input object itself), so callers can draw on it freely."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(img).__name__}")
    return img.convert("RGB") if img.mode != "RGB" else img.copy()


def jpeg_compress(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode ``img`` as JPEG at ``quality`` (1-95) and decode it again.

    Low qualities (10-30) reproduce the blocking and colour bleeding of photos that went through
    several upload pipelines. The result is fully decoded, so it does not keep a file buffer open.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise TypeError(f"quality must be an int, got {type(quality).__name__}")
    if not 1 <= int(quality) <= 95:
        raise ValueError(f"quality must be in 1..95 (Pillow's useful JPEG range), got {quality}")
    buf = io.BytesIO()
    _as_rgb(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


def random_crop(img: Image.Image, rng: np.random.Generator, min_fraction: float = 0.6) -> Image.Image:
    """Crop a random window and resize it back to the original size.

    The window keeps the aspect ratio; its side is a fraction drawn uniformly from
    ``[min_fraction, 1]`` of the original side, and its position is uniform. Resizing back keeps the
    image size constant, so downstream batching never sees a different shape, while the content is
    zoomed and shifted as in a user's own crop.
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    src = _as_rgb(img)
    w, h = src.size
    frac = float(rng.uniform(min_fraction, 1.0))
    cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return src.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour (one channel high, one low), like a marker pen."""
    channels = rng.permutation(3)
    colour = [0, 0, 0]
    colour[channels[0]] = int(rng.integers(180, 256))
    colour[channels[1]] = int(rng.integers(0, 256))
    colour[channels[2]] = int(rng.integers(0, 60))
    return colour[0], colour[1], colour[2]


def scribble(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Draw 1-4 random coloured free-hand strokes (polylines of 3-7 points) over the photo."""
    out = _as_rgb(img)
    w, h = out.size
    draw = ImageDraw.Draw(out)
    for _ in range(int(rng.integers(1, 5))):
        n_points = int(rng.integers(3, 8))
        start = rng.uniform(0.0, 1.0, size=2) * (w, h)
        steps = rng.normal(0.0, 0.18, size=(n_points - 1, 2)) * (w, h)
        points = np.vstack([start, start + np.cumsum(steps, axis=0)])
        width = max(1, round(min(w, h) * float(rng.uniform(0.01, 0.035))))
        draw.line([(float(x), float(y)) for x, y in points], fill=_random_colour(rng), width=width,
                  joint="curve")
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled default font at ``size`` px (no system fonts, so output is machine-independent)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def watermark(img: Image.Image, rng: np.random.Generator, text: str = "SAMPLE") -> Image.Image:
    """Overlay semi-transparent ``text`` next to a ring logo, slightly rotated, at a random place.

    Stock-photo and agency watermarks are light, partly transparent and often tilted; the opacity
    (35-65 %), size, angle (-25..25 degrees) and position are drawn from ``rng``.
    """
    out = _as_rgb(img)
    w, h = out.size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = int(rng.integers(90, 167))
    grey = int(rng.integers(200, 256))
    colour = (grey, grey, grey, alpha)
    font_px = max(6, round(min(w, h) * float(rng.uniform(0.12, 0.2))))
    font = _font(font_px)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    ring = max(3, th)
    total_w = ring + font_px // 3 + tw
    x0 = float(rng.uniform(min(0.0, w - total_w), max(0.0, w - total_w)))  # may overhang a tiny image
    y0 = float(rng.uniform(0.1 * h, max(0.1 * h, 0.9 * h - ring)))
    draw.ellipse((x0, y0, x0 + ring, y0 + ring), outline=colour, width=max(1, ring // 6))
    draw.text((x0 + ring + font_px // 3 - left, y0 - top), text, font=font, fill=colour)
    angle = float(rng.uniform(-25.0, 25.0))
    layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, center=(x0 + total_w / 2, y0 + th / 2))
    base = out.convert("RGBA")
    base.alpha_composite(layer)
    return base.convert("RGB")


def _jpeg_random(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """JPEG re-compression at a quality drawn uniformly from 10..30 (harsh, as in the robustness tests)."""
    return jpeg_compress(img, int(rng.integers(10, 31)))


def _crop_random(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``random_crop`` with its default minimum fraction (0.6 of the side)."""
    return random_crop(img, rng)


def _scribble_random(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return scribble(img, rng)


def _watermark_random(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return watermark(img, rng)


CORRUPTIONS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "jpeg": _jpeg_random,
    "crop": _crop_random,
    "scribble": _scribble_random,
    "watermark": _watermark_random,
}
# Their names in a fixed order: augmentation draws and the robustness evaluation's per-kind seeds index it.
CORRUPTION_KINDS: tuple[str, ...] = tuple(CORRUPTIONS)
