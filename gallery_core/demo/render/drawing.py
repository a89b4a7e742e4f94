"""Colour helpers and shape primitives shared by every scene.

Why they exist: scenes are written in unit coordinates and colours that get jittered, mixed and shaded
per listing; these helpers keep that arithmetic in one place (clipped to 0..255, corners in any order) so
a scene reads as what it draws. All randomness comes from the generator passed in, never global state.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from gallery_core.demo.render.look import RGB


def _clip(v: float) -> int:
    return 0 if v < 0 else 255 if v > 255 else int(v)


def _jit(c: RGB, rng: np.random.Generator, amount: float = 12.0) -> RGB:
    d = rng.uniform(-amount, amount, size=3)
    return _clip(c[0] + d[0]), _clip(c[1] + d[1]), _clip(c[2] + d[2])


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return _clip(a[0] + (b[0] - a[0]) * t), _clip(a[1] + (b[1] - a[1]) * t), _clip(a[2] + (b[2] - a[2]) * t)


def _shade(c: RGB, f: float) -> RGB:
    return _clip(c[0] * f), _clip(c[1] * f), _clip(c[2] * f)


def _alpha(c: RGB, a: int) -> tuple[int, int, int, int]:
    return c[0], c[1], c[2], a


def _hsv(h: float, s: float, v: float) -> RGB:
    """HSV (all in [0, 1]) to RGB; used to pick harmonious vs. clashing decor colours."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return _clip(r * 255), _clip(g * 255), _clip(b * 255)


def _rect(d: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float, fill, outline=None,
          width: int = 1) -> None:
    d.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=fill, outline=outline, width=width)


def _ellipse(d: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float, fill, outline=None,
             width: int = 1) -> None:
    d.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=fill, outline=outline, width=width)


def _vgradient(size: int, top: RGB, bottom: RGB, y0: float = 0.0, y1: float = 1.0) -> Image.Image:
    """A square image with a vertical gradient from ``top`` (at y0) to ``bottom`` (at y1)."""
    t = np.clip((np.linspace(0.0, 1.0, size) - y0) / max(1e-6, y1 - y0), 0.0, 1.0)[:, None]
    col = np.asarray(top, np.float64)[None, :] * (1 - t) + np.asarray(bottom, np.float64)[None, :] * t
    column = Image.fromarray(np.rint(col).astype(np.uint8)[:, None, :], "RGB")  # (size, 1) pixels
    return column.resize((size, size), Image.Resampling.NEAREST)


def _logo(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: RGB) -> None:
    """Draw a chain logo of radius ``r`` centred at (cx, cy)."""
    if shape == "circle":
        _ellipse(d, cx - r, cy - r, cx + r, cy + r, fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif shape == "square":
        _rect(d, cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85, fill=fill)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        d.polygon(pts, fill=fill)
    elif shape == "chevron":
        w = r * 0.45
        d.polygon([(cx - r, cy - r * 0.6), (cx, cy + r * 0.2), (cx + r, cy - r * 0.6), (cx + r, cy - r * 0.6 + w),
                   (cx, cy + r * 0.2 + w), (cx - r, cy - r * 0.6 + w)], fill=fill)
    else:  # pragma: no cover - guarded by the world-model tests
        raise ValueError(f"unknown logo shape {shape!r}")
