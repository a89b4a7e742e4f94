"""Outdoor scenes: the facade, the pool, the garden and the beach.

Each scene is one function registered under its photo kind with ``@scene``; ``render_scene`` finds it
there. A scene draws at ``s`` px (square) from the listing's look, its decor and the photo's generator,
and must draw the same pixels for the same generator state (the catalogue is byte-reproducible).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gallery_core.demo.render.buildings import _MAX_STOREYS, _STOREYS, _WIDTH, _building
from gallery_core.demo.render.drawing import _ellipse, _hsv, _jit, _mix, _rect, _shade
from gallery_core.demo.render.look import Decor, ListingLook
from gallery_core.demo.render.registry import scene
from gallery_core.demo.render.scenery import _outdoor_backdrop, _sea, _tree


@scene("facade")
def _facade(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The building from the street, in its city: the listing's first photo, usually."""
    lo, hi = _STOREYS[look.size_bucket]
    storeys = min(int(rng.integers(lo, hi + 1)), _MAX_STOREYS.get(look.property_type, 99))
    horizon = float(rng.uniform(0.6, 0.72))
    ground = float(rng.uniform(0.84, 0.92))
    city = look.city
    img, d = _outdoor_backdrop(look, rng, s, horizon, sea=False, mountains=city.hills, skyline=city.large)
    if city.geography == "coastal":
        _sea(d, look, rng, s, horizon, ground - 0.03)
    ground_col = (128, 128, 132) if look.has("city_centre") or city.geography == "urban" else _mix(
        look.region.ground, look.region.vegetation, 0.3)
    _rect(d, 0, (ground - 0.03) * s, s, s, fill=_jit(ground_col, rng, 8))
    _rect(d, 0, ground * s, s, s, fill=_jit(_shade(ground_col, 0.85), rng, 6))
    lo_w, hi_w = _WIDTH[look.property_type]
    width = float(rng.uniform(lo_w, hi_w))
    storey_h = min(0.1, (ground - 0.1) / (storeys + 1.2))
    cx = 0.5 + float(rng.uniform(-0.08, 0.08))
    if look.has("city_centre"):  # dense street: neighbours on both sides
        for side in (-1, 1):
            n_st = max(1, storeys + int(rng.integers(-2, 3)))
            nw = 0.4
            _building(d, look, None, rng, s, cx + side * (width / 2 + nw / 2 + 0.005), ground, nw, n_st, storey_h)
    else:
        xs = (cx - width / 2 - 0.08, cx + width / 2 + 0.08)
        for x in xs:
            _tree(d, look.region.tree, x * s, ground * s, float(rng.uniform(0.22, 0.34)) * s,
                  look.region.vegetation, rng)
    _building(d, look, decor, rng, s, cx, ground, width, storeys, storey_h)
    if look.has("garden") or (not look.has("city_centre") and rng.random() < 0.5):
        for _ in range(int(rng.integers(3, 7))):
            bx = rng.uniform(0, 1) * s
            r = rng.uniform(0.025, 0.05) * s
            _ellipse(d, bx - r * 1.4, ground * s - r, bx + r * 1.4, ground * s + r * 0.6,
                     fill=_jit(look.region.vegetation, rng, 15))
    return img


