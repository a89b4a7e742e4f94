"""The catalogue: a listings table, its photos and a task file, loaded and validated.

Layout of a catalogue folder (the demo generator writes the same)::

    listings.csv | listings.parquet   one row per listing: listing_id + attribute columns
    photos.csv   | photos.parquet     listing_id, path (relative to the folder, or absolute)
      or photos/<listing_id>/*.jpg    a folder per listing, when there is no photos table
    tasks.yaml                        training tasks and hold-out columns (see gallery_core.data.tasks)

CSV tables are comma-separated UTF-8. Listing ids are text, kept exactly as written ('007' stays '007';
'NA' is the id 'NA', not a missing value); a blank id, or one with spaces around it, is refused.

Errors that make the catalogue unusable (unknown column, blank or duplicate ids, wrong kinds, unknown
categories, fewer than ``MIN_LISTINGS`` listings with a photo) raise ``CatalogueError`` naming the file,
column and rows. Problems that only lose some data are skipped and listed in the report: missing or
unreadable photo files, files of a format the folder layout does not read, photos whose path resolves
(symlinks included) outside the catalogue folder and the ``photo_root`` folders that ``tasks.yaml``
allows, and listings left without photos.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.data.photo_files import (
    CatalogueReport,
    load_photos,
    photo_roots,
    read_photos,
)
from gallery_core.data.tables import (
    CatalogueError,
    check_ids,
    columns_text,
    find_table,
    read_table,
    require_column,
    rows_text,
    written_values,
)
from gallery_core.data.tasks import TaskFileError, TaskSpec, class_labels, parse_task_file

logger = logging.getLogger(__name__)

# Training learns from at least 2 listings and validates on at least 1 (training.data.split_listings).
MIN_LISTINGS = 3


@dataclass
class Catalogue:
    root: Path
    listings: pd.DataFrame  # listing_id (str) + attribute columns; only listings with >= 1 photo
    photos: pd.DataFrame  # listing_id (str), path (absolute str); grouped by listing, stable order
    tasks: tuple[TaskSpec, ...]
    holdout: tuple[str, ...]
    report: CatalogueReport
    fingerprint: str

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; this catalogue has tasks {self.task_names}")

    def gallery_sizes(self) -> np.ndarray:
        counts = self.photos.groupby("listing_id", sort=False).size()
        return counts.reindex(self.listings["listing_id"]).to_numpy()

    def subset(self, listing_ids: list[str] | np.ndarray | pd.Series) -> Catalogue:
        """The same catalogue restricted to some listings (e.g. a fraction of the training data).

        It keeps the parent's fingerprint, so the frozen-trunk cache made for the parent serves it."""
        keep = set(listing_ids)
        listings = self.listings[self.listings["listing_id"].isin(keep)].reset_index(drop=True)
        photos = self.photos[self.photos["listing_id"].isin(keep)].reset_index(drop=True)
        return replace(self, listings=listings, photos=photos)

    def without_photos(self, bad: dict[int, str]) -> Catalogue:
        """A copy without the photos at the given row positions ({row: reason}), e.g. undecodable ones.

        Raises ``CatalogueError`` when fewer than ``MIN_LISTINGS`` listings keep a photo: there is then
        nothing to train on, and the message says why the photos were skipped."""
        if not bad:
            return self
        report = CatalogueReport(list(self.report.skipped_photos), list(self.report.empty_listings))
        for row, reason in sorted(bad.items()):
            photo = self.photos.iloc[row]
            report.skipped_photos.append({"listing_id": photo.listing_id, "path": photo.path, "reason": reason})
        keep = np.ones(len(self.photos), dtype=bool)
        keep[list(bad)] = False
        photos = self.photos[keep].reset_index(drop=True)
        listings, empty = _drop_empty_listings(self.listings, photos)
        report.empty_listings.extend(empty)
        _check_enough_listings(self.root, listings, report, " after decoding")
        return replace(self, listings=listings, photos=photos, report=report)


