"""Is every artifact of a run present, intact and consistent with the others?

``check_run`` never raises for a broken run: it returns one row per expected file (present, size,
checksum as recorded, built from the files now present) and a list of problems in words, including
tables whose rows do not line up (listings vs embeddings vs map vs predictions, photos vs photo
embeddings). ``Run(verify=True)`` refuses such a run; this explains what is wrong.

By default the check is "quick" (``store.VERIFY_MODES``): sizes, and checksums through the run's checksum
cache, so a server start does not re-hash gigabytes of embeddings that the build (or an earlier check)
already hashed; ``verify_checksums="full"`` (or True) hashes every file, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.store import (
    MANIFEST,
    STEP_FILES,
    STEPS,
    ArtifactError,
    check_step,
    checksum_reader,
    read_manifest,
)
from gallery_core.names import build_command


@dataclass
class RunCheck:
    files: pd.DataFrame  # step, file, present, bytes, checksum_ok, inputs_ok
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(root: str | Path, verify_checksums: bool | str = "quick") -> RunCheck:
    """Every problem with the run at ``root``; ``verify_checksums`` is a ``store.VERIFY_MODES`` name or a bool
    (True = "full": hash every file)."""
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except ArtifactError as err:
        return RunCheck(pd.DataFrame(), [str(err)])
    if manifest is None:
        return RunCheck(pd.DataFrame(), [f"{root}: no {MANIFEST}; build the run with `{build_command(root)}`"])
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    checksums = checksum_reader(root, verify_checksums)
    try:
        for step in STEPS:
            check = check_step(root, manifest, step, checksums is not None, checksums)
            problems.extend(check.problems)
            record = manifest.get("steps", {}).get(step) or {}
            rows.extend({"step": step, **row, "inputs_ok": check.inputs_ok, "built_in_s": record.get("seconds"),
                         "finished_at": record.get("finished_at")} for row in check.files)
    finally:
        if checksums is not None:
            checksums.save()
    problems.extend(_alignment_problems(root))
    return RunCheck(pd.DataFrame(rows), problems)


def _alignment_problems(root: Path) -> list[str]:
    """Row counts and listing ids of the per-listing tables must match, and photos must match their embeddings."""
    problems: list[str] = []
    files = {name: root / file for step in STEP_FILES.values() for name, file in step.items()}
    try:
        if not files["listing_table"].is_file():
            return problems
        listing_ids = pd.read_parquet(files["listing_table"], columns=["listing_id"])["listing_id"].to_numpy()
        for name in ("umap", "predictions"):
            if files[name].is_file():
                other = pd.read_parquet(files[name], columns=["listing_id"])["listing_id"].to_numpy()
                if len(other) != len(listing_ids) or not np.array_equal(other, listing_ids):
                    problems.append(f"{files[name].name}: its listings do not match listings.parquet row by row")
        if files["listing_embeddings"].is_file():
            n = np.load(files["listing_embeddings"], mmap_mode="r").shape[0]
            if n != len(listing_ids):
                problems.append(f"listing_embeddings.npy has {n} rows but listings.parquet has {len(listing_ids)}")
        if files["photo_table"].is_file() and files["photo_embeddings"].is_file():
            n_photos = len(pd.read_parquet(files["photo_table"], columns=["photo_index"]))
            n = np.load(files["photo_embeddings"], mmap_mode="r").shape[0]
            if n != n_photos:
                problems.append(f"photo_embeddings.npy has {n} rows but photos.parquet has {n_photos}")
    except (OSError, ValueError, KeyError) as err:
        problems.append(f"cannot read the run's tables to compare them: {type(err).__name__}: {err}")
    return problems
