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

import csv
import hashlib
import io
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.data.tasks import TaskFileError, TaskSpec, class_labels, parse_task_file
from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_ROWS_IN_MESSAGE = 5
# Training learns from at least 2 listings and validates on at least 1 (training.data.split_listings).
MIN_LISTINGS = 3
# What other tools write for an empty cell. As listing ids they are kept as written, with a warning.
MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "nan", "null", "none"})
# Files beside the photos in a listing folder that are nobody's photo: skipped without a word.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
# The leading bytes of the formats photos come in; any other file is asked of PIL (a header read).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
# Why a photo was skipped, as the report's summary counts them (each reason contains one of these).
SKIP_KINDS = ("outside the catalogue folder", "unsupported format", "file not found", "not a file",
              "cannot read", "cannot decode")


class CatalogueError(UsageError):
    """The catalogue cannot be used as it is; the message says what and where."""


@dataclass
class CatalogueReport:
    """What was skipped while loading and decoding, and why."""

    # {listing_id, path, reason} and, for a photos table's rows, "row" (data rows counted from 1)
    skipped_photos: list[dict[str, str | int]] = field(default_factory=list)
    empty_listings: list[str] = field(default_factory=list)  # listings left with no usable photo

    def to_dict(self) -> dict:
        return {
            "n_skipped_photos": len(self.skipped_photos),
            "n_empty_listings": len(self.empty_listings),
            "skipped_photos": self.skipped_photos,
            "empty_listings": self.empty_listings,
        }

    def skip_counts(self) -> dict[str, int]:
        """Skipped photos by kind of reason (one of ``SKIP_KINDS``), most frequent first."""
        kinds = Counter(next((k for k in SKIP_KINDS if k in str(p["reason"])), str(p["reason"]))
                        for p in self.skipped_photos)
        return dict(kinds.most_common())

    def summary(self) -> str:
        """One line counting everything ``to_dict`` lists."""
        counts = self.skip_counts()
        detail = f" ({', '.join(f'{kind}: {n}' for kind, n in counts.items())})" if counts else ""
        return (f"{len(self.skipped_photos)} photo(s) skipped{detail}, "
                f"{len(self.empty_listings)} listing(s) without any usable photo")

    def examples(self, k: int = 3) -> str:
        """The first ``k`` skipped photos with their reasons, for an error message."""
        shown = []
        for p in self.skipped_photos[:k]:
            where = f"{p['path']} (row {p['row']})" if "row" in p else str(p["path"])
            reason = str(p["reason"])
            shown.append(reason.replace(str(p["path"]), where) if str(p["path"]) in reason else f"{where}: {reason}")
        more = f"; and {len(self.skipped_photos) - k} more" if len(self.skipped_photos) > k else ""
        return "; ".join(shown) + more


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
    listings_path = _find_table(root, "listings", required=True)
    listings = _read_table(listings_path, exact_columns=("listing_id",))
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
                                 f"(columns: {_columns(listings)})")
    photo_roots = _photo_roots(root, task_file.photo_roots, task_path)

    report = CatalogueReport()
    photos, photos_source = _load_photos(root, listings, photo_roots, report, check_files)
    photos, digests = _read_photos(photos, report, check_files)
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


def _find_table(root: Path, stem: str, required: bool) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = root / f"{stem}{suffix}"
        if path.is_file():
            return path
    if required:
        raise CatalogueError(f"{root}: no {stem}.csv or {stem}.parquet found")
    return None


def _read_table(path: Path, exact_columns: tuple[str, ...]) -> pd.DataFrame:
    """A table, with ``exact_columns`` as text exactly as written (a blank cell is '', 'NA' is 'NA').

    Other CSV columns follow pandas' defaults (empty cells and 'NA' are missing values)."""
    if path.suffix == ".parquet":
        try:
            table = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many kinds for malformed files
            raise CatalogueError(f"{path}: cannot read table: {err}") from None
        for column in exact_columns:
            if column in table.columns:
                table[column] = _as_text(table[column])
        return table

    text = _read_text(path)
    _check_delimiter(path, text.split("\n", 1)[0].rstrip("\r"))
    try:
        table = pd.read_csv(io.StringIO(text), dtype={"listing_id": str}, keep_default_na=True)
        exact = [c for c in exact_columns if c in table.columns]
        if exact:
            written = pd.read_csv(io.StringIO(text), usecols=exact, dtype=str, keep_default_na=False)
            for column in exact:
                table[column] = written[column]
    except pd.errors.EmptyDataError:
        raise CatalogueError(f"{path}: the file is empty (not even a header line)") from None
    except Exception as err:  # pandas raises many kinds for malformed files
        raise CatalogueError(f"{path}: cannot read table: {err}") from None
    return table