def load_catalogue(root: str | Path, check_files: bool = True) -> Catalogue:
    """Load and validate a catalogue folder (see the module docstring for the layout).

    ``check_files`` False takes every listed photo as it is (no existence or format check); a photo that
    cannot be read for the fingerprint is then an error rather than a skipped photo."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise CatalogueError(f"{root}: catalogue folder not found")
    listings_path = find_table(root, "listings", required=True)
    listings = read_table(listings_path, exact_columns=("listing_id",))
    _validate_listings(listings, listings_path)

    task_path = root / "tasks.yaml"
    try:
        task_file = parse_task_file(task_path)
    except TaskFileError as err:
        raise CatalogueError(str(err)) from None
    tasks = tuple(_resolve_task(t, listings, listings_path) for t in task_file.tasks)
    for column in task_file.holdout:
        if column not in listings.columns:
            raise CatalogueError(f"{task_path}: hold-out column {column!r} is not in {listings_path.name} "
                                 f"(columns: {columns_text(listings)})")
    roots = photo_roots(root, task_file.photo_roots, task_path)

    report = CatalogueReport()
    photos, photos_source = load_photos(root, listings, roots, report, check_files)
    photos, digests = read_photos(photos, report, check_files)
    listings, empty = _drop_empty_listings(listings, photos)
    report.empty_listings.extend(empty)
    _check_enough_listings(root, listings, report)
    fingerprint = _fingerprint([listings_path, task_path, photos_source], photos, digests)
    return Catalogue(root=root, listings=listings, photos=photos, tasks=tasks, holdout=task_file.holdout,
                     report=report, fingerprint=fingerprint)


def _check_enough_listings(root: Path, listings: pd.DataFrame, report: CatalogueReport, when: str = "") -> None:
    """Refuse a catalogue with nothing to train on, saying why its photos were skipped."""
    if listings.empty:
        raise CatalogueError(f"{root}: no photo could be read{when}, so there is nothing to train on: "
                             f"{report.summary()}; for example {report.examples()}")
    if len(listings) < MIN_LISTINGS:
        ids = ", ".join(repr(i) for i in listings["listing_id"])
        skipped = f" ({report.summary()})" if report.skipped_photos or report.empty_listings else ""
        raise CatalogueError(f"{root}: only {len(listings)} listing(s) with a usable photo{when} ({ids}){skipped}: "
                             f"too small to train on; training needs at least {MIN_LISTINGS} listings "
                             f"({MIN_LISTINGS - 1} to learn from, 1 to validate on)")


def _validate_listings(listings: pd.DataFrame, path: Path) -> None:
    require_column(listings, "listing_id", path)
    if listings.empty:
        raise CatalogueError(f"{path}: the table has no rows")
    check_ids(listings, path)
    duplicated = listings["listing_id"].duplicated(keep=False)
    if duplicated.any():
        raise CatalogueError(f"{path}: duplicate listing_id at {rows_text(duplicated, listings, 'listing_id')}")


def _resolve_task(task: TaskSpec, listings: pd.DataFrame, path: Path) -> TaskSpec:
    """Check a task's column against the table and fix its classes (multiclass)."""
    where = f"{path}: task {task.name!r} (column {task.column!r}, {task.kind})"
    if task.column not in listings.columns:
        raise CatalogueError(f"{path}: task {task.name!r} names unknown column {task.column!r} "
                             f"(columns: {columns_text(listings)})")
    values = listings[task.column]
    present = values.notna()
    if not present.any():
        raise CatalogueError(f"{where}: every value is missing")
    if task.kind == "regression":
        numeric = pd.to_numeric(values, errors="coerce")
        text = present & numeric.isna()
        infinite = present & ~np.isfinite(numeric.fillna(0))
        if text.any() or infinite.any():  # named with the cells as written (a repr of a parsed float is no help)
            written = listings[["listing_id"]].assign(**{task.column: written_values(path, task.column).to_numpy()})
            if text.any():
                raise CatalogueError(f"{where}: non-numeric values at {rows_text(text, written, task.column)}")
            raise CatalogueError(f"{where}: not a finite number at {rows_text(infinite, written, task.column)}; "
                                 "regression values must be finite numbers (leave a cell empty when unknown)")
        return task
    if task.kind == "binary":
        numeric = pd.to_numeric(values.map(_as_binary_number, na_action="ignore"), errors="coerce")
        bad = present & ~numeric.isin([0, 1])
        if bad.any():
            raise CatalogueError(f"{where}: binary values must be 0/1 or true/false, got {rows_text(bad, listings, task.column)}")
        listings[task.column] = numeric  # normalised in place: true/false -> 1/0
        return task
    labels = class_labels(values)
    if task.classes is None:
        classes = tuple(sorted(labels.dropna().unique()))
        if len(classes) < 2:
            raise CatalogueError(f"{where}: needs at least 2 classes, found {list(classes)}")
        return replace(task, classes=classes)
    unknown = present & ~labels.isin(task.classes)
    if unknown.any():
        raise CatalogueError(f"{where}: unknown categories (not in the task's classes {list(task.classes)}) "
                             f"at {rows_text(unknown, listings, task.column)}")
    return task


def _as_binary_number(value: object) -> object:
    if isinstance(value, str):
        return {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0}.get(value.strip().lower(), value)
    if isinstance(value, bool | np.bool_):
        return int(value)
    return value


def _drop_empty_listings(listings: pd.DataFrame, photos: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    has_photo = listings["listing_id"].isin(set(photos["listing_id"]))
    empty = listings.loc[~has_photo, "listing_id"].tolist()
    return listings[has_photo].reset_index(drop=True), empty


def _fingerprint(paths: list[Path], photos: pd.DataFrame, digests: list[bytes]) -> str:
    """Content hash of the tables, the task file and every photo, so a rebuild knows what changed."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    for (listing_id, path), photo_digest in zip(photos[["listing_id", "path"]].itertuples(index=False), digests,
                                                strict=True):
        digest.update(f"{listing_id}\0{Path(path).name}\0".encode())
        digest.update(photo_digest)
    return digest.hexdigest()
