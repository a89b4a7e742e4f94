"""Is every artifact of a run present, intact and consistent with the others?

``check_run`` never raises for a broken run: it returns one row per expected file (present, size,
checksum as recorded, built from the files now present) and a list of problems in words, including
tables whose rows do not line up (listings vs embeddings vs map vs predictions, photos vs photo
embeddings). ``Run(verify=True)`` refuses such a run; this explains what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.names import build_command
from gallery_core.artifacts.store import MANIFEST, STEP_FILES, STEPS, ArtifactError, file_checksum, read_manifest


@dataclass
class RunCheck:
    files: pd.DataFrame  # step, file, present, bytes, checksum_ok, inputs_ok
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(root: str | Path, verify_checksums: bool = True) -> RunCheck:
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except ArtifactError as err:
        return RunCheck(pd.DataFrame(), [str(err)])
    if manifest is None:
        return RunCheck(pd.DataFrame(), [f"{root}: no {MANIFEST}; build the run with `{build_command(root)}`"])
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    recorded_files = manifest.get("files", {})
    for step in STEPS:
        record = manifest.get("steps", {}).get(step)
        if record is None:
            problems.append(f"step {step!r} has not been run")
        inputs_ok = record is not None and all(
            recorded_files.get(name, {}).get("checksum") == checksum for name, checksum in record.get("inputs", {}).items())
        if record is not None and not inputs_ok:
            problems.append(f"step {step!r} was built from different input files than those present; rebuild it")
        for file_name in STEP_FILES[step].values():
            path = root / file_name
            present = path.is_file()
            expected = recorded_files.get(file_name)
            checksum_ok: bool | None = None
            if present and expected is not None and verify_checksums:
                checksum_ok = file_checksum(path) == expected["checksum"]
                if not checksum_ok:
                    problems.append(f"{file_name}: checksum differs from the manifest (changed or from another run)")
            if record is not None and not present:
                problems.append(f"{file_name}: missing (written by step {step!r})")
            rows.append({"step": step, "file": file_name, "present": present,
                         "bytes": path.stat().st_size if present else 0,
                         "checksum_ok": checksum_ok, "inputs_ok": inputs_ok if record is not None else None,
                         "built_in_s": record.get("seconds") if record else None,
                         "finished_at": record.get("finished_at") if record else None})
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
