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
  ``gallery_core.demo.render``.
* The recorded table (``listings.csv``) then gets label noise: about 3 % of binary flags flipped and about
  10 % of every attribute's values missing. The clean table and the list of flips go to ``truth/``, for
  audits and evaluation only; training must never read them.

Determinism: listing ``i``'s attributes come from ``default_rng([seed, i, 1])``, its label noise from
``default_rng([seed, i, 2])`` and its photos from ``default_rng([seed, i])``. Outputs therefore do not
depend on the number of worker processes, and the first ``n`` listings of a bigger catalogue equal a
catalogue of ``n`` listings with the same seed.

Layout: ``gallery_core.demo.world`` holds the fixed world (regions, countries, cities, chains),
``gallery_core.demo.listings`` the catalogue's columns and what one listing is (attributes, label noise,
gallery kinds), and this module renders the galleries and writes the folder. The schema and world names
are re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from gallery_core.artifacts.store import atomic_path
from gallery_core.demo.listings import (
    _INT_COLUMNS,
    AMENITY_COLUMNS,
    BINARY_COLUMNS,
    FLAG_COLUMNS,
    FLIP_RATE,
    HOLDOUT_COLUMNS,
    LISTING_COLUMNS,
    MAX_LISTINGS,
    MAX_PHOTOS,
    MIN_PHOTOS,
    MISSING_RATE,
    MULTICLASS_COLUMNS,
    PROPERTY_TYPES,
    REGRESSION_COLUMNS,
    SIZE_BUCKETS,
    _gallery_kinds,
    _record_with_noise,
    _sample_listing,
)
from gallery_core.demo.render import PHOTO_KINDS, ListingLook, photograph, render_scene, sample_decor
from gallery_core.demo.world import CHAINS, CITIES, COUNTRIES, REGIONS, Chain, City, Country, Region

__all__ = [
    "AMENITY_COLUMNS",
    "BINARY_COLUMNS",
    "CHAINS",
    "CITIES",
    "COUNTRIES",
    "FLAG_COLUMNS",
    "FLIP_RATE",
    "HOLDOUT_COLUMNS",
    "LISTING_COLUMNS",
    "MAX_LISTINGS",
    "MAX_PHOTOS",
    "MIN_PHOTOS",
    "MISSING_RATE",
    "MULTICLASS_COLUMNS",
    "PHOTO_KINDS",
    "PROPERTY_TYPES",
    "REGIONS",
    "REGRESSION_COLUMNS",
    "SIZE_BUCKETS",
    "Chain",
    "City",
    "Country",
    "Region",
    "generate_demo_catalogue",
]


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
    """Consecutive lists of ``size`` items (the last may be shorter): one rendering job each."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])

# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    """Write ``text`` through the project's atomic writer (temp file, then rename), so a reader never sees
    half a file; ``newline=""`` keeps the ``\\n`` line ends on every platform."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _table_csv(rows: list[dict[str, Any]]) -> str:
    """A listings table as CSV text; integer columns stay integers even where cells are missing."""
    df = pd.DataFrame(rows, columns=list(LISTING_COLUMNS))
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")  # nullable: missing cells stay empty, present ones stay "1"
    return df.to_csv(index=False, lineterminator="\n")


def _tasks_spec() -> dict[str, Any]:
    """The training tasks by kind and the hold-out columns, as ``gallery_core.data.tasks`` reads them."""
    kinds = (("binary", BINARY_COLUMNS), ("multiclass", MULTICLASS_COLUMNS), ("regression", REGRESSION_COLUMNS))
    return {
        "tasks": [{"column": column, "kind": kind} for kind, columns in kinds for column in columns],
        "holdout": list(HOLDOUT_COLUMNS),
    }


def _tasks_yaml() -> str:
    """``tasks.yaml``: keys in the documented order, one task per line (flow style for the leaves)."""
    return yaml.safe_dump(_tasks_spec(), sort_keys=False, default_flow_style=None)


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
    staging = parent / f".{out.name}.partial-{uuid.uuid4().hex}"
    # An ordinary folder (umask applies), unlike tempfile.mkdtemp's private one; the random name keeps
    # concurrent runs apart (mkdir fails rather than share a folder).
    staging.mkdir(0o777)
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
        recorded_rows, flips = _record_with_noise(clean_rows, int(seed))

        (staging / "truth").mkdir()
        _write_text(staging / "truth" / "clean_listings.csv", _table_csv(clean_rows))
        _write_text(staging / "truth" / "flipped_flags.csv", pd.DataFrame(
            flips, columns=["listing_id", "column", "recorded", "true"]).to_csv(index=False, lineterminator="\n"))
        _write_text(staging / "listings.csv", _table_csv(recorded_rows))
        _write_text(staging / "tasks.yaml", _tasks_yaml())
        _write_text(staging / "README.md", _README.format(seed=seed, n=n_listings, size=image_size))
        _write_text(staging / "photos.csv", pd.DataFrame(
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