@scene("pool")
def _pool(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The pool deck, with the sea, hills or skyline behind it as the listing has them."""
    horizon = float(rng.uniform(0.35, 0.48))
    city = look.city
    img, d = _outdoor_backdrop(look, rng, s, horizon, sea=look.has("sea_view"),
                               mountains=city.hills and not look.has("sea_view"),
                               skyline=city.large and look.has("city_view") and not look.has("sea_view"))
    if not look.has("sea_view"):
        _rect(d, 0, horizon * s, s, s, fill=_jit(_mix(look.region.vegetation, look.region.ground, 0.4), rng, 8))
        for _ in range(int(rng.integers(3, 7))):
            _tree(d, look.region.tree, rng.uniform(0, 1) * s, (horizon + 0.08) * s, rng.uniform(0.15, 0.3) * s,
                  look.region.vegetation, rng)
    deck_y = horizon + float(rng.uniform(0.05, 0.12))
    deck = _jit((222, 210, 186) if decor.lux > 0.5 else (196, 190, 180), rng, 8)
    _rect(d, 0, deck_y * s, s, s, fill=deck)
    water = _jit((64, 176, 214), rng, 14)
    water = _mix(water, (90, 140, 110), 0.4 * decor.wear)
    py0, py1 = deck_y + 0.08, float(rng.uniform(0.82, 0.95))
    if look.property_type in ("resort", "villa") and rng.random() < 0.6:  # free-form pool
        _ellipse(d, 0.08 * s, py0 * s, 0.92 * s, py1 * s, fill=_shade(deck, 0.85))
        _ellipse(d, 0.1 * s, (py0 + 0.01) * s, 0.9 * s, (py1 - 0.01) * s, fill=water)
    else:
        shrink = float(rng.uniform(0.05, 0.15))
        d.polygon([((0.1 + shrink) * s, py0 * s), ((0.9 - shrink) * s, py0 * s), (0.97 * s, py1 * s),
                   (0.03 * s, py1 * s)], fill=water, outline=_shade(deck, 0.85))
    light = _mix(water, (255, 255, 255), 0.4)
    for _ in range(14):
        x, y = rng.uniform(0.15, 0.85) * s, rng.uniform(py0 + 0.02, py1 - 0.02) * s
        d.arc((x - 0.04 * s, y - 0.01 * s, x + 0.04 * s, y + 0.01 * s), 200, 340, fill=light, width=1)
    n_loungers = {"xs": 2, "s": 3, "m": 4, "l": 5, "xl": 6}[look.size_bucket]
    lounger = look.chain.primary if look.chain is not None else ((246, 246, 242) if decor.lux > 0.5 else decor.textile)
    for k in range(n_loungers):
        lx = (0.05 + 0.9 * (k + 0.5) / n_loungers) * s
        ly = (deck_y + 0.03) * s
        d.polygon([(lx - 0.05 * s, ly + 0.03 * s), (lx + 0.04 * s, ly + 0.03 * s), (lx + 0.06 * s, ly),
                   (lx + 0.03 * s, ly + 0.015 * s)], fill=lounger)
        if k % 2 == 0:
            umb = look.chain.secondary if look.chain is not None else look.accent
            d.pieslice((lx - 0.07 * s, ly - 0.11 * s, lx + 0.07 * s, ly - 0.01 * s), 180, 360, fill=umb)
            d.line([(lx, ly - 0.06 * s), (lx, ly + 0.03 * s)], fill=(90, 80, 70), width=1)
    return img


@scene("garden")
def _garden(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The garden: lawn, trees, flowers and a bench; kept or neglected by wear."""
    horizon = float(rng.uniform(0.35, 0.5))
    img, d = _outdoor_backdrop(look, rng, s, horizon, sea=False, mountains=look.city.hills, skyline=False)
    lawn = _jit(_mix(look.region.vegetation, (170, 200, 110), 0.25), rng, 10)
    lawn = _mix(lawn, (170, 150, 90), 0.5 * decor.wear)  # poorly kept lawns go yellow
    _rect(d, 0, horizon * s, s, s, fill=lawn)
    for _ in range(int(rng.integers(4, 9))):  # hedge and trees along the back
        _tree(d, look.region.tree, rng.uniform(0, 1) * s, (horizon + 0.04) * s, rng.uniform(0.2, 0.35) * s,
              look.region.vegetation, rng)
    bx = float(rng.choice([-0.1, 1.1]))
    _building(d, look, None, rng, s, bx, horizon + 0.12, 0.5, 3, 0.12)
    path = _jit(look.region.ground, rng, 10)
    px = float(rng.uniform(0.35, 0.65))
    d.polygon([(px * s, horizon * s), ((px + 0.04) * s, horizon * s), ((px + 0.25) * s, s), ((px - 0.2) * s, s)],
              fill=path)
    n_flowers = int(10 + 40 * decor.lux * (1 - decor.wear))
    flower_cols = [_hsv(float(rng.uniform()), 0.7, 0.95) for _ in range(3)]
    for _ in range(n_flowers):
        fx, fy = rng.uniform(0, 1) * s, rng.uniform(horizon + 0.1, 0.98) * s
        r = 0.008 * s * (0.5 + (fy / s - horizon) * 2)
        _ellipse(d, fx - r, fy - r, fx + r, fy + r, fill=flower_cols[int(rng.integers(3))])
    bench_x = float(rng.uniform(0.1, 0.7))
    _rect(d, bench_x * s, 0.7 * s, (bench_x + 0.18) * s, 0.73 * s, fill=decor.wood)
    _rect(d, bench_x * s, 0.64 * s, (bench_x + 0.18) * s, 0.66 * s, fill=decor.wood)
    for lx in (bench_x + 0.01, bench_x + 0.16):
        _rect(d, lx * s, 0.73 * s, (lx + 0.012) * s, 0.78 * s, fill=_shade(decor.wood, 0.7))
    return img


@scene("beach")
def _beach(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The beach in front of a coastal listing, with umbrellas in house colours."""
    horizon = float(rng.uniform(0.35, 0.5))
    img, d = _outdoor_backdrop(look, rng, s, horizon, sea=True, mountains=look.city.hills and rng.random() < 0.6,
                               skyline=False)
    shore = horizon + float(rng.uniform(0.15, 0.3))
    sand = _jit(look.region.sand, rng, 8)
    d.polygon([(0, shore * s), (s, (shore + float(rng.uniform(-0.08, 0.08))) * s), (s, s), (0, s)], fill=sand)
    d.line([(0, shore * s), (s, shore * s)], fill=(250, 250, 250, 140), width=max(1, s // 120))
    umb = look.chain.primary if look.chain is not None else look.accent
    for k in range(int(rng.integers(2, 6))):
        ux = rng.uniform(0.05, 0.95) * s
        uy = rng.uniform(shore + 0.08, 0.92) * s
        r = 0.06 * s * (0.6 + (uy / s - shore))
        d.line([(ux, uy - r * 0.6), (ux, uy + r * 0.7)], fill=(110, 90, 70), width=max(1, s // 120))
        d.pieslice((ux - r, uy - r * 1.1, ux + r, uy - r * 0.1), 180, 360, fill=umb if k % 2 == 0 else (246, 246, 242))
    if look.region.tree == "palm" or rng.random() < 0.2:
        for x in (rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)):
            _tree(d, "palm", x * s, (shore + 0.15) * s, rng.uniform(0.35, 0.5) * s, look.region.vegetation, rng)
    return img
