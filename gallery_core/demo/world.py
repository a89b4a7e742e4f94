"""The demo world: 6 regions, 16 countries, 40 cities and 6 hotel chains (fixed; names are fictional).

Why fixed: the world is part of what the demo catalogue *is*. Only listings change with the seed; a
city's surroundings are drawn from a generator keyed by the city's index, so every catalogue (and every
worker process) sees the same world. A region fixes the architecture (facade palette, roof, windows,
trees, sky, sand), a country an accent colour, a city its geography (coastal / mountain / urban), size,
cost level, skyline with a landmark and mountain profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gallery_core.demo.render import LANDMARKS, ChainStyle, CityScape, RegionStyle


@dataclass(frozen=True)
class Region:
    """A world region: its architecture and nature, its water, and its share of listings."""

    name: str
    style: RegionStyle
    water: tuple[int, int, int]
    warm: bool  # outdoor pools are common
    weight: float  # share of listings


@dataclass(frozen=True)
class Country:
    """A country of a region; its accent colour shows on doors, awnings and flags."""

    name: str
    region: str
    accent: tuple[int, int, int]


@dataclass(frozen=True)
class City:
    """A city: its geography, size and price level, and the fixed surroundings its photos show."""

    name: str
    country: str
    region: str
    geography: str  # coastal | mountain | urban
    large: bool
    cost: float  # price level multiplier
    scape: CityScape


@dataclass(frozen=True)
class Chain:
    """A hotel chain: its visual identity, star tier, property-type affinities and regions."""

    name: str
    style: ChainStyle
    tier: float  # mean star rating
    types: dict[str, float]  # affinity by property type
    regions: frozenset[str]


REGIONS: tuple[Region, ...] = (
    Region("Nordmark", RegionStyle(
        facade_palette=((150, 40, 36), (214, 170, 80), (236, 234, 226), (92, 104, 116)), roof="gable",
        roof_colour=(58, 58, 62), windows="grid", tree="conifer", vegetation=(46, 88, 56), sky=(150, 180, 210),
        ground=(118, 126, 108), sand=(204, 198, 180)), water=(40, 70, 100), warm=False, weight=1.0),
    Region("Meridia", RegionStyle(
        facade_palette=((244, 240, 230), (232, 214, 176), (206, 120, 80), (238, 214, 130)), roof="hip",
        roof_colour=(176, 84, 52), windows="shuttered", tree="cypress", vegetation=(92, 110, 58), sky=(70, 130, 210),
        ground=(196, 176, 140), sand=(226, 206, 160)), water=(30, 100, 170), warm=True, weight=1.3),
    Region("Orientis", RegionStyle(
        facade_palette=((120, 72, 44), (176, 48, 40), (232, 228, 216)), roof="pagoda", roof_colour=(54, 70, 72),
        windows="lattice", tree="round", vegetation=(70, 142, 70), sky=(164, 178, 190), ground=(140, 130, 110),
        sand=(214, 200, 170)), water=(60, 100, 120), warm=False, weight=0.9),
    Region("Tropica", RegionStyle(
        facade_palette=((80, 196, 190), (240, 160, 170), (190, 220, 100), (246, 180, 100)), roof="thatch",
        roof_colour=(170, 136, 80), windows="louvred", tree="palm", vegetation=(34, 160, 70), sky=(80, 180, 232),
        ground=(170, 150, 100), sand=(240, 226, 182)), water=(40, 172, 190), warm=True, weight=1.0),
    Region("Desertia", RegionStyle(
        facade_palette=((222, 196, 150), (200, 150, 90), (230, 200, 180), (240, 232, 214)), roof="dome",
        roof_colour=(70, 130, 160), windows="arched", tree="palm", vegetation=(120, 128, 60), sky=(152, 192, 222),
        ground=(210, 186, 140), sand=(232, 202, 150)), water=(40, 120, 170), warm=True, weight=0.7),
    Region("Occidentia", RegionStyle(
        facade_palette=((110, 130, 150), (170, 170, 168), (150, 80, 60)), roof="flat", roof_colour=(90, 90, 94),
        windows="bands", tree="round", vegetation=(70, 120, 60), sky=(110, 160, 220), ground=(130, 130, 124),
        sand=(220, 210, 180)), water=(40, 90, 140), warm=False, weight=1.1),
)

COUNTRIES: tuple[Country, ...] = (
    Country("Fjellan", "Nordmark", (30, 80, 160)),
    Country("Skarvia", "Nordmark", (200, 30, 40)),
    Country("Norrholm", "Nordmark", (240, 200, 40)),
    Country("Calvera", "Meridia", (20, 120, 80)),
    Country("Ostria", "Meridia", (120, 60, 140)),
    Country("Lumeno", "Meridia", (30, 150, 190)),
    Country("Kaizhou", "Orientis", (220, 160, 20)),
    Country("Hanrei", "Orientis", (30, 40, 60)),
    Country("Palmeira", "Tropica", (240, 100, 40)),
    Country("Coralis", "Tropica", (230, 80, 140)),
    Country("Verdana", "Tropica", (40, 170, 90)),
    Country("Qasira", "Desertia", (150, 30, 40)),
    Country("Almarai", "Desertia", (20, 110, 120)),
    Country("Columbria", "Occidentia", (40, 60, 140)),
    Country("Westmark", "Occidentia", (190, 100, 40)),
    Country("Pacifica", "Occidentia", (90, 160, 200)),
)

# (name, country, geography, large, cost level)
_CITY_TABLE: tuple[tuple[str, str, str, bool, float], ...] = (
    ("Tindvik", "Fjellan", "coastal", False, 1.20), ("Bergsal", "Fjellan", "mountain", False, 1.10),
    ("Fjellhavn", "Fjellan", "urban", True, 1.40),
    ("Skarhamn", "Skarvia", "coastal", True, 1.30), ("Isdal", "Skarvia", "mountain", False, 1.00),
    ("Holmstad", "Norrholm", "urban", True, 1.35), ("Lysoy", "Norrholm", "coastal", False, 1.10),
    ("Kaldberg", "Norrholm", "mountain", False, 1.05),
    ("Porto Calva", "Calvera", "coastal", True, 1.10), ("Monteraso", "Calvera", "mountain", False, 0.85),
    ("Ostra", "Ostria", "urban", True, 1.05), ("Marivento", "Ostria", "coastal", False, 0.95),
    ("Sassoleo", "Ostria", "mountain", False, 0.80),
    ("Lumina", "Lumeno", "coastal", True, 1.15), ("Valdoro", "Lumeno", "urban", False, 0.90),
    ("Jinhai", "Kaizhou", "urban", True, 1.00), ("Shanyu", "Kaizhou", "mountain", False, 0.70),
    ("Haiqiao", "Kaizhou", "coastal", False, 0.80),
    ("Reiko", "Hanrei", "urban", True, 1.20), ("Yamadori", "Hanrei", "mountain", False, 0.85),
    ("Praia Azul", "Palmeira", "coastal", False, 0.75), ("Palmas", "Palmeira", "coastal", True, 0.85),
    ("Serra Verde", "Palmeira", "mountain", False, 0.60),
    ("Coral Bay", "Coralis", "coastal", False, 0.95), ("Recifa", "Coralis", "urban", True, 0.70),
    ("Isla Verde", "Verdana", "coastal", False, 0.80), ("Selvana", "Verdana", "mountain", False, 0.55),
    ("Puerto Sol", "Verdana", "coastal", True, 0.75),
    ("Qasr", "Qasira", "urban", True, 0.90), ("Bahra", "Qasira", "coastal", True, 1.10),
    ("Wadiyan", "Almarai", "mountain", False, 0.60), ("Marsa", "Almarai", "coastal", False, 0.70),
    ("Almar", "Almarai", "urban", True, 0.75),
    ("Union City", "Columbria", "urban", True, 1.30), ("Lakeport", "Columbria", "coastal", False, 1.00),
    ("Redrock", "Westmark", "mountain", False, 0.90), ("Westhaven", "Westmark", "coastal", True, 1.25),
    ("Granite Falls", "Westmark", "mountain", False, 0.85),
    ("Bay City", "Pacifica", "coastal", True, 1.45), ("Cedar Peak", "Pacifica", "mountain", False, 0.95),
)


def _make_scape(index: int, geography: str, large: bool, water: tuple[int, int, int]) -> CityScape:
    """A city's fixed surroundings, drawn from a generator keyed by the city's index (not the seed):
    the world is the same for every catalogue, only its listings change."""
    rng = np.random.default_rng([7_919, index])
    hills = geography == "mountain" or (geography == "coastal" and rng.random() < 0.35)
    n = int(rng.integers(14, 22)) if large else int(rng.integers(6, 11))
    edges = np.sort(rng.uniform(-0.16, 1.16, size=n + 1))
    lo, hi = (0.1, 0.45) if large else (0.04, 0.14)
    skyline = tuple((float(a), float(b), float(rng.uniform(lo, hi)), int(rng.integers(0, 4)))
                    for a, b in zip(edges[:-1], edges[1:], strict=True) if b - a > 0.015)
    if geography == "mountain":
        peaks = tuple((float(rng.uniform(-0.1, 1.1)), float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.12, 0.3)))
                      for _ in range(int(rng.integers(3, 6))))
    elif hills:
        peaks = tuple((float(rng.uniform(-0.1, 1.1)), float(rng.uniform(0.06, 0.14)), float(rng.uniform(0.15, 0.3)))
                      for _ in range(int(rng.integers(2, 4))))
    else:
        peaks = ()
    jitter = rng.uniform(-12, 12, size=3)
    return CityScape(
        geography=geography, large=large, hills=hills, skyline=skyline,
        landmark=LANDMARKS[int(rng.integers(len(LANDMARKS)))], landmark_x=float(rng.uniform(0.2, 0.8)),
        peaks=peaks, water=tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(water, jitter, strict=True)),
    )


def _build_cities() -> tuple[City, ...]:
    """The 40 cities of ``_CITY_TABLE``, each with its country's region and its fixed surroundings."""
    region_of = {c.name: c.region for c in COUNTRIES}
    water_of = {r.name: r.water for r in REGIONS}
    return tuple(
        City(name, country, region_of[country], geo, large, cost,
             _make_scape(i, geo, large, water_of[region_of[country]]))
        for i, (name, country, geo, large, cost) in enumerate(_CITY_TABLE)
    )


