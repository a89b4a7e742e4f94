"""Buildings in a region's architecture: the listing itself, or an anonymous neighbour.

Why separate: the facade scene, gardens and the view from a window all draw buildings, and the building
is where region (roof, windows, palette), country (accent), chain (sign, logo) and wear meet.
"""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from gallery_core.demo.render.drawing import _ellipse, _jit, _logo, _mix, _rect, _shade
from gallery_core.demo.render.look import RGB, Decor, ListingLook

_STOREYS = {"xs": (1, 2), "s": (2, 3), "m": (3, 5), "l": (5, 8), "xl": (8, 12)}
_WIDTH = {"hotel": (0.5, 0.68), "resort": (0.82, 0.95), "apartment": (0.5, 0.66), "hostel": (0.45, 0.6),
          "villa": (0.55, 0.72), "bnb": (0.42, 0.56), "guesthouse": (0.46, 0.6)}
_MAX_STOREYS = {"villa": 2, "bnb": 3, "guesthouse": 3, "resort": 5}


def _window(d: ImageDraw.ImageDraw, style: str, x0: float, y0: float, x1: float, y1: float, glass: RGB,
            frame: RGB, accent: RGB) -> None:
    w = x1 - x0
    lw = max(1, int(w * 0.08))
    if style == "arched":
        d.pieslice((x0, y0, x1, y0 + w), 180, 360, fill=glass)
        _rect(d, x0, y0 + w / 2, x1, y1, fill=glass)
        d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=frame, width=lw)
    elif style == "shuttered":
        _rect(d, x0, y0, x1, y1, fill=glass, outline=frame, width=lw)
        _rect(d, x0 - w * 0.45, y0, x0, y1, fill=accent)
        _rect(d, x1, y0, x1 + w * 0.45, y1, fill=accent)
    elif style == "lattice":
        _rect(d, x0, y0, x1, y1, fill=glass, outline=frame, width=lw)
        for k in range(1, 4):
            d.line([(x0 + w * k / 4, y0), (x0 + w * k / 4, y1)], fill=frame, width=max(1, lw // 2))
            d.line([(x0, y0 + (y1 - y0) * k / 4), (x1, y0 + (y1 - y0) * k / 4)], fill=frame, width=max(1, lw // 2))
    elif style == "louvred":
        _rect(d, x0, y0, x1, y1, fill=_mix(glass, frame, 0.5))
        for k in range(1, 6):
            y = y0 + (y1 - y0) * k / 6
            d.line([(x0, y), (x1, y)], fill=frame, width=lw)
    else:  # grid (bands are drawn per storey by the caller)
        _rect(d, x0, y0, x1, y1, fill=glass, outline=frame, width=lw)
        d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=frame, width=lw)
        d.line([(x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)], fill=frame, width=lw)


def _building(d: ImageDraw.ImageDraw, look: ListingLook, decor: Decor | None, rng: np.random.Generator, s: int,
              cx: float, ground: float, width: float, storeys: int, storey_h: float) -> None:
    """A building in the region's style: the listing itself (door, sign, balconies) when ``decor`` is
    given, otherwise an anonymous neighbour in a random colour of the region's palette."""
    region = look.region
    main = decor is not None
    x0, x1 = (cx - width / 2) * s, (cx + width / 2) * s
    top = (ground - storeys * storey_h) * s
    base = ground * s
    colour = decor.facade if decor is not None else _jit(region.facade_palette[int(rng.integers(len(region.facade_palette)))], rng, 12)
    _rect(d, x0, top, x1, base, fill=colour)
    roof = _jit(region.roof_colour, rng, 10)
    rh = storey_h * s * 1.1
    ov = width * s * 0.04
    if region.roof == "gable":
        d.polygon([(x0 - ov, top), ((x0 + x1) / 2, top - rh * 1.3), (x1 + ov, top)], fill=roof)
    elif region.roof == "hip":
        d.polygon([(x0 - ov, top), (x0 + width * s * 0.22, top - rh * 0.7), (x1 - width * s * 0.22, top - rh * 0.7),
                   (x1 + ov, top)], fill=roof)
    elif region.roof == "thatch":
        d.polygon([(x0 - ov * 2, top + rh * 0.15), (x0 + width * s * 0.3, top - rh * 1.2),
                   (x1 - width * s * 0.3, top - rh * 1.2), (x1 + ov * 2, top + rh * 0.15)], fill=roof)
        for k in range(8):
            xx = x0 + (x1 - x0) * (k + 0.5) / 8
            d.line([(xx, top - rh * 0.9), (xx + ov * (k - 3.5) * 0.2, top + rh * 0.1)], fill=_shade(roof, 0.8), width=1)
    elif region.roof == "pagoda":
        d.polygon([(x0 - ov * 2.5, top - rh * 0.15), (x0 + ov, top - rh * 0.75), (x1 - ov, top - rh * 0.75),
                   (x1 + ov * 2.5, top - rh * 0.15), (x1 + ov * 1.5, top), (x0 - ov * 1.5, top)], fill=roof)
        _rect(d, x0 + ov * 3, top - rh * 1.05, x1 - ov * 3, top - rh * 0.75, fill=roof)
    elif region.roof == "dome":
        _rect(d, x0, top - storey_h * s * 0.12, x1, top, fill=_shade(colour, 0.88))
        dw = min(width * s * 0.3, storey_h * s * 2.2)
        d.pieslice(((x0 + x1) / 2 - dw / 2, top - dw / 2, (x0 + x1) / 2 + dw / 2, top + dw / 2), 180, 360, fill=roof)
    else:  # flat: parapet and a rooftop box
        _rect(d, x0 - ov * 0.3, top - storey_h * s * 0.14, x1 + ov * 0.3, top, fill=_shade(colour, 0.8))
        _rect(d, x0 + width * s * 0.6, top - storey_h * s * 0.45, x0 + width * s * 0.75, top, fill=(120, 122, 126))
    # windows
    n_cols = max(2, int(width / 0.085))
    glass_base = _mix(region.sky, (60, 70, 90), 0.35)
    frame = (240, 240, 236) if region.windows != "lattice" else (70, 44, 30)
    ww = width * s / n_cols * 0.45
    wh = storey_h * s * 0.5
    balcony = main and look.has("balcony")
    rail = (60, 62, 66)
    for r in range(storeys):
        ybot = base - r * storey_h * s
        y0 = ybot - storey_h * s * 0.78
        if region.windows == "bands" and not (main and r == 0):
            _rect(d, x0 + ww * 0.3, y0, x1 - ww * 0.3, y0 + wh * 1.1, fill=_jit(glass_base, rng, 10))
            for k in range(1, n_cols * 2):
                xx = x0 + (x1 - x0) * k / (n_cols * 2)
                d.line([(xx, y0), (xx, y0 + wh * 1.1)], fill=(200, 204, 210), width=max(1, int(ww * 0.06)))
        else:
            for c in range(n_cols):
                if main and r == 0 and abs(c - (n_cols - 1) / 2) < 0.6:
                    continue  # the door goes here
                wx = x0 + (x1 - x0) * (c + 0.5) / n_cols
                glass = (250, 220, 140) if rng.random() < 0.12 else _jit(glass_base, rng, 10)
                _window(d, region.windows, wx - ww / 2, y0, wx + ww / 2, y0 + wh, glass, frame, look.accent)
        if balcony and r > 0:
            yb = y0 + wh
            _rect(d, x0 + ww * 0.1, yb - wh * 0.35, x1 - ww * 0.1, yb - wh * 0.3, fill=rail)
            _rect(d, x0 + ww * 0.1, yb, x1 - ww * 0.1, yb + wh * 0.08, fill=_shade(colour, 0.75))
            for k in range(int(width * 60)):
                xx = x0 + ww * 0.1 + (x1 - x0 - ww * 0.2) * k / max(1, int(width * 60) - 1)
                d.line([(xx, yb - wh * 0.35), (xx, yb)], fill=rail, width=1)
    if decor is None:
        return
    # door, awning in the country's accent colour, sign with the chain's identity
    dw = min(width * s * 0.16, storey_h * s * 0.9)
    _rect(d, s * cx - dw / 2, base - storey_h * s * 0.8, s * cx + dw / 2, base, fill=_shade(look.accent, 0.85))
    _rect(d, s * cx - dw / 2 + 2, base - storey_h * s * 0.72, s * cx + dw / 2 - 2, base,
          fill=(40, 44, 50) if decor.lux > 0.5 else (90, 80, 70))
    d.polygon([(s * cx - dw * 0.9, base - storey_h * s * 0.8), (s * cx + dw * 0.9, base - storey_h * s * 0.8),
               (s * cx + dw * 1.05, base - storey_h * s * 0.62), (s * cx - dw * 1.05, base - storey_h * s * 0.62)],
              fill=look.accent)
    sy = base - storey_h * s * 0.98
    if look.chain is not None:
        sw = width * s * 0.36
        _rect(d, s * cx - sw / 2, sy - storey_h * s * 0.2, s * cx + sw / 2, sy, fill=look.chain.primary)
        _logo(d, look.chain.logo, s * cx - sw / 2 + storey_h * s * 0.12, sy - storey_h * s * 0.1,
              storey_h * s * 0.085, look.chain.secondary)
        for k in range(3):
            xx = s * cx - sw / 2 + storey_h * s * 0.28 + k * sw * 0.22
            _rect(d, xx, sy - storey_h * s * 0.13, xx + sw * 0.17, sy - storey_h * s * 0.07, fill=look.chain.secondary)
        if storeys >= 5:  # rooftop sign
            _rect(d, s * cx - sw * 0.4, top - storey_h * s * 0.6, s * cx + sw * 0.4, top - storey_h * s * 0.15,
                  fill=look.chain.primary)
            _logo(d, look.chain.logo, s * cx, top - storey_h * s * 0.375, storey_h * s * 0.18, look.chain.secondary)
    else:
        sw = width * s * float(rng.uniform(0.18, 0.3))
        sign = _jit((60, 60, 64), rng, 40)
        _rect(d, s * cx - sw / 2, sy - storey_h * s * 0.16, s * cx + sw / 2, sy, fill=sign)
        _rect(d, s * cx - sw * 0.38, sy - storey_h * s * 0.1, s * cx + sw * 0.38, sy - storey_h * s * 0.06,
              fill=(236, 236, 230))
    if decor.lux >= 0.75:  # flagpoles at upscale places
        for k in (-1, 1):
            fx = s * cx + k * width * s * 0.42
            d.line([(fx, base), (fx, base - storey_h * s * 1.6)], fill=(200, 200, 204), width=max(1, s // 160))
            _rect(d, fx, base - storey_h * s * 1.6, fx + k * storey_h * s * 0.35, base - storey_h * s * 1.35,
                  fill=look.accent if k < 0 else (look.chain.primary if look.chain else _shade(look.accent, 0.7)))
    # wear: stains and cracks
    for _ in range(int(decor.wear * 6)):
        ex, ey = rng.uniform(x0, x1), rng.uniform(top, base)
        r = rng.uniform(0.02, 0.06) * s
        _ellipse(d, ex - r, ey - r * 0.6, ex + r, ey + r * 1.4, fill=(50, 44, 36, int(40 + 50 * decor.wear)))
    for _ in range(int(decor.wear * 3)):
        ex, ey = rng.uniform(x0, x1), rng.uniform(top, base)
        d.line([(ex, ey), (ex + rng.uniform(-0.04, 0.04) * s, ey + rng.uniform(0.02, 0.06) * s)],
               fill=(60, 54, 48), width=1)
