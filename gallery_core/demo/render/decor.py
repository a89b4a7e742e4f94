"""A listing's interior design, drawn once per listing.

Why once per listing: every photo of a listing must agree (the same walls, linen and floor in its bedroom
and its bathroom), and the decor carries the visual signal of stars, hidden quality and chain that the
embeddings should find. Scenes only read the ``Decor``; they never redraw it.
"""

from __future__ import annotations

import numpy as np

from gallery_core.demo.render.drawing import _hsv, _jit, _mix, _shade
from gallery_core.demo.render.look import RGB, Decor, ListingLook

_LUX_WALLS: tuple[RGB, ...] = ((236, 228, 212), (214, 206, 192), (188, 196, 182), (58, 66, 86), (176, 158, 138),
                               (244, 242, 236), (120, 96, 84), (206, 214, 220))
_CHEAP_WALLS: tuple[RGB, ...] = ((214, 196, 120), (150, 186, 214), (222, 160, 160), (196, 208, 120),
                                 (168, 158, 146), (230, 218, 150), (160, 200, 170), (200, 170, 210))


def sample_decor(look: ListingLook, rng: np.random.Generator) -> Decor:
    """Draw a listing's interior design from its stars, hidden quality, chain and region.

    High-star listings get muted, mutually harmonious colours (one hue family), wood or marble floors, white
    linen, more lamps, pillows and art; low-star listings get loud or dull colours chosen independently of
    each other, worn carpet, patterned linen and clutter. Hidden quality lowers or raises the wear, so
    review scores (which depend on it) have a visual correlate beyond the stars.
    """
    lux = (look.stars - 1) / 4.0
    wear = float(np.clip(0.75 * (1.0 - lux) - 0.22 * look.quality + rng.normal(0.0, 0.08), 0.0, 1.0))
    facade = _jit(look.region.facade_palette[int(rng.integers(len(look.region.facade_palette)))], rng, 10)
    facade = _mix(facade, (110, 104, 96), 0.35 * wear)
    if rng.random() < lux:
        wall = _jit(_LUX_WALLS[int(rng.integers(len(_LUX_WALLS)))], rng, 6)
        hue = float(rng.uniform(0.0, 1.0))
        textile = _hsv(hue, 0.35, 0.55)
        art = tuple(_hsv((hue + k * 0.04) % 1.0, 0.3 + 0.1 * k, 0.35 + 0.15 * k) for k in range(3))
    else:
        wall = _jit(_CHEAP_WALLS[int(rng.integers(len(_CHEAP_WALLS)))], rng, 14)
        textile = _hsv(float(rng.uniform()), float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.5, 0.9)))
        art = tuple(_hsv(float(rng.uniform()), 0.8, 0.9) for _ in range(3))
    wall = _mix(wall, (150, 140, 120), 0.25 * wear)
    trim = _shade(wall, 0.8) if lux > 0.5 else _jit((235, 235, 230), rng, 10)
    if look.chain is not None:  # chain identity trumps the individual decorator
        headboard, textile = look.chain.primary, look.chain.secondary
    elif lux > 0.6:
        headboard = _jit((92, 66, 48), rng, 15)
    else:
        headboard = _jit(textile, rng, 25)
    if lux >= 0.75:
        floor_kind = "marble" if rng.random() < 0.3 else "wood"
    elif lux >= 0.4:
        floor_kind = ("wood", "tile", "carpet")[int(rng.integers(3))]
    else:
        floor_kind = ("carpet", "tile")[int(rng.integers(2))]
    floor = {
        "marble": _jit((226, 222, 214), rng, 8),
        "wood": _jit((150, 108, 72) if rng.random() < 0.5 else (96, 64, 44), rng, 12),
        "tile": _jit((190, 184, 170), rng, 20),
        "carpet": _jit((128, 110, 96), rng, 30),
    }[floor_kind]
    floor = _mix(floor, (90, 84, 70), 0.3 * wear)
    linen = (248, 248, 244) if rng.random() < 0.3 + 0.7 * lux else _jit((220, 214, 196), rng, 20)
    linen = _mix(linen, (200, 190, 160), 0.35 * wear)
    linen_stripe = None if rng.random() < 0.2 + 0.8 * lux else art[0]
    carpet = None if rng.random() < 0.3 else (_jit(look.region.facade_palette[0], rng, 20) if lux > 0.5 else art[1])
    frame = (196, 160, 72) if look.stars == 5 else _jit((40, 36, 32), rng, 10) if lux > 0.4 else _jit(wall, rng, 30)
    n_art = int(np.clip(round(lux * 2.5 + rng.uniform(-0.6, 0.6)), 0, 3))
    lamps = 2 if rng.random() < 0.25 + 0.75 * lux else 1
    pillows = int(np.clip(round(2 + lux * 3 + rng.uniform(-0.7, 0.7)), 1, 6))
    clutter = int(np.clip(round(wear * 7 + rng.uniform(-1, 1)), 0, 8))
    tile = _jit((236, 236, 232), rng, 6) if lux > 0.6 else _jit(_hsv(float(rng.uniform()), 0.35, 0.85), rng, 10)
    wood = _jit((120, 82, 52), rng, 20) if lux > 0.5 else _jit((196, 170, 130), rng, 20)
    return Decor(lux=lux, wear=wear, facade=facade, wall=wall, trim=trim, floor=floor, floor_kind=floor_kind,
                 linen=linen, linen_stripe=linen_stripe, headboard=headboard, carpet=carpet, art=art[:n_art],
                 frame=frame, lamps=lamps, pillows=pillows, clutter=clutter, tile=tile, wood=wood, textile=textile)