def _read_text(path: Path) -> str:
    """A CSV file's text (UTF-8, with or without a byte-order mark); other encodings are refused by line."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read table: {err}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")]), [])
        fields = next(csv.reader([data[line_start:err.start].decode("latin-1")]), [""])
        column = header[len(fields) - 1] if 0 < len(fields) <= len(header) else None
        where = ("the header line" if line == 1 else f"row {line - 1}") + \
            (f", column {column!r}" if column is not None and line > 1 else "")
        raise CatalogueError(f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at line {line} ({where}); "
                             "save the table as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)") from None


def _check_delimiter(path: Path, header: str) -> None:
    """Refuse a CSV whose header line is cut by semicolons or tabs instead of commas."""
    if "," in header:
        return
    for separator, name in ((";", "semicolon"), ("\t", "tab")):
        if separator in header:
            raise CatalogueError(f"{path}: looks {name}-separated (header line {header[:120]!r}); tables are read "
                                 "as comma-separated CSV: save it with ',' between columns and '.' as the "
                                 "decimal point")


def _as_text(values: pd.Series) -> pd.Series:
    """Ids as text: numbers without a trailing '.0' (a Parquet int column with gaps is float), missing as ''."""
    def one(value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)

    return pd.Series([one(v) for v in values], index=values.index, dtype=str)


def _columns(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns))


def _rows(mask: np.ndarray | pd.Series, table: pd.DataFrame, column: str) -> str:
    """'row 3 (L001): 'x', ...' for the first offending rows; row numbers count data rows from 1."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = [f"row {p + 1} ({table['listing_id'].iloc[p]}): {table[column].iloc[p]!r}"
             for p in positions[:MAX_ROWS_IN_MESSAGE]]
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return "; ".join(shown) + more


def _values_at(mask: np.ndarray | pd.Series, table: pd.DataFrame, column: str) -> str:
    """'row 3: ' x'; row 7: 'y'' for the first offending rows (data rows counted from 1)."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = [f"row {p + 1}: {table[column].iloc[p]!r}" for p in positions[:MAX_ROWS_IN_MESSAGE]]
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return "; ".join(shown) + more


def _row_numbers(mask: np.ndarray | pd.Series) -> str:
    positions = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(map(str, positions[:MAX_ROWS_IN_MESSAGE]))
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return ("row " if len(positions) == 1 else "rows ") + shown + more


def _require_column(table: pd.DataFrame, column: str, path: Path) -> None:
    if column in table.columns:
        return
    spaced = [c for c in map(str, table.columns) if c.strip() == column]
    hint = (f"; {spaced[0]!r} has spaces around its name (was it written with ', ' between columns?)"
            if spaced else "")
    if len(table.columns) == 1:  # one column whose name holds the others: another delimiter
        for separator, name in ((";", "semicolon"), ("\t", "tab")):
            if separator in str(table.columns[0]):
                hint = f"; it looks {name}-separated: save it with ',' between columns"
    raise CatalogueError(f"{path}: no {column!r} column (columns: {_columns(table)}){hint}")


def _check_ids(table: pd.DataFrame, path: Path) -> None:
    """Blank ids and ids with spaces around them are refused; ids that read like a missing value are
    kept (they are what the file says) with a warning."""
    ids = table["listing_id"]
    stripped = ids.str.strip()
    blank = (stripped == "").to_numpy()
    if blank.any():
        raise CatalogueError(f"{path}: column 'listing_id' is blank at {_row_numbers(blank)}; every row needs "
                             "a listing id")
    # Kept exactly as written, ' L1' and 'L1' would be two listings (and a folder name that some systems
    # trim): spaces around an id are refused rather than trimmed silently into another id.
    spaced = (ids != stripped).to_numpy()
    if spaced.any():
        hint = (" (was the table written with ', ' between columns?)" if spaced.mean() > 0.5 else "")
        raise CatalogueError(f"{path}: column 'listing_id' has spaces around the id at {_values_at(spaced, table, 'listing_id')}"
                             f"; ids are used exactly as written, so remove the spaces{hint}")
    markers = ids.str.lower().isin(MISSING_MARKERS).to_numpy()
    if markers.any():
        logger.warning(f"{path}: column 'listing_id' at {_values_at(markers, table, 'listing_id')}: taken as the "
                       "listing id written there, not as a missing value")


def _validate_listings(listings: pd.DataFrame, path: Path) -> None:
    _require_column(listings, "listing_id", path)
    if listings.empty:
        raise CatalogueError(f"{path}: the table has no rows")
    _check_ids(listings, path)
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


def _photo_roots(root: Path, written: tuple[str, ...], task_path: Path) -> tuple[Path, ...]:
    """The folders photos may be read from: the catalogue folder and the task file's ``photo_root``s."""
    roots = [root]
    for folder in written:
        resolved = (root / Path(folder).expanduser()).resolve()
        if not resolved.is_dir():
            raise CatalogueError(f"{task_path}: photo_root {folder!r} is not a folder (it resolves to {resolved})")
        roots.append(resolved)
    return tuple(roots)


