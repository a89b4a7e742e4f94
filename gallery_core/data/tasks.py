"""Task specs: which listing column each training task learns, and of what kind.

A task file (YAML) names the tasks and the hold-out columns that training must never see::

    tasks:
      - {column: sea_view, kind: binary}
      - {column: property_type, kind: multiclass}           # classes taken from the data
      - {column: size_bucket, kind: multiclass, classes: [xs, s, m, l, xl]}
      - {column: price, kind: regression}
    holdout: [star_rating]
    photo_root: /mnt/photos                                 # optional: see below

Photos are read only from inside the catalogue folder. ``photo_root`` (one folder or a list, relative to
the catalogue folder or absolute) names further folders photos may be read from; a photo whose
path resolves (symlinks included) anywhere else is skipped and listed in the catalogue report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from gallery_core.errors import UsageError

TaskKind = Literal["binary", "multiclass", "regression"]
TASK_KINDS: tuple[str, ...] = ("binary", "multiclass", "regression")


class TaskFileError(UsageError):
    """The task file is malformed; the message says where."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    column: str
    kind: TaskKind
    classes: tuple[str, ...] | None = None  # multiclass only; fixed once labels are known

    @property
    def output_dim(self) -> int:
        if self.kind == "multiclass":
            assert self.classes is not None, f"task {self.name!r} has no classes yet"
            return len(self.classes)
        return 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes) if self.classes is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        classes = data.get("classes")
        return cls(
            name=data["name"],
            column=data["column"],
            kind=data["kind"],
            classes=tuple(str(c) for c in classes) if classes is not None else None,
        )


@dataclass(frozen=True)
class TaskFile:
    tasks: tuple[TaskSpec, ...]
    holdout: tuple[str, ...]
    photo_roots: tuple[str, ...] = ()  # as written; the catalogue resolves them against its folder


def parse_task_file(path: str | Path) -> TaskFile:
    """Read and validate a task file's structure (columns are checked against the table later)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TaskFileError(f"{path}: task file not found") from None
    except yaml.YAMLError as err:
        raise TaskFileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or "tasks" not in raw:
        raise TaskFileError(f"{path}: expected a mapping with a 'tasks' list (and optional 'holdout')")
    unknown_keys = set(raw) - {"tasks", "holdout", "photo_root"}
    if unknown_keys:
        raise TaskFileError(f"{path}: unknown top-level keys {sorted(unknown_keys)}; expected 'tasks', 'holdout' "
                            "and optionally 'photo_root'")
    if not isinstance(raw["tasks"], list) or not raw["tasks"]:
        raise TaskFileError(f"{path}: 'tasks' must be a non-empty list")

    tasks: list[TaskSpec] = []
    for i, entry in enumerate(raw["tasks"], start=1):
        where = f"{path}: task #{i}"
        if not isinstance(entry, dict) or "column" not in entry or "kind" not in entry:
            raise TaskFileError(f"{where}: each task needs 'column' and 'kind', got {entry!r}")
        bad = set(entry) - {"name", "column", "kind", "classes"}
        if bad:
            raise TaskFileError(f"{where}: unknown keys {sorted(bad)}")
        kind = entry["kind"]
        if kind not in TASK_KINDS:
            raise TaskFileError(f"{where} ({entry['column']!r}): unknown kind {kind!r}; use one of {TASK_KINDS}")
        classes = entry.get("classes")
        if classes is not None:
            if kind != "multiclass":
                raise TaskFileError(f"{where} ({entry['column']!r}): 'classes' is only for multiclass tasks")
            if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
                raise TaskFileError(f"{where} ({entry['column']!r}): 'classes' must list >= 2 distinct values")
            classes = tuple(str(c) for c in classes)
        tasks.append(TaskSpec(name=str(entry.get("name", entry["column"])), column=str(entry["column"]),
                              kind=kind, classes=classes))

    names = [t.name for t in tasks]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TaskFileError(f"{path}: duplicate task names {duplicated}")
    holdout = raw.get("holdout") or []
    if not isinstance(holdout, list):
        raise TaskFileError(f"{path}: 'holdout' must be a list of column names")
    holdout = tuple(str(c) for c in holdout)
    overlap = sorted({t.column for t in tasks} & set(holdout))
    if overlap:
        raise TaskFileError(f"{path}: hold-out columns {overlap} are also training tasks; training must never see them")
    return TaskFile(tasks=tuple(tasks), holdout=holdout, photo_roots=_photo_roots(raw.get("photo_root"), path))


def _photo_roots(value: Any, path: Path) -> tuple[str, ...]:
    """``photo_root``: absent, one folder, or a list of folders (non-empty strings)."""
    if value is None:
        return ()
    roots = value if isinstance(value, list) else [value]
    if not roots or not all(isinstance(r, str) and r.strip() for r in roots):
        raise TaskFileError(f"{path}: 'photo_root' must be a folder or a list of folders, got {value!r}")
    return tuple(roots)


def class_labels(values: pd.Series) -> pd.Series:
    """Multiclass labels as strings (NaN stays NaN), so 3 and '3' are one class."""
    out = values.astype(object).where(values.notna())
    return out.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v), na_action="ignore")


def encode_labels(task: TaskSpec, values: pd.Series) -> np.ndarray:
    """Encode one task's column for training.

    Returns float32 for binary/regression (NaN = missing) and int64 class indices for multiclass
    (-1 = missing); the loss masks the missing entries out.
    """
    if task.kind == "multiclass":
        assert task.classes is not None
        lookup = {c: i for i, c in enumerate(task.classes)}
        labels = class_labels(values)
        return np.array([lookup[v] if isinstance(v, str) else -1 for v in labels], dtype=np.int64)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float32)


def observed_mask(task: TaskSpec, encoded: np.ndarray) -> np.ndarray:
    return encoded >= 0 if task.kind == "multiclass" else ~np.isnan(encoded)
