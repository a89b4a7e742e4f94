"""The catalogue: a listings table, its photos and a task file, loaded and validated.

Layout of a catalogue folder (the demo generator writes the same)::

    listings.csv | listings.parquet   one row per listing: listing_id + attribute columns
    photos.csv   | photos.parquet     listing_id, path (relative to the folder, or absolute)
      or photos/<listing_id>/*.jpg    a folder per listing, when there is no photos table
    tasks.yaml                        training tasks and hold-out columns (see gallery_core.data.tasks)

Errors that make the catalogue unusable (unknown column, duplicate ids, wrong kinds, unknown
categories) raise ``CatalogueError`` naming the file, column and rows. Problems that only lose some
data (missing photo files, listings left without photos) are skipped and counted in the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.errors import UsageError
from gallery_core.data.tasks import TaskFileError, TaskSpec, class_labels, parse_task_file

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_ROWS_IN_MESSAGE = 5


class CatalogueError(UsageError):
    """The catalogue cannot be used as it is; the message says what and where."""


@dataclass
class CatalogueReport:
    """What was skipped while loading and decoding, and why."""

    skipped_photos: list[dict[str, str]] = field(default_factory=list)  # {listing_id, path, reason}
    empty_listings: list[str] = field(default_factory=list)  # listings left with no usable photo

    def to_dict(self) -> dict:
        return {
            "n_skipped_photos": len(self.skipped_photos),
            "n_empty_listings": len(self.empty_listings),
            "skipped_photos": self.skipped_photos,
            "empty_listings": self.empty_listings,
        }

    def summary(self) -> str:
        return (f"{len(self.skipped_photos)} photo(s) skipped, "
                f"{len(self.empty_listings)} listing(s) without any usable photo")


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
        """A copy without the photos at the given row positions ({row: reason}), e.g. undecodable ones."""
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
        return replace(self, listings=listings, photos=photos, report=report)


def load_catalogue(root: str | Path, check_files: bool = True) -> Catalogue:
    """Load and validate a catalogue folder (see the module docstring for the layout)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise CatalogueError(f"{root}: catalogue folder not found")
    listings_path = _find_table(root, "listings", required=True)
    listings = _read_table(listings_path)
    _validate_listings(listings, listings_path)

    try:
        task_file = parse_task_file(root / "tasks.yaml")
    except TaskFileError as err:
        raise CatalogueError(str(err)) from None
    tasks = tuple(_resolve_task(t, listings, listings_path) for t in task_file.tasks)
    for column in task_file.holdout:
        if column not in listings.columns:
            raise CatalogueError(f"{root / 'tasks.yaml'}: hold-out column {column!r} is not in {listings_path.name} "
                                 f"(columns: {_columns(listings)})")

    report = CatalogueReport()
    photos, photos_source = _load_photos(root, listings, report, check_files)
    listings, empty = _drop_empty_listings(listings, photos)
    report.empty_listings.extend(empty)
    if listings.empty:
        raise CatalogueError(f"{root}: no listing has a usable photo ({report.summary()})")
    fingerprint = _fingerprint([listings_path, root / "tasks.yaml", photos_source], photos)
    return Catalogue(root=root, listings=listings, photos=photos, tasks=tasks, holdout=task_file.holdout,
                     report=report, fingerprint=fingerprint)


def _find_table(root: Path, stem: str, required: bool) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = root / f"{stem}{suffix}"
        if path.is_file():
            return path
    if required:
        raise CatalogueError(f"{root}: no {stem}.csv or {stem}.parquet found")
    return None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype={"listing_id": str}, keep_default_na=True)
    except Exception as err:  # pandas raises many kinds for malformed files
        raise CatalogueError(f"{path}: cannot read table: {err}") from None
    if "listing_id" in table.columns:
        table["listing_id"] = table["listing_id"].astype(str).str.strip()
    return table


def _columns(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns))


