"""Synthetic demo catalogue: accommodation listings with photo galleries and noisy attribute labels.

Why it exists: the gallery encoder needs a catalogue whose attributes are *visible* in the photos the way
they are on a real accommodation site (a pool is in the gallery only if there is a pool and someone
photographed it), whose labels are noisy and incomplete the way a real catalogue's are, and whose truth
is known, so that training, the attribute audit and retrieval can be demonstrated and tested offline on
two CPU cores. ``generate_demo_catalogue`` writes such a catalogue in the same on-disk format a user's
own catalogue would use.

The world model is fixed here once, from first principles, and is not tuned to flatter any model:

* 6 world regions -> 16 countries -> 40 cities. A region fixes the architecture (facade palette, roof,
  windows, trees, sky, sand), a country an accent colour, a city its geography (coastal / mountain /
  urban), size, cost level, skyline with a landmark and mountain profile.
* Each listing draws, in this order: city; property type (depends on geography); rooms -> size bucket;
  chain (mostly hotels and resorts, each chain present in some regions); star rating (chain tier or type,
  size, city cost); a hidden quality; amenities with sensible dependencies (beach access only in coastal
  cities, mountain views where there are mountains, kitchens in apartments and villas, bars and gyms in
  big hotels and resorts, ...); then price, review score, distance to centre and location score, each a
  noisy function of the above.
* Each listing's gallery (5-20 photos) is drawn from what it has and rendered by
  ``gallery_core.demo.render``.
* The recorded table (``listings.csv``) then gets label noise: about 3 % of binary flags flipped and about
  10 % of every attribute's values missing. The clean table and the list of flips go to ``truth/``, for
  audits and evaluation only; training must never read them.

Determinism: listing ``i``'s attributes come from ``default_rng([seed, i, 1])``, its label noise from
``default_rng([seed, i, 2])`` and its photos from ``default_rng([seed, i])``. Outputs therefore do not
depend on the number of worker processes, and the first ``n`` listings of a bigger catalogue equal a
catalogue of ``n`` listings with the same seed.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from gallery_core.demo.render import (
    LANDMARKS,
    PHOTO_KINDS,
    ChainStyle,
    CityScape,
    ListingLook,
    RegionStyle,
    photograph,
    render_scene,
    sample_decor,
)

__all__ = [
    "AMENITY_COLUMNS",
    "BINARY_COLUMNS",
    "CHAINS",
    "CITIES",
    "COUNTRIES",
    "FLAG_COLUMNS",
    "HOLDOUT_COLUMNS",
    "LISTING_COLUMNS",
    "MULTICLASS_COLUMNS",
    "PHOTO_KINDS",
    "PROPERTY_TYPES",
    "REGIONS",
    "REGRESSION_COLUMNS",
    "SIZE_BUCKETS",
    "generate_demo_catalogue",
]

# --------------------------------------------------------------------------------------------------
# Catalogue schema
# --------------------------------------------------------------------------------------------------
AMENITY_COLUMNS: tuple[str, ...] = (
    "sea_view", "mountain_view", "city_view", "balcony", "kitchen", "bar", "garden", "beach_access", "pool",
    "fitness_centre", "city_centre",
)
#: Binary columns that get flipped by label noise (and are binary training tasks).
FLAG_COLUMNS: tuple[str, ...] = ("is_chain", *AMENITY_COLUMNS)
BINARY_COLUMNS = FLAG_COLUMNS
MULTICLASS_COLUMNS: tuple[str, ...] = ("world_region", "country", "city", "property_type", "size_bucket")
REGRESSION_COLUMNS: tuple[str, ...] = ("price", "review_score", "distance_to_centre_km", "location_score")
HOLDOUT_COLUMNS: tuple[str, ...] = ("star_rating",)
LISTING_COLUMNS: tuple[str, ...] = (
    "listing_id", "world_region", "country", "city", "property_type", "size_bucket", "chain", "is_chain",
    "star_rating", *AMENITY_COLUMNS, *REGRESSION_COLUMNS,
)
_INT_COLUMNS: tuple[str, ...] = (*FLAG_COLUMNS, "star_rating")

PROPERTY_TYPES: tuple[str, ...] = ("hotel", "apartment", "bnb", "hostel", "villa", "resort", "guesthouse")
SIZE_BUCKETS: tuple[str, ...] = ("xs", "s", "m", "l", "xl")

#: Label noise of the recorded table.
FLIP_RATE = 0.03
MISSING_RATE = 0.10

MIN_PHOTOS, MAX_PHOTOS = 5, 20
MAX_LISTINGS = 999_999  # listing ids are fixed-width "L000001", so they sort as they are numbered

# --------------------------------------------------------------------------------------------------
# The world (fixed; names are fictional)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    name: str
    style: RegionStyle
    water: tuple[int, int, int]
    warm: bool  # outdoor pools are common
    weight: float  # share of listings


@dataclass(frozen=True)
class Country:
    name: str
    region: str
    accent: tuple[int, int, int]


@dataclass(frozen=True)
class City:
    name: str
    country: str
    region: str
    geography: str  # coastal | mountain | urban
    large: bool
    cost: float  # price level multiplier
    scape: CityScape


@dataclass(frozen=True)
class Chain:
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

_REGION_BY_NAME = {r.name: r for r in REGIONS}
_COUNTRY_BY_NAME = {c.name: c for c in COUNTRIES}

# Property-type mix by geography (order of PROPERTY_TYPES).
_TYPE_MIX = {
    "urban": (0.38, 0.25, 0.08, 0.12, 0.01, 0.01, 0.15),
    "coastal": (0.28, 0.22, 0.08, 0.05, 0.12, 0.13, 0.12),
    "mountain": (0.25, 0.18, 0.12, 0.05, 0.12, 0.08, 0.20),
}
_CHAIN_SHARE = {"hotel": 0.38, "resort": 0.45, "hostel": 0.15, "apartment": 0.06}
_STAR_MEAN = {"hotel": 3.2, "apartment": 3.0, "bnb": 2.8, "hostel": 1.6, "villa": 3.8, "resort": 4.0, "guesthouse": 2.5}
_SIZE_STAR_SHIFT = {"xs": -0.3, "s": -0.1, "m": 0.0, "l": 0.2, "xl": 0.4}
_TYPE_PRICE = {"hotel": 1.0, "apartment": 0.9, "bnb": 0.8, "hostel": 0.35, "villa": 2.4, "resort": 1.5,
               "guesthouse": 0.75}
_SIZE_PRICE = {"xs": 0.92, "s": 0.97, "m": 1.0, "l": 1.05, "xl": 1.1}
_UNIT_SIZE_PRICE = {"xs": 0.85, "s": 1.4, "m": 2.0, "l": 2.5, "xl": 3.0}  # whole apartments / villas


def _rooms(ptype: str, rng: np.random.Generator) -> int:
    if ptype == "hotel":
        return max(4, round(rng.lognormal(math.log(45), 0.8)))
    if ptype == "resort":
        return max(20, round(rng.lognormal(math.log(150), 0.6)))
    if ptype == "hostel":
        return max(4, round(rng.lognormal(math.log(20), 0.5)))
    if ptype == "apartment":
        return 1 + int(rng.poisson(0.7))
    if ptype == "villa":
        return 1 + int(rng.poisson(1.5))
    if ptype == "bnb":
        return 2 + int(rng.poisson(2.5))
    return 3 + int(rng.poisson(4.0))  # guesthouse


def _size_bucket(rooms: int) -> str:
    return "xs" if rooms <= 3 else "s" if rooms <= 10 else "m" if rooms <= 40 else "l" if rooms <= 150 else "xl"


def _bernoulli(rng: np.random.Generator, p: float) -> int:
    return int(rng.random() < min(1.0, max(0.0, p)))


def _sample_listing(index: int, seed: int) -> tuple[dict[str, Any], ListingLook]:
    """Clean attributes of listing ``index`` and what its photos can show (see the module docstring)."""
    rng = np.random.default_rng([seed, index, 1])
    region_w = np.array([r.weight for r in REGIONS])
    region = REGIONS[int(rng.choice(len(REGIONS), p=region_w / region_w.sum()))]
    cities = [c for c in CITIES if c.region == region.name]
    city_w = np.array([2.0 if c.large else 1.0 for c in cities])
    city = cities[int(rng.choice(len(cities), p=city_w / city_w.sum()))]
    country = _COUNTRY_BY_NAME[city.country]
    geo = city.geography
    ptype = PROPERTY_TYPES[int(rng.choice(len(PROPERTY_TYPES), p=np.array(_TYPE_MIX[geo]) / sum(_TYPE_MIX[geo])))]
    size = _size_bucket(_rooms(ptype, rng))

    chain: Chain | None = None
    if rng.random() < _CHAIN_SHARE.get(ptype, 0.0):
        options = [c for c in CHAINS if region.name in c.regions and c.types.get(ptype, 0.0) > 0]
        if options:
            w = np.array([c.types[ptype] for c in options])
            chain = options[int(rng.choice(len(options), p=w / w.sum()))]
    if chain is not None:
        star_mean, star_sd = chain.tier, 0.35
    else:
        star_mean, star_sd = _STAR_MEAN[ptype] + _SIZE_STAR_SHIFT[size], 0.7
    star_mean += 0.5 * (city.cost - 1.0)
    stars = int(np.clip(round(rng.normal(star_mean, star_sd)), 1, 3 if ptype == "hostel" else 5))
    quality = float(rng.normal())

    coastal, mountain, large = geo == "coastal", geo == "mountain", city.large
    big = {"xs": 0, "s": 0, "m": 1, "l": 2, "xl": 3}[size]
    a: dict[str, int] = {}
    a["beach_access"] = _bernoulli(rng, {"resort": 0.7, "villa": 0.5, "hotel": 0.3}.get(ptype, 0.2)) if coastal else 0
    a["sea_view"] = _bernoulli(rng, 0.85 if a["beach_access"] else 0.3 + 0.05 * (stars - 3)) if coastal else 0
    a["mountain_view"] = _bernoulli(rng, 0.65 if mountain else 0.25 if city.scape.hills else 0.0)
    centre_base = {"hostel": 0.6, "hotel": 0.45, "apartment": 0.4, "bnb": 0.35, "guesthouse": 0.3}.get(ptype, 0.03)
    a["city_centre"] = _bernoulli(rng, centre_base * (1.0 if large else 0.7))
    a["city_view"] = _bernoulli(rng, (0.5 if large else 0.1) * (1.4 if big >= 2 else 1.0) *
                                (1.3 if a["city_centre"] else 0.7))
    any_view = a["sea_view"] or a["mountain_view"] or a["city_view"]
    a["balcony"] = _bernoulli(rng, {"apartment": 0.6, "villa": 0.55, "resort": 0.65, "hotel": 0.4, "bnb": 0.3,
                                    "guesthouse": 0.35, "hostel": 0.1}[ptype] + 0.1 * any_view)
    a["kitchen"] = _bernoulli(rng, {"apartment": 0.9, "villa": 0.85, "hostel": 0.55, "guesthouse": 0.3, "bnb": 0.2,
                                    "hotel": 0.06, "resort": 0.15}[ptype])
    if ptype == "hotel":
        bar_p = (0.05, 0.2, 0.5, 0.8, 0.9)[SIZE_BUCKETS.index(size)] + 0.05 * (stars - 3)
    else:
        bar_p = {"resort": 0.9, "hostel": 0.5, "guesthouse": 0.1, "bnb": 0.05, "apartment": 0.02, "villa": 0.03}[ptype]
    a["bar"] = _bernoulli(rng, bar_p)
    a["garden"] = _bernoulli(rng, {"villa": 0.7, "bnb": 0.5, "guesthouse": 0.55, "resort": 0.6, "hotel": 0.2,
                                   "apartment": 0.1, "hostel": 0.15}[ptype] * (0.4 if a["city_centre"] else 1.0))
    if ptype == "hotel":
        pool_p = 0.06 + 0.1 * (stars - 2)
    else:
        pool_p = {"resort": 0.92, "villa": 0.6, "apartment": 0.08, "guesthouse": 0.05, "bnb": 0.04, "hostel": 0.03}[ptype]
    a["pool"] = _bernoulli(rng, pool_p + (0.15 if region.warm else 0.0))
    if ptype == "hotel":
        gym_p = (0.0, 0.05, 0.25, 0.6, 0.8)[SIZE_BUCKETS.index(size)] + 0.1 * (stars - 3)
    else:
        gym_p = {"resort": 0.6, "apartment": 0.05}.get(ptype, 0.02)
    a["fitness_centre"] = _bernoulli(rng, gym_p)

    unit = ptype in ("apartment", "villa")
    price = (85.0 * city.cost * _TYPE_PRICE[ptype] * math.exp(0.32 * (stars - 3))
             * (_UNIT_SIZE_PRICE if unit else _SIZE_PRICE)[size]
             * (1.18 if a["sea_view"] else 1.0) * (1.1 if a["pool"] else 1.0)
             * (1.05 if a["beach_access"] else 1.0) * (1.08 if a["city_centre"] else 1.0)
             * math.exp(rng.normal(0.0, 0.22)))
    review = float(np.clip(7.4 + 0.35 * (stars - 3) + 0.65 * quality + rng.normal(0.0, 0.45), 1.0, 10.0))
    if a["city_centre"]:
        distance = min(1.5, float(rng.lognormal(math.log(0.6), 0.45)))
    else:
        far = (1.6 if large else 1.0) * (2.0 if ptype in ("resort", "villa") else 1.0)
        distance = 0.8 + float(rng.lognormal(math.log(3.0 * far), 0.6))
    location = float(np.clip(8.9 - 0.55 * math.log1p(distance) + 0.35 * a["sea_view"] + 0.2 * a["mountain_view"]
                             + 0.15 * a["city_view"] + 0.35 * a["beach_access"] + rng.normal(0.0, 0.35), 1.0, 10.0))

    row: dict[str, Any] = {
        "listing_id": f"L{index + 1:06d}", "world_region": region.name, "country": country.name, "city": city.name,
        "property_type": ptype, "size_bucket": size, "chain": chain.name if chain else None,
        "is_chain": int(chain is not None), "star_rating": stars,
        **{col: a[col] for col in AMENITY_COLUMNS},
        "price": round(price, 2), "review_score": round(review, 1), "distance_to_centre_km": round(distance, 2),
        "location_score": round(location, 1),
    }
    look = ListingLook(
        property_type=ptype, size_bucket=size, stars=stars, quality=quality, region=region.style,
        accent=country.accent, city=city.scape, chain=chain.style if chain else None,
        amenities=frozenset(col for col in AMENITY_COLUMNS if a[col]),
    )
    return row, look


def _label_noise(index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which flags of listing ``index`` are flipped (over FLAG_COLUMNS) and which cells are missing (over
    LISTING_COLUMNS[1:], i.e. every column but listing_id)."""
    rng = np.random.default_rng([seed, index, 2])
    flipped = rng.random(len(FLAG_COLUMNS)) < FLIP_RATE
    missing = rng.random(len(LISTING_COLUMNS) - 1) < MISSING_RATE
    return flipped, missing


