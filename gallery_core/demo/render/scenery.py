"""Outdoor pieces: sky, sea, the city's mountains and skyline, trees, and the backdrop made of them.

Why separate from the scenes: facades, pools, gardens, beaches and the views through a room's window all
stand in front of the same city, so they share these pieces; a city's peaks and skyline come from its
fixed ``CityScape``, so every listing in a city sees the same horizon.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from gallery_core.demo.render.drawing import _ellipse, _jit, _mix, _rect, _shade, _vgradient
from gallery_core.demo.render.look import RGB, ListingLook


def _sky(look: ListingLook, rng: np.random.Generator, size: int, horizon: float) -> Image.Image:
    top = _jit(_shade(look.region.sky, 0.82), rng, 10)
    bottom = _jit(_mix(look.region.sky, (245, 240, 230), 0.55), rng, 8)
    img = _vgradient(size, top, bottom, 0.0, max(0.05, horizon))
    if rng.random() < 0.6:  # a few clouds
        d = ImageDraw.Draw(img, "RGBA")
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.uniform(0, size), rng.uniform(0.05, 0.6) * horizon * size
            w = rng.uniform(0.1, 0.25) * size
            for k in range(3):
                ox = (k - 1) * w * 0.35
                _ellipse(d, cx + ox - w * 0.3, cy - w * 0.12 - (k == 1) * w * 0.08, cx + ox + w * 0.3,
                         cy + w * 0.12, fill=(255, 255, 255, 150))
    return img


def _sea(d: ImageDraw.ImageDraw, look: ListingLook, rng: np.random.Generator, s: int, horizon: float,
         bottom: float, x0: float = 0.0, x1: float = 1.0) -> None:
    water = _jit(look.city.water, rng, 8)
    _rect(d, x0 * s, horizon * s, x1 * s, bottom * s, fill=water)
    _rect(d, x0 * s, horizon * s, x1 * s, (horizon + 0.012) * s, fill=_shade(water, 0.8))
    light = _mix(water, (255, 255, 255), 0.45)
    for _ in range(int(10 + (bottom - horizon) * 40)):
        y = rng.uniform(horizon + 0.02, bottom) * s
        x = rng.uniform(x0, x1) * s
        w = (0.02 + 0.06 * (y / s - horizon) / max(0.05, bottom - horizon)) * s
        d.line([(x, y), (x + w, y)], fill=light, width=max(1, s // 180))


def _mountains(d: ImageDraw.ImageDraw, look: ListingLook, s: int, horizon: float, scale: float, shift: float,
               colour: RGB) -> None:
    """The city's own peaks (shifted with the viewpoint), snow caps on the tall ones."""
    snow = (246, 248, 252)
    for x, h, hw in look.city.peaks:
        cx = (x + shift) * s
        top = (horizon - h * scale) * s
        half = hw * s * (0.6 + 0.4 * scale)
        d.polygon([(cx - half, horizon * s), (cx, top), (cx + half, horizon * s)], fill=colour)
        if h > 0.16:
            f = 0.28
            d.polygon([(cx - half * f, top + (horizon * s - top) * f), (cx, top),
                       (cx + half * f, top + (horizon * s - top) * f),
                       (cx + half * f * 0.3, top + (horizon * s - top) * f * 0.8),
                       (cx - half * f * 0.2, top + (horizon * s - top) * f * 1.05)], fill=snow)


