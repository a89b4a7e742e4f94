"""Indoor scenes: the view from a room's window, bedroom, bathroom, kitchen, lobby or bar, and gym.

Interior pieces (floor, wall wear, art, clutter, what lies outside the window, balcony railings) come
first, then the scenes. Each scene is one function registered under its photo kind with ``@scene``; it
draws at ``s`` px from the listing's look and decor, and must draw the same pixels for the same generator
state (the catalogue is byte-reproducible).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

from gallery_core.demo.render.buildings import _building
from gallery_core.demo.render.drawing import _ellipse, _hsv, _jit, _logo, _mix, _rect, _shade
from gallery_core.demo.render.look import RGB, Decor, ListingLook
from gallery_core.demo.render.registry import scene
from gallery_core.demo.render.scenery import _outdoor_backdrop, _sky, _tree


def _floor(d: ImageDraw.ImageDraw, decor: Decor, rng: np.random.Generator, s: int, y: float) -> None:
    _rect(d, 0, y * s, s, s, fill=decor.floor)
    line = _shade(decor.floor, 0.82)
    if decor.floor_kind == "wood":
        k = y
        while k < 1.0:
            d.line([(0, k * s), (s, k * s)], fill=line, width=1)
            k += 0.02 + (k - y) * 0.12
    elif decor.floor_kind in ("tile", "marble"):
        n = 7
        for i in range(-n, 2 * n):
            d.line([(s / 2 + (i - n / 2) * s / n * 0.35, y * s), (s / 2 + (i - n / 2) * s / n * 1.6, s)], fill=line,
                   width=1)
        k = y
        while k < 1.0:
            d.line([(0, k * s), (s, k * s)], fill=line, width=1)
            k += 0.03 + (k - y) * 0.25
        if decor.floor_kind == "marble":
            for _ in range(4):
                x0 = rng.uniform(0, s)
                d.line([(x0, y * s), (x0 + rng.uniform(-0.2, 0.2) * s, s)], fill=(200, 196, 190), width=1)
    for _ in range(int(decor.wear * 5)):  # stains
        ex, ey = rng.uniform(0, s), rng.uniform(y, 1.0) * s
        r = rng.uniform(0.02, 0.05) * s
        _ellipse(d, ex - r * 1.5, ey - r * 0.5, ex + r * 1.5, ey + r * 0.5, fill=(60, 50, 40, int(40 + 60 * decor.wear)))


def _wall_wear(d: ImageDraw.ImageDraw, decor: Decor, rng: np.random.Generator, s: int, y1: float) -> None:
    for _ in range(int(decor.wear * 4)):
        ex, ey = rng.uniform(0, s), rng.uniform(0.05, y1) * s
        r = rng.uniform(0.015, 0.05) * s
        _ellipse(d, ex - r, ey - r, ex + r, ey + r * 1.8, fill=(70, 60, 40, int(30 + 50 * decor.wear)))


def _art(d: ImageDraw.ImageDraw, decor: Decor, s: int, x0: float, y0: float, w: float, h: float) -> None:
    if not decor.art:
        return
    n = len(decor.art)
    gap = w * 0.08
    fw = (w - gap * (n - 1)) / n
    for k, colour in enumerate(decor.art):
        ax = x0 + k * (fw + gap)
        _rect(d, ax * s, y0 * s, (ax + fw) * s, (y0 + h) * s, fill=decor.frame)
        b = min(fw, h) * 0.1
        _rect(d, (ax + b) * s, (y0 + b) * s, (ax + fw - b) * s, (y0 + h - b) * s, fill=_mix(colour, (240, 236, 226), 0.3))
        _ellipse(d, (ax + fw * 0.3) * s, (y0 + h * 0.3) * s, (ax + fw * 0.75) * s, (y0 + h * 0.75) * s, fill=colour)


def _clutter(d: ImageDraw.ImageDraw, decor: Decor, rng: np.random.Generator, s: int, y0: float, y1: float) -> None:
    for _ in range(decor.clutter):
        x, y = rng.uniform(0.05, 0.95) * s, rng.uniform(y0, y1) * s
        w, h = rng.uniform(0.03, 0.08) * s, rng.uniform(0.015, 0.05) * s
        colour = _hsv(float(rng.uniform()), float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 0.9)))
        if rng.random() < 0.5:
            _rect(d, x, y - h, x + w, y, fill=colour)
        else:
            _ellipse(d, x, y - h, x + w, y, fill=colour)


def _window_view(look: ListingLook, rng: np.random.Generator, s: int, *, close: bool) -> Image.Image:
    """What lies outside the listing's windows: one of its views, or the neighbours' walls and trees."""
    views = [v for v in ("sea_view", "mountain_view", "city_view") if look.has(v)]
    horizon = float(rng.uniform(0.45, 0.6))
    if not views:
        img = _sky(look, rng, s, 0.4)
        d = ImageDraw.Draw(img, "RGBA")
        _building(d, look, None, rng, s, float(rng.uniform(0.3, 0.7)), 1.05, 1.1, 8, 0.12)
        if rng.random() < 0.6:
            _tree(d, look.region.tree, rng.uniform(0.1, 0.9) * s, 1.05 * s, 0.5 * s, look.region.vegetation, rng)
        return img
    view = views[int(rng.integers(len(views)))]
    img, d = _outdoor_backdrop(look, rng, s, horizon, sea=view == "sea_view",
                               mountains=view == "mountain_view" or (look.city.hills and rng.random() < 0.5),
                               skyline=view == "city_view", skyline_scale=float(rng.uniform(1.0, 1.6)) if close else 0.9)
    if view != "sea_view":
        ground = _mix(look.region.vegetation, look.region.ground, 0.5) if view == "mountain_view" else (112, 112, 118)
        _rect(d, 0, horizon * s, s, s, fill=_jit(ground, rng, 8))
        for _ in range(int(rng.integers(2, 6))):
            _tree(d, look.region.tree, rng.uniform(0, 1) * s, rng.uniform(horizon + 0.1, 1.0) * s,
                  rng.uniform(0.1, 0.2) * s, look.region.vegetation, rng)
    return img


def _railing(d: ImageDraw.ImageDraw, s: int, x0: float, x1: float, y: float, h: float, colour: RGB) -> None:
    _rect(d, x0 * s, (y - h) * s, x1 * s, (y - h + 0.015) * s, fill=colour)
    n = max(3, int((x1 - x0) / 0.035))
    for k in range(n + 1):
        xx = (x0 + (x1 - x0) * k / n) * s
        d.line([(xx, (y - h) * s), (xx, y * s)], fill=colour, width=max(1, s // 130))


@scene("view")
def _view(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The view through a room's window (or balcony door): what the listing looks out on."""
    img = _window_view(look, rng, s, close=True)
    d = ImageDraw.Draw(img, "RGBA")
    # window opening within the room's wall (sometimes a full-height balcony door)
    x0, x1 = float(rng.uniform(0.04, 0.16)), float(rng.uniform(0.84, 0.96))
    y0, y1 = float(rng.uniform(0.04, 0.14)), float(rng.uniform(0.8, 0.95))
    wall = decor.wall
    _rect(d, 0, 0, s, y0 * s, fill=wall)
    _rect(d, 0, y1 * s, s, s, fill=_shade(wall, 0.85))
    _rect(d, 0, 0, x0 * s, s, fill=_shade(wall, 0.95))
    _rect(d, x1 * s, 0, s, s, fill=_shade(wall, 0.9))
    fw = max(2, int(s * 0.015))
    _rect(d, x0 * s, y0 * s, x1 * s, y1 * s, fill=None, outline=decor.trim, width=fw)
    d.line([((x0 + x1) / 2 * s, y0 * s), ((x0 + x1) / 2 * s, y1 * s)], fill=decor.trim, width=fw)
    if look.has("balcony"):
        _railing(d, s, x0, x1, y1 - 0.02, float(rng.uniform(0.18, 0.28)), (52, 54, 58))
    # curtains
    cw = float(rng.uniform(0.05, 0.12))
    for a, b in ((x0 - 0.02, x0 + cw), (x1 - cw, x1 + 0.02)):
        _rect(d, a * s, (y0 - 0.03) * s, b * s, min(1.0, y1 + 0.05) * s, fill=_jit(decor.textile, rng, 8))
        for k in range(3):
            xx = (a + (b - a) * (k + 0.5) / 3) * s
            d.line([(xx, y0 * s), (xx, y1 * s)], fill=_shade(decor.textile, 0.8), width=1)
    return img


