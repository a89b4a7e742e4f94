"""Acting on a selection of listings (a map lasso, a retrieval result, the audit's suspects): a table to
download, a new catalogue folder that ``build`` accepts, and the selection's photos as a seed gallery.

Plain functions of a ``Run``; the app's ``ui.widgets.selection_actions`` puts buttons on them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gallery_core.app.explore import attribute_columns
from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import write_parquet
from gallery_core.data.catalogue import MIN_LISTINGS
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)

# Columns the build adds to a run's listing table; a catalogue written from a run leaves them out
# (the new build makes its own).
RUN_ONLY_COLUMNS = ("n_photos", "first_photo", "split")
TASK_FILE = "tasks.yaml"


def unique_ids(listing_ids: Sequence[object]) -> list[str]:
    """Listing ids as text (1 and "1" are the same id), duplicates dropped, in their first order. Through a
    pandas index rather than a Python loop: a map selection holds hundreds of thousands of ids (0.14 s a loop)."""
    index = pd.Index(listing_ids, dtype=object)
    if index.inferred_type != "string":  # numbers, or a mix: made text as str() makes it
        index = index.astype(str)
    return index.unique().tolist()


def selection_rows(run: Run, listing_ids: Sequence[str]) -> np.ndarray:
    """Row positions of the listings in the run's tables, in the given order (duplicates dropped).

    An id the run does not hold raises ``UsageError`` naming it: a selection always comes from the run."""
    ids = unique_ids(listing_ids)
    unknown = [i for i in ids if i not in run.row_of_listing]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UsageError(f"listing(s) {shown} not in run {run.name}")
    return np.array([run.row_of_listing[i] for i in ids], dtype=np.int64)


def photo_rows(run: Run, rows: np.ndarray) -> np.ndarray:
    """Row positions in the run's photo table of the listings at ``rows``, gallery by gallery."""
    first = run.listings["first_photo"].to_numpy()[rows]  # (S,)
    count = run.listings["n_photos"].to_numpy()[rows]  # (S,)
    # each listing's photos are consecutive rows: first, first + 1, ..., first + count - 1
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)  # (P,)
    return np.repeat(first, count) + offsets


def prediction_columns(tasks: Sequence[TaskSpec], predictions: pd.DataFrame) -> list[str]:
    """The prediction table's columns, task by task in the run's task order (every ``names`` column a task has)."""
    columns: list[str] = []
    for task in tasks:
        prefix = f"{task.name}__"
        columns += [c for c in predictions.columns if c.startswith(prefix) and c not in columns]
    return columns