def _inside(path: Path, prefixes: tuple[str, ...]) -> bool:
    text = str(path)
    return any(text == p.rstrip(os.sep) or text.startswith(p) for p in prefixes)


class _PhotoLocator:
    """Where a listed photo really is (symlinks resolved) and whether it may be read."""

    def __init__(self, roots: tuple[Path, ...], check_files: bool):
        self.roots = roots
        self.prefixes = tuple(str(r).rstrip(os.sep) + os.sep for r in roots)
        self.check_files = check_files
        self._parents: dict[Path, Path] = {}

    def outside_reason(self, real: Path) -> str:
        allowed = f"{self.roots[0]}" + (f" or the photo_root folders ({', '.join(map(str, self.roots[1:]))})"
                                         if len(self.roots) > 1 else "")
        return (f"outside the catalogue folder: it resolves to {real}, and photos are read only from {allowed}; "
                "add its folder to photo_root: in tasks.yaml to allow it")

    def problem(self, path: Path) -> str | None:
        """None when the photo may be read, else why not."""
        try:
            parent = self._parents.get(path.parent)
            if parent is None:  # one resolve per folder, not per photo
                parent = self._parents[path.parent] = path.parent.resolve()
            candidate = parent / path.name
            try:
                status: os.stat_result | None = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                status = None
            real = candidate
            if path.name in ("", ".", "..") or (status is not None and stat.S_ISLNK(status.st_mode)):
                real = path.resolve()
                status = os.stat(real) if real.exists() else None
        except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
            return f"cannot read the file ({type(err).__name__}: {err})"
        if not _inside(real, self.prefixes):
            return self.outside_reason(real)
        if not self.check_files:
            return None
        if status is None:
            return "file not found"
        if not stat.S_ISREG(status.st_mode):
            return "not a file (a folder or a device)"
        return None