def _skyline(d: ImageDraw.ImageDraw, look: ListingLook, s: int, base: float, scale: float, shift: float,
             colour: RGB, windows: bool) -> None:
    """The city's own skyline silhouette and landmark; ``scale`` stretches heights (near vs. far)."""
    lit = _mix(colour, (250, 226, 150), 0.6)
    for x0, x1, h, top in look.city.skyline:
        a, b = (x0 + shift) * s, (x1 + shift) * s
        y = (base - h * scale) * s
        _rect(d, a, y, b, base * s, fill=colour)
        if top == 1:
            d.polygon([(a, y), ((a + b) / 2, y - 0.04 * scale * s), (b, y)], fill=colour)
        elif top == 2:
            _rect(d, (a + b) / 2 - 0.003 * s, y - 0.06 * scale * s, (a + b) / 2 + 0.003 * s, y, fill=colour)
        elif top == 3:
            _rect(d, a + (b - a) * 0.25, y - 0.025 * scale * s, b - (b - a) * 0.25, y, fill=colour)
        if windows and b - a > 0.02 * s:
            step = max(2.0, 0.025 * s * scale)
            yy = y + step * 0.6
            while yy < base * s - step:
                _rect(d, a + (b - a) * 0.2, yy, b - (b - a) * 0.2, yy + step * 0.3, fill=lit)
                yy += step
    cx = (look.city.landmark_x + shift) * s
    b = base * s
    u = 0.06 * scale * s
    lm = look.city.landmark
    if lm == "spire":
        _rect(d, cx - u * 0.4, b - u * 3, cx + u * 0.4, b, fill=colour)
        d.polygon([(cx - u * 0.4, b - u * 3), (cx, b - u * 6), (cx + u * 0.4, b - u * 3)], fill=colour)
    elif lm == "dome":
        _rect(d, cx - u * 1.5, b - u * 2, cx + u * 1.5, b, fill=colour)
        d.pieslice((cx - u * 1.2, b - u * 3.2, cx + u * 1.2, b - u * 0.8), 180, 360, fill=colour)
        _rect(d, cx - u * 0.08, b - u * 3.8, cx + u * 0.08, b - u * 3.0, fill=colour)
    elif lm == "needle":
        _rect(d, cx - u * 0.15, b - u * 6.5, cx + u * 0.15, b, fill=colour)
        _ellipse(d, cx - u * 0.6, b - u * 5.2, cx + u * 0.6, b - u * 4.4, fill=colour)
    elif lm == "twin":
        for off in (-0.7, 0.7):
            _rect(d, cx + off * u - u * 0.35, b - u * 5.5, cx + off * u + u * 0.35, b, fill=colour)
        _rect(d, cx - u * 0.7, b - u * 3.2, cx + u * 0.7, b - u * 2.9, fill=colour)
    elif lm == "pyramid":
        d.polygon([(cx - u * 2.2, b), (cx, b - u * 3.2), (cx + u * 2.2, b)], fill=colour)
    elif lm == "wheel":
        r = u * 2.0
        d.ellipse((cx - r, b - r * 2.2, cx + r, b - r * 0.2), outline=colour, width=max(1, int(u * 0.2)))
        for k in range(6):
            a = k * math.pi / 6
            d.line([(cx - r * math.cos(a), b - r * 1.2 - r * math.sin(a)),
                    (cx + r * math.cos(a), b - r * 1.2 + r * math.sin(a))], fill=colour, width=max(1, int(u * 0.08)))
        d.polygon([(cx - u * 0.6, b), (cx, b - r * 1.2), (cx + u * 0.6, b)], fill=colour)
    elif lm == "arch":
        d.arc((cx - u * 2, b - u * 4, cx + u * 2, b + u * 4), 180, 360, fill=colour, width=max(2, int(u * 0.35)))
    elif lm == "pagoda":
        for k in range(4):
            w = u * (1.5 - 0.3 * k)
            y = b - k * u * 1.1
            d.polygon([(cx - w * 1.25, y - u * 0.75), (cx + w * 1.25, y - u * 0.75), (cx + w, y - u * 1.05),
                       (cx - w, y - u * 1.05)], fill=colour)
            _rect(d, cx - w * 0.7, y - u * 0.8, cx + w * 0.7, y, fill=colour)


def _tree(d: ImageDraw.ImageDraw, style: str, x: float, base: float, h: float, green: RGB,
          rng: np.random.Generator) -> None:
    trunk = (96, 70, 48)
    leaf = _jit(green, rng, 14)
    dark = _shade(leaf, 0.8)
    if style == "conifer":
        _rect(d, x - h * 0.04, base - h * 0.2, x + h * 0.04, base, fill=trunk)
        for k in range(3):
            w = h * (0.28 - 0.06 * k)
            y = base - h * (0.15 + 0.25 * k)
            d.polygon([(x - w, y), (x, y - h * 0.45), (x + w, y)], fill=leaf if k % 2 else dark)
    elif style == "cypress":
        _rect(d, x - h * 0.03, base - h * 0.1, x + h * 0.03, base, fill=trunk)
        _ellipse(d, x - h * 0.12, base - h, x + h * 0.12, base - h * 0.05, fill=dark)
    elif style == "palm":
        lean = float(rng.uniform(-0.15, 0.15)) * h
        top = (x + lean, base - h)
        d.line([(x, base), top], fill=(130, 100, 66), width=max(2, int(h * 0.05)))
        for k in range(7):
            a = math.pi * (0.05 + 0.9 * k / 6)
            end = (top[0] + math.cos(a) * h * 0.42, top[1] - math.sin(a) * h * 0.22 + h * 0.12)
            d.line([top, end], fill=leaf if k % 2 else dark, width=max(2, int(h * 0.06)))
    else:  # round
        _rect(d, x - h * 0.05, base - h * 0.45, x + h * 0.05, base, fill=trunk)
        _ellipse(d, x - h * 0.32, base - h, x + h * 0.32, base - h * 0.35, fill=dark)
        _ellipse(d, x - h * 0.22, base - h * 0.95, x + h * 0.26, base - h * 0.5, fill=leaf)


def _outdoor_backdrop(look: ListingLook, rng: np.random.Generator, s: int, horizon: float, *, sea: bool,
                      mountains: bool, skyline: bool, skyline_scale: float = 0.5) -> tuple[Image.Image,
                                                                                             ImageDraw.ImageDraw]:
    """Sky plus whatever lies on the horizon; returns the image and an RGBA-capable drawer."""
    img = _sky(look, rng, s, horizon)
    d = ImageDraw.Draw(img, "RGBA")
    shift = float(rng.uniform(-0.12, 0.12))
    haze = _mix(look.region.sky, (120, 130, 150), 0.45)
    if mountains:
        _mountains(d, look, s, horizon, float(rng.uniform(0.8, 1.3)), shift, _jit(_mix(haze, (70, 90, 80), 0.3), rng, 8))
    if skyline:
        _skyline(d, look, s, horizon, skyline_scale, shift, _jit(_mix(haze, (60, 64, 80), 0.4), rng, 6),
                 windows=skyline_scale > 0.8)
    if sea:
        _sea(d, look, rng, s, horizon, 1.0)
    return img, d