CITIES: tuple[City, ...] = _build_cities()

CHAINS: tuple[Chain, ...] = (
    Chain("Azure Stay", ChainStyle((24, 44, 110), (222, 182, 60), "circle"), 4.2, {"hotel": 1.0, "resort": 0.6},
          frozenset(r.name for r in REGIONS)),
    Chain("Nordic Nest", ChainStyle((20, 128, 132), (240, 244, 246), "triangle"), 3.0,
          {"hotel": 1.0, "apartment": 0.7}, frozenset({"Nordmark", "Occidentia", "Meridia"})),
    Chain("Sunburst Resorts", ChainStyle((236, 110, 30), (252, 220, 60), "star"), 4.0,
          {"resort": 1.0, "hotel": 0.3}, frozenset({"Meridia", "Tropica", "Desertia"})),
    Chain("Urban Cube", ChainStyle((30, 30, 34), (150, 210, 40), "square"), 2.8,
          {"hotel": 0.8, "hostel": 1.0, "apartment": 0.5}, frozenset({"Occidentia", "Orientis", "Nordmark", "Meridia"})),
    Chain("Regalia Grand", ChainStyle((120, 24, 48), (240, 226, 196), "diamond"), 4.8,
          {"hotel": 1.0, "resort": 0.8}, frozenset(r.name for r in REGIONS)),
    Chain("Pennywise Inn", ChainStyle((200, 30, 36), (250, 250, 250), "chevron"), 2.0,
          {"hotel": 1.0, "hostel": 0.6}, frozenset({"Occidentia", "Desertia", "Orientis", "Tropica"})),
)




_COUNTRY_BY_NAME = {c.name: c for c in COUNTRIES}
