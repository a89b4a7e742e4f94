"""Procedural renderer for the synthetic demo catalogue's photos.

The demo catalogue (see ``gallery_core.demo.generator``) decides *what* a listing is; this module decides what its
photos *look like*. It is pure drawing: a ``ListingLook`` (everything a camera could see about a
listing, already resolved to colours and shapes, no names) plus a ``numpy`` generator go in, a PIL
image comes out. Nothing here reads files, the clock or global random state, so the same generator state
always gives the same pixels, whichever process renders it.

Design intent, so the learned embeddings have something real to find:

* **Region / country / city** leave traces outdoors: the region fixes the architecture (facade palette,
  roof shape, window pattern, tree shape and vegetation colour, sky and sand tones), the country an accent
  colour (doors, shutters, awnings, flags), the city a geography (coastal / mountain / urban), its own
  skyline silhouette with a landmark, and its own mountain profile.
* **Property type and size** shape the building (storeys, width, house vs. tower vs. low resort wing),
  the beds (bunk beds in hostels) and the amount of furniture.
* **Stars and a hidden quality** set the decor: harmonious muted colours, richer materials, more
  lamps, pillows and art, chandeliers and marble at the top; loud or dull colours, clutter, stains and
  wear at the bottom. No star plaque is ever drawn, so the hold-out star rating has to be inferred.
* **Chains** have a visual identity: signature colours and a logo shape on the facade sign, the lobby
  wall, headboards, towels and loungers.
* **Amenities** are visible only when photographed: the pool, gym, kitchen, garden and beach kinds,
  views through a window, balcony railings, bottles behind a bar.

Scenes are drawn at a supersampled ``render_size`` and ``photograph`` then plays the camera: viewpoint
(shift, zoom, small rotation and perspective), downscaling, lighting (exposure, contrast, colour
temperature, vignetting, sensor noise), occasional user crops and rare watermarks or scribbles.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from gallery_core.data import corruptions

RGB = tuple[int, int, int]

PHOTO_KINDS: tuple[str, ...] = (
    "facade", "bedroom", "bathroom", "kitchen", "pool", "view", "lobby_bar", "gym", "garden", "beach",
)
ROOF_STYLES: tuple[str, ...] = ("gable", "hip", "flat", "dome", "pagoda", "thatch")
WINDOW_STYLES: tuple[str, ...] = ("grid", "shuttered", "lattice", "louvred", "arched", "bands")
TREE_STYLES: tuple[str, ...] = ("conifer", "round", "cypress", "palm")
LOGO_SHAPES: tuple[str, ...] = ("circle", "triangle", "star", "square", "diamond", "chevron")
LANDMARKS: tuple[str, ...] = ("spire", "dome", "needle", "twin", "pyramid", "wheel", "arch", "pagoda")

#: Probability that a photo is cropped by its uploader, and that it carries a watermark or scribble.
CROP_PROBABILITY = 0.15
DEFACE_PROBABILITY = 0.03
#: Share of photos taken at an oblique angle (perspective warp) rather than roughly square-on (affine).
KEYSTONE_PROBABILITY = 0.35


# --------------------------------------------------------------------------------------------------
# What the renderer is told about a listing
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegionStyle:
    """Architecture and nature of a world region (shared by all its countries and cities)."""

    facade_palette: tuple[RGB, ...]
    roof: str
    roof_colour: RGB
    windows: str
    tree: str
    vegetation: RGB
    sky: RGB
    ground: RGB
    sand: RGB


@dataclass(frozen=True)
class CityScape:
    """What the surroundings of a city look like; ``skyline``/``peaks`` are in [0, 1] coordinates."""

    geography: str  # coastal | mountain | urban
    large: bool
    hills: bool  # mountains on the horizon (always for mountain cities)
    skyline: tuple[tuple[float, float, float, int], ...]  # (x0, x1, height, top style 0-3)
    landmark: str
    landmark_x: float
    peaks: tuple[tuple[float, float, float], ...]  # (x, height, half width)
    water: RGB


@dataclass(frozen=True)
class ChainStyle:
    """A hotel chain's visual identity."""

    primary: RGB
    secondary: RGB
    logo: str


@dataclass(frozen=True)
class ListingLook:
    """Everything a camera could see about one listing (clean truth, resolved to visual terms)."""

    property_type: str
    size_bucket: str
    stars: int
    quality: float  # hidden quality, ~N(0, 1): above 0 means better kept than its stars suggest
    region: RegionStyle
    accent: RGB  # the country's accent colour
    city: CityScape
    chain: ChainStyle | None
    amenities: frozenset[str]  # names of the amenity flags that are true

    def has(self, amenity: str) -> bool:
        return amenity in self.amenities


@dataclass(frozen=True)
class Decor:
    """Per-listing interior design, drawn once so all photos of a listing agree with each other."""

    lux: float  # 0 (1 star) .. 1 (5 stars)
    wear: float  # 0 (spotless) .. 1 (worn out)
    facade: RGB
    wall: RGB
    trim: RGB
    floor: RGB
    floor_kind: str  # wood | carpet | tile | marble
    linen: RGB
    linen_stripe: RGB | None
    headboard: RGB
    carpet: RGB | None
    art: tuple[RGB, ...]
    frame: RGB
    lamps: int
    pillows: int
    clutter: int
    tile: RGB
    wood: RGB
    textile: RGB


# --------------------------------------------------------------------------------------------------
# Colour and geometry helpers
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Decor
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Outdoor pieces: sky, sea, mountains, skyline, trees
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Buildings
# --------------------------------------------------------------------------------------------------
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


def _facade(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


# --------------------------------------------------------------------------------------------------
# Interiors
# --------------------------------------------------------------------------------------------------
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


def _view(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _bedroom(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _bathroom(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _kitchen(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _pool(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _lobby_bar(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _gym(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _garden(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


def _beach(look: ListingLook, decor: Decor, rng: np.random.Generator, s: int) -> Image.Image:
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


_RENDERERS: dict[str, Callable[[ListingLook, Decor, np.random.Generator, int], Image.Image]] = {
    "facade": _facade, "bedroom": _bedroom, "bathroom": _bathroom, "kitchen": _kitchen, "pool": _pool,
    "view": _view, "lobby_bar": _lobby_bar, "gym": _gym, "garden": _garden, "beach": _beach,
}


def render_scene(kind: str, look: ListingLook, decor: Decor, rng: np.random.Generator, render_size: int) -> Image.Image:
    """Draw the raw scene of photo ``kind`` at ``render_size`` px (square, RGB, before the camera)."""
    try:
        renderer = _RENDERERS[kind]
    except KeyError:
        raise ValueError(f"unknown photo kind {kind!r}; expected one of {PHOTO_KINDS}") from None
    return renderer(look, decor, rng, render_size)


# --------------------------------------------------------------------------------------------------
# The camera
# --------------------------------------------------------------------------------------------------
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