def selection_table(run: Run, listing_ids: Sequence[str], extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per selected listing, in the given order: listing_id, the recorded attributes, each task's
    prediction/probability columns (gallery_core.names) and, if given, ``extra`` columns joined on listing_id
    (e.g. retrieval score and rank, audit suspicion). What the CSV download holds."""
    rows = selection_rows(run, listing_ids)
    listings = run.listings.iloc[rows].reset_index(drop=True)
    predictions = run.predictions.iloc[rows].reset_index(drop=True)
    attributes = [c for c in attribute_columns(listings) if c not in RUN_ONLY_COLUMNS]
    table = pd.concat([listings[["listing_id", *attributes]],
                       predictions[prediction_columns(run.tasks, predictions)]], axis=1)
    if extra is not None:
        if "listing_id" not in extra.columns:
            raise UsageError(f"extra columns {list(extra.columns)} need a 'listing_id' column to join on")
        extra = extra.drop_duplicates("listing_id").astype({"listing_id": str})
        # an extra column named like a listing column (e.g. the audit's copy of an attribute) gets "_extra"
        table = table.merge(extra, on="listing_id", how="left", validate="one_to_one", suffixes=("", "_extra"))
    return table


def selection_photo_paths(run: Run, listing_ids: Sequence[str], limit: int = 24) -> list[str]:
    """Photo files of the selection, for use as a seed gallery on the Retrieve page.

    Taken round-robin (every listing's first photo, then every second photo, ...), so that a seed gallery
    of a large selection spans many listings instead of the whole gallery of the first few."""
    rows = selection_rows(run, listing_ids)
    listings, paths = run.listings, run.photos["path"].to_numpy()
    first = listings["first_photo"].to_numpy()[rows]  # (S,)
    count = listings["n_photos"].to_numpy()[rows]  # (S,)
    picked: list[str] = []
    for k in range(int(count.max()) if len(rows) else 0):
        for start in first[count > k]:
            if len(picked) == limit:
                return picked
            picked.append(str(paths[start + k]))
    return picked


def write_catalogue_subset(run: Run, listing_ids: Sequence[str], out_dir: Path) -> Path:
    """Write the selection as a new catalogue folder in the same format the run was built from (listings table,
    photos table with absolute paths to the original photo files -- referenced, not copied -- and tasks.yaml), that
    `gallery-core build --catalogue out_dir` accepts. Refuses to overwrite a non-empty folder (UsageError naming it).
    Written atomically (a staging folder renamed into place). Returns out_dir.

    The tables are Parquet (types and ids exactly as the run holds them). ``tasks.yaml`` lists the run's tasks
    with their classes fixed (a selection may lack some classes) and its hold-out columns, and allows the
    folders the photos are in (``photo_root``), since they lie outside the new folder. A task with no recorded
    value in the selection is left out (the build refuses such a task), with a warning."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir}: already exists and is not an empty folder; choose a new folder name")
    rows = selection_rows(run, listing_ids)
    if len(rows) < MIN_LISTINGS:
        raise UsageError(f"a catalogue needs at least {MIN_LISTINGS} listings to build from; "
                         f"the selection has {len(rows)}")
    listings = run.listings.iloc[rows].reset_index(drop=True)
    photos = run.photos.iloc[photo_rows(run, rows)]
    photo_table = pd.DataFrame({"listing_id": photos["listing_id"].to_numpy(),
                                "path": [str(Path(p).absolute()) for p in photos["path"]]})
    tasks = [t for t in run.tasks if listings[t.column].notna().any()]
    for task in [t for t in run.tasks if t not in tasks]:
        logger.warning(f"task {task.name!r} left out of {out_dir / TASK_FILE}: no listing of the selection "
                       f"records {task.column!r}")
    if not tasks:
        raise UsageError("no task has a recorded value in the selection, so the catalogue would have nothing to train on")
    task_file = {"tasks": [_task_entry(t) for t in tasks], "holdout": list(run.holdout),
                 "photo_root": _photo_folders(photo_table["path"])}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        write_parquet(staging / "listings.parquet", listings.drop(columns=list(RUN_ONLY_COLUMNS), errors="ignore"))
        write_parquet(staging / "photos.parquet", photo_table)
        (staging / TASK_FILE).write_text(yaml.safe_dump(task_file, sort_keys=False, allow_unicode=True))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes the folder private
        try:
            os.rename(staging, out_dir)  # replaces an empty folder; refuses a non-empty one
        except OSError as err:
            raise UsageError(f"{out_dir}: cannot write the catalogue there ({err.strerror}); "
                             "choose a new folder name") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(f"catalogue of {len(listings)} listings, {len(photo_table)} photos written to {out_dir}")
    return out_dir


def _task_entry(task: TaskSpec) -> dict:
    entry: dict = {"name": task.name, "column": task.column, "kind": task.kind}
    if task.classes is not None:
        entry["classes"] = list(task.classes)
    return entry


def _photo_folders(paths: pd.Series) -> list[str]:
    """Folders to allow as ``photo_root``: the one folder that holds every photo (e.g. the old catalogue's
    photos/), else each photo folder. Real locations, since the catalogue check resolves symlinks; one
    resolve per folder, not per photo."""
    folders = sorted({os.path.realpath(os.path.dirname(p)) for p in paths})
    common = os.path.commonpath(folders)
    return [common] if common != os.sep else folders  # never the whole disk


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