def _gallery_kinds(look: ListingLook, rng: np.random.Generator) -> list[str]:
    """Photo kinds of a listing's gallery: drawn from what it has, like a real gallery.

    Pools, gyms, beaches, kitchens and gardens are photographed only where they exist, a lobby with a bar
    mostly where there is a bar (some hotels show a plain reception), and facades, bedrooms, bathrooms and
    views everywhere. Bigger and better listings have longer galleries. The first photo is usually the
    facade.
    """
    p = 0.5 + 0.05 * (look.stars - 3) + {"xs": -0.12, "s": -0.06, "m": 0.0, "l": 0.06, "xl": 0.1}[look.size_bucket]
    n = MIN_PHOTOS + int(rng.binomial(MAX_PHOTOS - MIN_PHOTOS, min(0.9, max(0.1, p))))
    weights = {"facade": 1.2, "bedroom": 2.2, "bathroom": 1.2, "view": 1.0}
    optional = {"kitchen": ("kitchen", 1.0), "pool": ("pool", 1.3), "gym": ("fitness_centre", 0.7),
                "garden": ("garden", 1.0), "beach": ("beach_access", 1.1), "lobby_bar": ("bar", 1.0)}
    for kind, (amenity, w) in optional.items():
        if look.has(amenity):
            weights[kind] = w
    if not look.has("bar") and look.property_type in ("hotel", "resort", "hostel"):
        weights["lobby_bar"] = 0.25
    kinds = list(weights)
    w = np.array([weights[k] for k in kinds])
    chosen = [kinds[int(i)] for i in rng.choice(len(kinds), size=n, p=w / w.sum())]
    if rng.random() < 0.75 and chosen[0] != "facade":
        chosen.insert(0, "facade")
        chosen.pop()
    return chosen