@scene("bedroom")
def _bedroom(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """A bedroom: bunk beds in hostels, bed, lamps, pillows and art by stars and decor."""
    floor_y = float(rng.uniform(0.58, 0.68))
    img = Image.new("RGB", (s, s), decor.wall)
    d = ImageDraw.Draw(img, "RGBA")
    _rect(d, 0, (floor_y - 0.02) * s, s, floor_y * s, fill=decor.trim)
    _floor(d, decor, rng, s, floor_y)
    _wall_wear(d, decor, rng, s, floor_y)
    win_side = int(rng.integers(0, 3))  # 0: none, 1: left, 2: right
    if win_side:
        wx0 = 0.03 if win_side == 1 else 0.72
        wx1 = wx0 + 0.25
        side = max(8, int(0.36 * s))
        view = _window_view(look, rng, side, close=False).crop(
            ((side - int(0.25 * s)) // 2, 0, (side - int(0.25 * s)) // 2 + int(0.25 * s), side))
        img.paste(view, (int(wx0 * s), int(0.12 * s)))
        _rect(d, wx0 * s, 0.12 * s, wx1 * s, 0.48 * s, fill=None, outline=decor.trim, width=max(2, s // 90))
        if look.has("balcony"):
            _railing(d, s, wx0, wx1, 0.48, 0.1, (52, 54, 58))
        _rect(d, (wx0 - 0.03) * s, 0.09 * s, (wx0 + 0.05) * s, (floor_y - 0.02) * s, fill=decor.textile)
        _rect(d, (wx1 - 0.05) * s, 0.09 * s, (wx1 + 0.03) * s, (floor_y - 0.02) * s, fill=decor.textile)
    bx = 0.5 + float(rng.uniform(-0.12, 0.12)) + (0.1 if win_side == 1 else -0.1 if win_side == 2 else 0.0)
    if look.property_type == "hostel":
        metal = (70, 74, 80) if decor.lux < 0.3 else decor.headboard
        for off in (-0.2, 0.2):
            cx = bx + off
            x0, x1 = cx - 0.17, cx + 0.17
            _rect(d, x0 * s, 0.18 * s, (x0 + 0.02) * s, (floor_y + 0.2) * s, fill=metal)
            _rect(d, (x1 - 0.02) * s, 0.18 * s, x1 * s, (floor_y + 0.2) * s, fill=metal)
            for y in (0.36, floor_y + 0.1):
                _rect(d, x0 * s, (y - 0.06) * s, x1 * s, y * s, fill=decor.linen)
                _rect(d, x0 * s, y * s, x1 * s, (y + 0.025) * s, fill=metal)
                if decor.linen_stripe:
                    _rect(d, (x0 + 0.08) * s, (y - 0.06) * s, (x0 + 0.12) * s, y * s, fill=decor.linen_stripe)
                _rect(d, (x0 + 0.01) * s, (y - 0.09) * s, (x0 + 0.08) * s, (y - 0.05) * s, fill=(240, 240, 236))
    else:
        bw = 0.36 + 0.12 * decor.lux + (0.06 if look.property_type in ("villa", "resort") else 0.0)
        x0, x1 = bx - bw / 2, bx + bw / 2
        _rect(d, (x0 + 0.02) * s, (floor_y - 0.3) * s, (x1 - 0.02) * s, (floor_y + 0.04) * s, fill=decor.headboard)
        if look.chain is not None:
            _logo(d, look.chain.logo, bx * s, (floor_y - 0.24) * s, 0.03 * s, look.chain.secondary)
        _rect(d, x0 * s, (floor_y - 0.02) * s, x1 * s, (floor_y + 0.22) * s, fill=_shade(decor.linen, 0.9))
        _rect(d, x0 * s, (floor_y + 0.02) * s, x1 * s, (floor_y + 0.2) * s, fill=decor.linen)
        if decor.linen_stripe:
            for k in range(4):
                yy = floor_y + 0.04 + k * 0.045
                _rect(d, x0 * s, yy * s, x1 * s, (yy + 0.018) * s, fill=decor.linen_stripe)
        elif decor.lux > 0.5:  # bed runner
            _rect(d, x0 * s, (floor_y + 0.12) * s, x1 * s, (floor_y + 0.16) * s, fill=decor.textile)
        pw = (bw - 0.04) / decor.pillows
        for k in range(decor.pillows):
            px = x0 + 0.02 + k * pw
            colour = (246, 246, 242) if k % 2 == 0 or decor.lux < 0.5 else decor.textile
            _ellipse(d, px * s, (floor_y - 0.07) * s, (px + pw * 0.95) * s, (floor_y + 0.01) * s, fill=colour)
        for k in range(decor.lamps):
            side = -1 if k == 0 else 1
            tx = bx + side * (bw / 2 + 0.07)
            _rect(d, (tx - 0.05) * s, (floor_y - 0.04) * s, (tx + 0.05) * s, (floor_y + 0.08) * s, fill=decor.wood)
            _rect(d, (tx - 0.006) * s, (floor_y - 0.1) * s, (tx + 0.006) * s, (floor_y - 0.04) * s, fill=(60, 60, 60))
            shade_col = (250, 232, 180) if decor.lux > 0.4 else _jit((230, 220, 200), rng, 20)
            d.polygon([((tx - 0.035) * s, (floor_y - 0.1) * s), ((tx + 0.035) * s, (floor_y - 0.1) * s),
                       ((tx + 0.022) * s, (floor_y - 0.16) * s), ((tx - 0.022) * s, (floor_y - 0.16) * s)],
                      fill=shade_col)
            _ellipse(d, (tx - 0.09) * s, (floor_y - 0.2) * s, (tx + 0.09) * s, (floor_y - 0.04) * s,
                     fill=(255, 240, 200, 45))
    if decor.carpet is not None:
        _ellipse(d, (bx - 0.3) * s, (floor_y + 0.24) * s, (bx + 0.3) * s, (floor_y + 0.34) * s, fill=decor.carpet)
    if look.property_type in ("apartment", "villa") and rng.random() < 0.5:  # a sofa corner
        sx = 0.02 if bx > 0.5 else 0.72
        _rect(d, sx * s, (floor_y + 0.05) * s, (sx + 0.26) * s, (floor_y + 0.22) * s, fill=_shade(decor.textile, 0.85))
        _rect(d, sx * s, (floor_y - 0.04) * s, (sx + 0.26) * s, (floor_y + 0.08) * s, fill=decor.textile)
    _art(d, decor, s, bx - 0.17, 0.12, 0.34, 0.14)
    _clutter(d, decor, rng, s, floor_y + 0.05, 0.98)
    return img


@scene("bathroom")
def _bathroom(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """A bathroom: tiles, mirror and basin, a bathtub at the high end, house towels."""
    floor_y = float(rng.uniform(0.7, 0.8))
    img = Image.new("RGB", (s, s), decor.tile)
    d = ImageDraw.Draw(img, "RGBA")
    grout = _shade(decor.tile, 0.86) if decor.wear < 0.5 else _mix(decor.tile, (70, 64, 50), 0.45)
    step = 0.05 if decor.lux < 0.6 else 0.1
    k = 0.0
    while k < floor_y:
        d.line([(0, k * s), (s, k * s)], fill=grout, width=1)
        k += step
    k = 0.0
    while k < 1.0:
        d.line([(k * s, 0), (k * s, floor_y * s)], fill=grout, width=1)
        k += step
    _rect(d, 0, floor_y * s, s, s, fill=_shade(decor.tile, 0.7))
    _wall_wear(d, decor, rng, s, floor_y)
    sx = 0.5 + float(rng.uniform(-0.15, 0.15))
    # mirror and counter
    _rect(d, (sx - 0.17) * s, 0.12 * s, (sx + 0.17) * s, 0.42 * s, fill=(190, 206, 214), outline=decor.trim,
          width=max(1, s // 100))
    d.line([((sx - 0.1) * s, 0.15 * s), ((sx - 0.02) * s, 0.39 * s)], fill=(226, 236, 240), width=max(1, s // 70))
    counter = (236, 234, 230) if decor.lux > 0.6 else _jit(decor.wood, rng, 10)
    _rect(d, (sx - 0.22) * s, 0.5 * s, (sx + 0.22) * s, 0.54 * s, fill=counter)
    _rect(d, (sx - 0.2) * s, 0.54 * s, (sx + 0.2) * s, floor_y * s, fill=decor.wood if decor.lux > 0.4 else (222, 222, 218))
    _ellipse(d, (sx - 0.08) * s, 0.49 * s, (sx + 0.08) * s, 0.53 * s, fill=(250, 250, 250))
    _rect(d, (sx - 0.008) * s, 0.45 * s, (sx + 0.008) * s, 0.5 * s, fill=(170, 170, 176))
    # toilet, and a bathtub or a shower at high end
    tx = sx + 0.33 if sx < 0.5 else sx - 0.33
    _rect(d, (tx - 0.06) * s, 0.5 * s, (tx + 0.06) * s, 0.6 * s, fill=(246, 246, 244))
    _ellipse(d, (tx - 0.08) * s, 0.6 * s, (tx + 0.08) * s, 0.7 * s, fill=(246, 246, 244))
    _rect(d, (tx - 0.04) * s, 0.66 * s, (tx + 0.04) * s, (floor_y + 0.02) * s, fill=(238, 238, 236))
    if decor.lux > 0.55 or look.property_type in ("villa", "resort"):
        bx0 = 0.0 if sx > 0.5 else 0.75
        _rect(d, bx0 * s, 0.62 * s, (bx0 + 0.25) * s, (floor_y + 0.06) * s, fill=(248, 248, 246))
        _rect(d, (bx0 + 0.02) * s, 0.62 * s, (bx0 + 0.23) * s, 0.65 * s, fill=(200, 220, 228))
    else:
        gx = 0.02 if sx > 0.5 else 0.76
        _rect(d, gx * s, 0.08 * s, (gx + 0.2) * s, floor_y * s, fill=(200, 226, 236, 70), outline=(180, 184, 190),
              width=max(1, s // 120))
    # towels in house colours
    towel = look.chain.primary if look.chain is not None else decor.textile
    _rect(d, (sx + 0.24) * s, 0.28 * s, (sx + 0.38) * s, 0.3 * s, fill=(170, 170, 176))
    _rect(d, (sx + 0.25) * s, 0.3 * s, (sx + 0.37) * s, 0.45 * s, fill=towel)
    if look.chain is not None:
        _logo(d, look.chain.logo, (sx + 0.31) * s, 0.41 * s, 0.02 * s, look.chain.secondary)
    _clutter(d, decor, rng, s, floor_y + 0.05, 0.98)
    return img


@scene("kitchen")
def _kitchen(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """A kitchen (shown only where the listing has one): cabinets, hob and fridge."""
    floor_y = float(rng.uniform(0.72, 0.8))
    img = Image.new("RGB", (s, s), decor.wall)
    d = ImageDraw.Draw(img, "RGBA")
    _floor(d, decor, rng, s, floor_y)
    cab = decor.wood if rng.random() < 0.5 else _jit((236, 236, 232), rng, 10)
    top_y = 0.52
    _rect(d, 0, 0.3 * s, s, top_y * s, fill=decor.tile)  # splashback
    for k in range(1, 10):
        d.line([(k * s / 10, 0.3 * s), (k * s / 10, top_y * s)], fill=_shade(decor.tile, 0.85), width=1)
    _rect(d, 0, 0.05 * s, s, 0.3 * s, fill=cab)
    _rect(d, 0, top_y * s, s, floor_y * s, fill=cab)
    _rect(d, 0, (top_y - 0.03) * s, s, top_y * s, fill=(60, 60, 64) if decor.lux > 0.5 else (200, 190, 170))
    n = int(rng.integers(4, 7))
    for k in range(n + 1):
        x = k / n * s
        d.line([(x, 0.05 * s), (x, 0.3 * s)], fill=_shade(cab, 0.75), width=1)
        d.line([(x, top_y * s), (x, floor_y * s)], fill=_shade(cab, 0.75), width=1)
        _rect(d, x + 0.03 * s, 0.26 * s, x + 0.07 * s, 0.27 * s, fill=(160, 160, 166))
    stove = float(rng.uniform(0.15, 0.45))
    for i in range(2):
        for j in range(2):
            cx, cy = (stove + 0.06 + i * 0.1) * s, (top_y - 0.05 + j * 0.025) * s
            _ellipse(d, cx - 0.035 * s, cy - 0.01 * s, cx + 0.035 * s, cy + 0.01 * s, fill=(30, 30, 30))
    _rect(d, (stove + 0.3) * s, (top_y - 0.035) * s, (stove + 0.46) * s, (top_y - 0.01) * s, fill=(190, 194, 200))
    fx = float(rng.uniform(0.72, 0.8))
    _rect(d, fx * s, 0.06 * s, (fx + 0.2) * s, floor_y * s, fill=(214, 216, 220) if decor.lux > 0.4 else (240, 236, 226))
    d.line([(fx * s, 0.34 * s), ((fx + 0.2) * s, 0.34 * s)], fill=(150, 150, 156), width=max(1, s // 120))
    if look.property_type in ("villa", "apartment", "guesthouse") and rng.random() < 0.6:  # dining table
        _rect(d, 0.2 * s, 0.82 * s, 0.65 * s, 0.86 * s, fill=decor.wood)
        for lx in (0.23, 0.6):
            _rect(d, lx * s, 0.86 * s, (lx + 0.02) * s, s, fill=_shade(decor.wood, 0.7))
    _clutter(d, decor, rng, s, top_y - 0.06, top_y - 0.03)
    return img


@scene("lobby_bar")
def _lobby_bar(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The lobby: a bar with bottles where there is one, else a reception desk."""
    floor_y = float(rng.uniform(0.6, 0.7))
    wall = _shade(decor.wall, 0.7 if decor.lux > 0.6 else 0.95)
    img = Image.new("RGB", (s, s), wall)
    d = ImageDraw.Draw(img, "RGBA")
    floor_decor = decor if decor.lux > 0.5 else dataclasses.replace(decor, floor_kind="tile")
    _floor(d, floor_decor, rng, s, floor_y)
    _wall_wear(d, decor, rng, s, floor_y)
    cx = 0.5 + float(rng.uniform(-0.15, 0.15))
    if look.has("bar"):  # shelves of bottles
        for row in range(3):
            y = 0.18 + row * 0.12
            _rect(d, (cx - 0.32) * s, (y + 0.08) * s, (cx + 0.32) * s, (y + 0.09) * s, fill=decor.wood)
            for k in range(int(12 + 6 * decor.lux)):
                bx = (cx - 0.3 + 0.6 * k / (12 + 6 * decor.lux)) * s
                colour = _hsv(float(rng.uniform()), float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.3, 0.8)))
                _rect(d, bx, (y + 0.02) * s, bx + 0.015 * s, (y + 0.08) * s, fill=colour)
                _rect(d, bx + 0.004 * s, (y + 0.005) * s, bx + 0.011 * s, (y + 0.02) * s, fill=colour)
    elif look.chain is None:  # reception: key rack
        _rect(d, (cx - 0.15) * s, 0.2 * s, (cx + 0.15) * s, 0.4 * s, fill=decor.wood)
        for i in range(5):
            for j in range(3):
                _ellipse(d, (cx - 0.12 + i * 0.06) * s, (0.23 + j * 0.06) * s, (cx - 0.1 + i * 0.06) * s,
                         (0.25 + j * 0.06) * s, fill=(200, 170, 60))
    if look.chain is not None:  # big logo on the wall
        ly = 0.28 if not look.has("bar") else 0.1
        _rect(d, (cx - 0.2) * s, (ly - 0.08) * s, (cx + 0.2) * s, (ly + 0.08) * s, fill=look.chain.primary)
        _logo(d, look.chain.logo, (cx - 0.12) * s, ly * s, 0.055 * s, look.chain.secondary)
        _rect(d, (cx - 0.04) * s, (ly - 0.015) * s, (cx + 0.16) * s, (ly + 0.015) * s, fill=look.chain.secondary)
    # counter
    counter = decor.wood if decor.lux < 0.75 else (60, 48, 40)
    _rect(d, (cx - 0.38) * s, (floor_y - 0.15) * s, (cx + 0.38) * s, (floor_y + 0.12) * s, fill=counter)
    _rect(d, (cx - 0.4) * s, (floor_y - 0.17) * s, (cx + 0.4) * s, (floor_y - 0.14) * s,
          fill=(230, 226, 220) if decor.lux > 0.6 else _shade(counter, 1.2))
    if look.chain is not None:
        _rect(d, (cx - 0.38) * s, (floor_y - 0.06) * s, (cx + 0.38) * s, (floor_y - 0.03) * s, fill=look.chain.primary)
    if look.has("bar"):
        for k in range(int(rng.integers(3, 6))):
            sx = (cx - 0.3 + k * 0.15) * s
            _rect(d, sx - 0.004 * s, (floor_y + 0.04) * s, sx + 0.004 * s, (floor_y + 0.22) * s, fill=(50, 50, 54))
            _ellipse(d, sx - 0.04 * s, (floor_y + 0.02) * s, sx + 0.04 * s, (floor_y + 0.06) * s, fill=decor.textile)
    if decor.lux >= 0.75:  # chandelier
        ch = (cx + float(rng.uniform(-0.3, 0.3))) * s
        d.line([(ch, 0), (ch, 0.05 * s)], fill=(160, 140, 90), width=1)
        _ellipse(d, ch - 0.08 * s, 0.04 * s, ch + 0.08 * s, 0.09 * s, fill=(230, 200, 110))
        for k in range(7):
            xx = ch - 0.07 * s + k * 0.14 * s / 6
            _ellipse(d, xx - 0.008 * s, 0.09 * s, xx + 0.008 * s, 0.11 * s, fill=(255, 246, 200))
    for side in (0.06, 0.94):  # potted plants
        if rng.random() < 0.35 + 0.5 * decor.lux:
            _rect(d, (side - 0.03) * s, (floor_y + 0.06) * s, (side + 0.03) * s, (floor_y + 0.13) * s, fill=(150, 100, 70))
            _ellipse(d, (side - 0.06) * s, (floor_y - 0.1) * s, (side + 0.06) * s, (floor_y + 0.07) * s,
                     fill=_jit(look.region.vegetation, rng, 12))
    _clutter(d, decor, rng, s, floor_y + 0.15, 0.98)
    return img


@scene("gym")
def _gym(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
    """The fitness centre: machines in a mirrored room, striped in house colours."""
    floor_y = float(rng.uniform(0.6, 0.7))
    img = Image.new("RGB", (s, s), _mix(decor.wall, (230, 230, 230), 0.5))
    d = ImageDraw.Draw(img, "RGBA")
    _rect(d, 0, floor_y * s, s, s, fill=_jit((54, 56, 60), rng, 8))
    stripe = look.chain.primary if look.chain is not None else look.accent
    _rect(d, 0, (floor_y - 0.25) * s, s, (floor_y - 0.22) * s, fill=stripe)
    _rect(d, 0.1 * s, 0.1 * s, 0.9 * s, (floor_y - 0.27) * s, fill=(196, 210, 218), outline=(150, 150, 156),
          width=max(1, s // 120))  # mirror wall
    for k in range(1, 4):
        d.line([(0.1 * s + k * 0.2 * s, 0.1 * s), (0.1 * s + k * 0.2 * s, (floor_y - 0.27) * s)], fill=(150, 150, 156))
    n = int(2 + round(3 * decor.lux) + rng.integers(0, 2))
    for k in range(n):
        x = (0.08 + 0.84 * (k + 0.5) / n) * s
        y = (floor_y + 0.12) * s
        if k % 2 == 0:  # treadmill
            d.polygon([(x - 0.07 * s, y + 0.06 * s), (x + 0.07 * s, y + 0.06 * s), (x + 0.06 * s, y + 0.02 * s),
                       (x - 0.06 * s, y + 0.02 * s)], fill=(30, 30, 34))
            d.line([(x + 0.05 * s, y + 0.02 * s), (x + 0.06 * s, y - 0.12 * s)], fill=(80, 80, 86), width=max(1, s // 90))
            _rect(d, x + 0.03 * s, y - 0.15 * s, x + 0.09 * s, y - 0.11 * s, fill=(40, 40, 44))
        else:  # bike
            _ellipse(d, x - 0.05 * s, y - 0.02 * s, x + 0.01 * s, y + 0.05 * s, fill=(40, 40, 44))
            d.line([(x - 0.02 * s, y), (x + 0.04 * s, y - 0.1 * s)], fill=stripe, width=max(1, s // 80))
            _rect(d, x - 0.04 * s, y - 0.1 * s, x + 0.0 * s, y - 0.085 * s, fill=(30, 30, 30))
    # dumbbell rack
    _rect(d, 0.2 * s, (floor_y + 0.26) * s, 0.8 * s, (floor_y + 0.28) * s, fill=(90, 90, 96))
    for k in range(6):
        x = (0.23 + k * 0.1) * s
        _rect(d, x, (floor_y + 0.235) * s, x + 0.05 * s, (floor_y + 0.26) * s, fill=(20, 20, 22))
    return img