def _load_photos(root: Path, listings: pd.DataFrame, photo_roots: tuple[Path, ...], report: CatalogueReport,
                 check_files: bool) -> tuple[pd.DataFrame, Path]:
    """The photos that may be read: listing_id, path, _row (the photos table's row, or None), grouped by
    listing in listing-table order. What is left out is added to the report."""
    locator = _PhotoLocator(photo_roots, check_files)
    table_path = _find_table(root, "photos", required=False)
    if table_path is not None:
        photos = _read_table(table_path, exact_columns=("listing_id", "path"))
        for column in ("listing_id", "path"):
            _require_column(photos, column, table_path)
        if photos.empty:
            raise CatalogueError(f"{table_path}: the table has no rows (a header only); it needs a row per photo "
                                 "(listing_id, path), or leave it out and use photos/<listing_id>/ folders")
        _check_ids(photos, table_path)
        photos = photos[["listing_id", "path"]].copy()
        written = _as_text(photos["path"]) if table_path.suffix == ".parquet" else photos["path"].astype(str)
        blank = (written.str.strip() == "").to_numpy()
        if blank.any():
            raise CatalogueError(f"{table_path}: column 'path' is empty at {_rows(blank, photos, 'path')}")
        unknown = ~photos["listing_id"].isin(listings["listing_id"])
        if unknown.any():
            raise CatalogueError(f"{table_path}: photos of listings that are not in the listings table at "
                                 f"{_rows(unknown, photos, 'listing_id')}")
        photos["path"] = [str(p if Path(p).is_absolute() else root / p) for p in written]
        photos["_row"] = np.arange(1, len(photos) + 1)
        source = table_path
    else:
        folder = root / "photos"
        if not folder.is_dir():
            raise CatalogueError(f"{root}: no photos table (photos.csv / photos.parquet) and no photos/ folder")
        rows = []
        for listing_id in listings["listing_id"]:
            listing_folder = folder / listing_id
            if not _inside(listing_folder.resolve(), locator.prefixes):  # e.g. an id '../x' or '/etc'
                report.skipped_photos.append({"listing_id": listing_id, "path": str(listing_folder),
                                              "reason": locator.outside_reason(listing_folder.resolve())})
                continue
            for p in sorted(listing_folder.glob("*")):
                if p.suffix.lower() in PHOTO_SUFFIXES:
                    rows.append((listing_id, str(p), None))
                elif p.name.startswith(".") or p.name.lower() in IGNORED_FILES:
                    continue
                elif p.is_dir():
                    report.skipped_photos.append({"listing_id": listing_id, "path": str(p), "reason": (
                        "not a file (a folder): photos are read from photos/<listing_id>/ itself, not its subfolders")})
                else:
                    report.skipped_photos.append({"listing_id": listing_id, "path": str(p), "reason": (
                        f"unsupported format {p.suffix.lower() or '(no suffix)'!r}: the photos/ folders are read for "
                        f"{', '.join(PHOTO_SUFFIXES)} files; convert it to JPEG or PNG")})
        photos = pd.DataFrame(rows, columns=["listing_id", "path", "_row"])
        source = folder

    problems = [locator.problem(Path(p)) for p in photos["path"]]
    for (listing_id, path, row), problem in zip(photos[["listing_id", "path", "_row"]].itertuples(index=False),
                                                problems, strict=True):
        if problem is not None:
            report.skipped_photos.append({"listing_id": listing_id, "path": path, "reason": problem}
                                         | ({"row": int(row)} if row is not None and pd.notna(row) else {}))
    photos = photos[np.array([p is None for p in problems], dtype=bool)]
    # Group each listing's photos together in listing-table order (stable within a listing).
    order = {lid: i for i, lid in enumerate(listings["listing_id"])}
    photos = photos.assign(_order=photos["listing_id"].map(order)).sort_values("_order", kind="stable")
    return photos.drop(columns="_order").reset_index(drop=True), source


def _image_problem(data: bytes) -> str | None:
    """None when the bytes start like an image, else why they cannot be one (only the header is read)."""
    if not data:
        return "cannot decode image: the file is empty"
    if data.startswith(IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.size  # noqa: B018 - the header is parsed on open
    except UnidentifiedImageError:
        return "cannot decode image: not an image format PIL reads"
    except Exception as err:  # PIL raises many kinds for malformed headers
        return f"cannot decode image ({type(err).__name__}: {err})"
    return None


def _read_photos(photos: pd.DataFrame, report: CatalogueReport,
                 check_files: bool) -> tuple[pd.DataFrame, list[bytes]]:
    """Read every photo once: those that are not images are skipped (reported); the others' content
    digests go into the fingerprint. Returns the photos (listing_id, path) and their digests."""
    keep, digests = [], []
    for listing_id, path, row in photos[["listing_id", "path", "_row"]].itertuples(index=False):
        try:
            data = Path(path).read_bytes()
            problem = _image_problem(data) if check_files else None
        except OSError as err:
            if not check_files:
                raise CatalogueError(f"{path}: cannot read photo ({type(err).__name__}: {err})") from None
            problem = f"cannot read the file ({type(err).__name__}: {err.strerror or err})"
        keep.append(problem is None)
        if problem is None:
            digests.append(hashlib.blake2b(data, digest_size=16).digest())
        else:
            report.skipped_photos.append({"listing_id": listing_id, "path": path, "reason": problem}
                                         | ({"row": int(row)} if row is not None and pd.notna(row) else {}))
    photos = photos[np.array(keep, dtype=bool)].drop(columns="_row").reset_index(drop=True)
    return photos, digests


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