# --------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes)
# --------------------------------------------------------------------------------------------------
def _render_size(image_size: int) -> int:
    """Supersampled drawing size: 2x (at least 64 px) for antialiasing, capped at 512 px or the size itself."""
    return min(max(2 * image_size, 64), max(image_size, 512))


def _render_listings(job: tuple[int, str, int, list[tuple[int, str, ListingLook]]]) -> list[tuple[str, str, str]]:
    """Render and save the galleries of a chunk of listings; return their (listing_id, path, kind) rows."""
    seed, root, image_size, items = job
    render_size = _render_size(image_size)
    rows: list[tuple[str, str, str]] = []
    for index, listing_id, look in items:
        rng = np.random.default_rng([seed, index])
        kinds = _gallery_kinds(look, rng)
        decor = sample_decor(look, rng)
        folder = Path(root, "photos", listing_id)
        folder.mkdir(parents=True, exist_ok=True)
        for k, kind in enumerate(kinds, start=1):
            photo = photograph(render_scene(kind, look, decor, rng, render_size), rng, image_size)
            quality = int(rng.integers(40, 96))
            rel = f"photos/{listing_id}/{k:02d}.jpg"
            photo.save(Path(root, rel), format="JPEG", quality=quality)
            rows.append((listing_id, rel, kind))
    return rows


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _unique_sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and ``os.replace``, so readers never see half a file.

    The temp file is created with mode 0o666 minus the umask, like any ordinary file (``tempfile.mkstemp``
    would make it private, and ``os.replace`` would keep that)."""
    tmp = _unique_sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _table_csv(rows: list[dict[str, Any]]) -> str:
    df = pd.DataFrame(rows, columns=list(LISTING_COLUMNS))
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")  # nullable: missing cells stay empty, present ones stay "1"
    return df.to_csv(index=False, lineterminator="\n")


def _tasks_yaml() -> str:
    lines = ["tasks:"]
    lines += [f"  - {{column: {c}, kind: binary}}" for c in BINARY_COLUMNS]
    lines += [f"  - {{column: {c}, kind: multiclass}}" for c in MULTICLASS_COLUMNS]
    lines += [f"  - {{column: {c}, kind: regression}}" for c in REGRESSION_COLUMNS]
    lines.append(f"holdout: [{', '.join(HOLDOUT_COLUMNS)}]")
    return "\n".join(lines) + "\n"


_README = (
    "Synthetic accommodation catalogue generated by gallery_core.demo.generator (seed={seed}, {n} listings, {size} px "
    "photos): listings.csv holds the recorded, noisy labels; photos.csv and photos/ the galleries; tasks.yaml "
    "the training tasks.\n"
    "truth/ holds the clean labels and the list of flipped flags, for audit and evaluation only: training must "
    "never read it.\n"
)


def _check_params(out_dir: str | Path, n_listings: int, seed: int, image_size: int, workers: int | None) -> Path:
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
        raise ValueError(f"out_dir must be a non-empty path, got {out_dir!r}")
    if not is_int(n_listings) or not 1 <= n_listings <= MAX_LISTINGS:
        raise ValueError(f"n_listings must be an int in 1..{MAX_LISTINGS}, got {n_listings!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (numpy SeedSequence entropy), got {seed!r}")
    if not is_int(image_size) or not 16 <= image_size <= 1024:
        raise ValueError(f"image_size must be an int in 16..1024 (pixels per side), got {image_size!r}")
    if workers is not None and (not is_int(workers) or workers < 1):
        raise ValueError(f"workers must be None (one per CPU) or an int >= 1, got {workers!r}")
    out = Path(out_dir).expanduser()
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"out_dir {str(out)!r} exists and is not a directory")
        if any(out.iterdir()):
            raise FileExistsError(
                f"out_dir {str(out)!r} exists and is not empty; the demo generator never overwrites or mixes "
                "catalogues: remove it or choose a new folder")
    return out


def generate_demo_catalogue(
    out_dir: str | Path,
    n_listings: int = 2000,
    seed: int = 0,
    image_size: int = 128,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the synthetic demo catalogue under ``out_dir`` and return its path.

    ``out_dir`` must not exist or be an empty folder. The catalogue is built in a hidden sibling folder and
    renamed into place at the end, so ``out_dir`` never holds half a catalogue (a failed or interrupted
    run leaves nothing behind). Output is deterministic for ``(seed, n_listings, image_size)`` whatever
    ``workers`` is: byte-identical CSV/YAML/truth files and identical JPEG files.

    Layout::

        listings.csv               recorded labels (noisy: ~3 % flags flipped, ~10 % cells missing)
        photos.csv                 listing_id, path (relative, "photos/L000001/01.jpg"), kind
        photos/<listing_id>/NN.jpg square RGB JPEGs, image_size px, 5-20 per listing
        tasks.yaml                 training tasks by kind, and the hold-out columns
        README.md                  what this is
        truth/clean_listings.csv   clean labels, same columns (audit/evaluation only)
        truth/flipped_flags.csv    listing_id, column, recorded, true for each flipped (non-missing) flag

    Args:
        out_dir: destination folder (created, with its parents).
        n_listings: number of listings, 1..999,999.
        seed: non-negative int; the same seed gives the same catalogue.
        image_size: photo side in pixels, 16..1024.
        workers: rendering processes; None uses ``os.cpu_count()``, 1 renders in this process.
        progress: show a tqdm progress bar on stderr.

    Raises:
        ValueError: a parameter is out of range.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    out = _check_params(out_dir, n_listings, seed, image_size, workers)
    n_workers = min(int(workers or os.cpu_count() or 1), int(n_listings))
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = _unique_sibling(parent / out.name, "partial")
    staging.mkdir(0o777)  # an ordinary folder (umask applies), unlike tempfile.mkdtemp's private one
    try:
        sampled = [_sample_listing(i, int(seed)) for i in range(int(n_listings))]
        items = [(i, row["listing_id"], look) for i, (row, look) in enumerate(sampled)]
        chunk = max(1, min(16, math.ceil(len(items) / (n_workers * 8))))
        jobs = [(int(seed), str(staging), int(image_size), part) for part in _chunks(items, chunk)]
        photo_rows: list[tuple[str, str, str]] = []
        with contextlib.ExitStack() as stack:
            if n_workers == 1:
                results: Iterator[list[tuple[str, str, str]]] = map(_render_listings, jobs)
            else:
                # fork where available: workers start at once and do not re-import the package (whose
                # __init__ may pull in heavy libraries). The pool is made before tqdm starts its thread.
                methods = multiprocessing.get_all_start_methods()
                ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
                pool = stack.enter_context(ctx.Pool(n_workers))
                results = pool.imap(_render_listings, jobs)
            bar = stack.enter_context(
                tqdm(total=len(items), unit="listing", desc="demo catalogue", disable=not progress))
            for job, rows in zip(jobs, results, strict=True):
                photo_rows.extend(rows)
                bar.update(len(job[3]))

        clean_rows = [row for row, _ in sampled]
        recorded_rows, flips = [], []
        for i, row in enumerate(clean_rows):
            flipped, missing = _label_noise(i, int(seed))
            rec = dict(row)
            for col, flip in zip(FLAG_COLUMNS, flipped, strict=True):
                if flip:
                    rec[col] = 1 - row[col]
            for col, miss in zip(LISTING_COLUMNS[1:], missing, strict=True):
                if miss:
                    rec[col] = None
            for col in FLAG_COLUMNS:
                if rec[col] is not None and rec[col] != row[col]:
                    flips.append({"listing_id": row["listing_id"], "column": col, "recorded": rec[col],
                                  "true": row[col]})
            recorded_rows.append(rec)

        (staging / "truth").mkdir()
        _atomic_write_text(staging / "truth" / "clean_listings.csv", _table_csv(clean_rows))
        _atomic_write_text(staging / "truth" / "flipped_flags.csv", pd.DataFrame(
            flips, columns=["listing_id", "column", "recorded", "true"]).to_csv(index=False, lineterminator="\n"))
        _atomic_write_text(staging / "listings.csv", _table_csv(recorded_rows))
        _atomic_write_text(staging / "tasks.yaml", _tasks_yaml())
        _atomic_write_text(staging / "README.md", _README.format(seed=seed, n=n_listings, size=image_size))
        _atomic_write_text(staging / "photos.csv", pd.DataFrame(
            photo_rows, columns=["listing_id", "path", "kind"]).to_csv(index=False, lineterminator="\n"))

        if out.exists():
            if any(out.iterdir()):
                raise FileExistsError(f"out_dir {str(out)!r} was filled by someone else while generating")
            out.rmdir()
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
