"""A catalogue's photo files: where they are (a photos table or photos/<listing_id>/ folders), whether each is
inside the folders the user allowed, and whether its first bytes are a photo; what is skipped is reported
with its reason and row."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.data.decode import PHOTO_FORMATS, sniff_format
from gallery_core.data.tables import (
    CatalogueError,
    as_text,
    check_ids,
    find_table,
    read_table,
    require_column,
    rows_text,
)

logger = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Files beside the photos in a listing folder that are nobody's photo: skipped without a word.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
# Why a photo was skipped, as the report's summary counts them (each reason contains one of these).
SKIP_KINDS = ("outside the catalogue folder", "unsupported format", "file not found", "not a file",
              "cannot read", "cannot decode")


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


def photo_roots(root: Path, written: tuple[str, ...], task_path: Path) -> tuple[Path, ...]:
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


def load_photos(root: Path, listings: pd.DataFrame, photo_roots: tuple[Path, ...], report: CatalogueReport,
                 check_files: bool) -> tuple[pd.DataFrame, Path]:
    """The photos that may be read: listing_id, path, _row (the photos table's row, or None), grouped by
    listing in listing-table order. What is left out is added to the report."""
    locator = _PhotoLocator(photo_roots, check_files)
    table_path = find_table(root, "photos", required=False)
    if table_path is not None:
        photos = read_table(table_path, exact_columns=("listing_id", "path"), columns=("listing_id", "path"))
        for column in ("listing_id", "path"):
            require_column(photos, column, table_path)
        if photos.empty:
            raise CatalogueError(f"{table_path}: the table has no rows (a header only); it needs a row per photo "
                                 "(listing_id, path), or leave it out and use photos/<listing_id>/ folders")
        check_ids(photos, table_path)
        photos = photos[["listing_id", "path"]].copy()
        written = as_text(photos["path"]) if table_path.suffix == ".parquet" else photos["path"].astype(str)
        blank = (written.str.strip() == "").to_numpy()
        if blank.any():
            raise CatalogueError(f"{table_path}: column 'path' is empty at {rows_text(blank, photos, 'path')}")
        unknown = ~photos["listing_id"].isin(listings["listing_id"])
        if unknown.any():
            raise CatalogueError(f"{table_path}: photos of listings that are not in the listings table at "
                                 f"{rows_text(unknown, photos, 'listing_id')}")
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
    if sniff_format(data) in PHOTO_FORMATS:
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


def read_photos(photos: pd.DataFrame, report: CatalogueReport,
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