def _rows(mask: np.ndarray | pd.Series, table: pd.DataFrame, column: str) -> str:
    """'row 3 (L001): 'x', ...' for the first offending rows; row numbers count data rows from 1."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = [f"row {p + 1} ({table['listing_id'].iloc[p]}): {table[column].iloc[p]!r}"
             for p in positions[:MAX_ROWS_IN_MESSAGE]]
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return "; ".join(shown) + more


def _validate_listings(listings: pd.DataFrame, path: Path) -> None:
    if "listing_id" not in listings.columns:
        raise CatalogueError(f"{path}: no 'listing_id' column (columns: {_columns(listings)})")
    if listings.empty:
        raise CatalogueError(f"{path}: the table has no rows")
    missing = listings["listing_id"].isin(["", "nan", "None"])
    if missing.any():
        raise CatalogueError(f"{path}: empty listing_id at {_rows(missing, listings, 'listing_id')}")
    duplicated = listings["listing_id"].duplicated(keep=False)
    if duplicated.any():
        raise CatalogueError(f"{path}: duplicate listing_id at {_rows(duplicated, listings, 'listing_id')}")


def _resolve_task(task: TaskSpec, listings: pd.DataFrame, path: Path) -> TaskSpec:
    """Check a task's column against the table and fix its classes (multiclass)."""
    where = f"{path}: task {task.name!r} (column {task.column!r}, {task.kind})"
    if task.column not in listings.columns:
        raise CatalogueError(f"{path}: task {task.name!r} names unknown column {task.column!r} "
                             f"(columns: {_columns(listings)})")
    values = listings[task.column]
    present = values.notna()
    if not present.any():
        raise CatalogueError(f"{where}: every value is missing")
    if task.kind == "regression":
        numeric = pd.to_numeric(values, errors="coerce")
        bad = present & (numeric.isna() | ~np.isfinite(numeric.fillna(0)))
        if bad.any():
            raise CatalogueError(f"{where}: non-numeric values at {_rows(bad, listings, task.column)}")
        return task
    if task.kind == "binary":
        numeric = pd.to_numeric(values.map(_as_binary_number, na_action="ignore"), errors="coerce")
        bad = present & ~numeric.isin([0, 1])
        if bad.any():
            raise CatalogueError(f"{where}: binary values must be 0/1 or true/false, got {_rows(bad, listings, task.column)}")
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
                             f"at {_rows(unknown, listings, task.column)}")
    return task


def _as_binary_number(value: object) -> object:
    if isinstance(value, str):
        return {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0}.get(value.strip().lower(), value)
    if isinstance(value, bool | np.bool_):
        return int(value)
    return value


def _load_photos(root: Path, listings: pd.DataFrame, report: CatalogueReport,
                 check_files: bool) -> tuple[pd.DataFrame, Path]:
    table_path = _find_table(root, "photos", required=False)
    if table_path is not None:
        photos = _read_table(table_path)
        for column in ("listing_id", "path"):
            if column not in photos.columns:
                raise CatalogueError(f"{table_path}: no {column!r} column (columns: {_columns(photos)})")
        photos = photos[["listing_id", "path"]].copy()
        blank = photos["path"].isna()
        if blank.any():
            raise CatalogueError(f"{table_path}: empty path at {_rows(blank, photos, 'path')}")
        unknown = ~photos["listing_id"].isin(listings["listing_id"])
        if unknown.any():
            raise CatalogueError(f"{table_path}: photos of listings that are not in the listings table at "
                                 f"{_rows(unknown, photos, 'listing_id')}")
        photos["path"] = [str(p if Path(p).is_absolute() else root / p) for p in photos["path"].astype(str)]
        source = table_path
    else:
        folder = root / "photos"
        if not folder.is_dir():
            raise CatalogueError(f"{root}: no photos table (photos.csv / photos.parquet) and no photos/ folder")
        rows = [(listing_id, str(p)) for listing_id in listings["listing_id"]
                for p in sorted((folder / listing_id).glob("*")) if p.suffix.lower() in PHOTO_SUFFIXES]
        photos = pd.DataFrame(rows, columns=["listing_id", "path"])
        source = folder

    if check_files:
        exists = np.array([Path(p).is_file() for p in photos["path"]], dtype=bool)
        for listing_id, path in photos.loc[~exists, ["listing_id", "path"]].itertuples(index=False):
            report.skipped_photos.append({"listing_id": listing_id, "path": path, "reason": "file not found"})
        photos = photos[exists]
    # Group each listing's photos together in listing-table order (stable within a listing).
    order = {lid: i for i, lid in enumerate(listings["listing_id"])}
    photos = photos.assign(_order=photos["listing_id"].map(order)).sort_values("_order", kind="stable")
    return photos.drop(columns="_order").reset_index(drop=True), source


def _drop_empty_listings(listings: pd.DataFrame, photos: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    has_photo = listings["listing_id"].isin(set(photos["listing_id"]))
    empty = listings.loc[~has_photo, "listing_id"].tolist()
    return listings[has_photo].reset_index(drop=True), empty


def _fingerprint(paths: list[Path], photos: pd.DataFrame) -> str:
    """Content hash of the tables, the task file and every photo, so a rebuild knows what changed."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    for listing_id, path in photos[["listing_id", "path"]].itertuples(index=False):
        digest.update(f"{listing_id}\0{Path(path).name}\0".encode())
        digest.update(hashlib.blake2b(Path(path).read_bytes(), digest_size=16).digest())
    return digest.hexdigest()
