"""What the renderer is told about a listing, and the vocabulary its scenes are drawn from.

Why a module of its own: the world model (``gallery_core.demo.world``) builds these values and every scene
file reads them, so they sit below both and import nothing from the renderer. Everything here is plain,
frozen data: colours and shapes, no names, nothing random.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

#: Every photo kind the catalogue uses, in the order it documents them; each has exactly one registered
#: scene (``gallery_core.demo.render.registry``), checked when the package is imported.
PHOTO_KINDS: tuple[str, ...] = (
    "facade", "bedroom", "bathroom", "kitchen", "pool", "view", "lobby_bar", "gym", "garden", "beach",
)
ROOF_STYLES: tuple[str, ...] = ("gable", "hip", "flat", "dome", "pagoda", "thatch")
WINDOW_STYLES: tuple[str, ...] = ("grid", "shuttered", "lattice", "louvred", "arched", "bands")
TREE_STYLES: tuple[str, ...] = ("conifer", "round", "cypress", "palm")
LOGO_SHAPES: tuple[str, ...] = ("circle", "triangle", "star", "square", "diamond", "chevron")
LANDMARKS: tuple[str, ...] = ("spire", "dome", "needle", "twin", "pyramid", "wheel", "arch", "pagoda")


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
