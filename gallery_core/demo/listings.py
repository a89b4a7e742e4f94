"""One listing: the catalogue's columns, sampling a listing's clean attributes, its label noise and the
kinds of photo in its gallery.

Why these sit together: they are the per-listing part of the world model, each a pure function of
``(seed, index)`` through its own generator (``[seed, i, 1]`` attributes, ``[seed, i, 2]`` label noise;
the gallery is drawn from the photo generator ``[seed, i]`` by the renderer's caller), so a listing never
depends on which process handles it or on how many listings are generated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gallery_core.demo.render import ListingLook
from gallery_core.demo.world import _COUNTRY_BY_NAME, CHAINS, CITIES, REGIONS, Chain

# The catalogue's columns (listings.csv and truth/clean_listings.csv) and the vocabulary of their values.
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

# How a listing is drawn. Property-type mix by geography (order of PROPERTY_TYPES).
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


def _record_with_noise(clean_rows: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The recorded table (flags flipped, cells blanked by ``_label_noise``) and the list of flips.

    A flip whose cell then goes missing is not listed: the record no longer claims anything about it.
    """
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
    return recorded_rows, flips
