"""Which tasks and which training rows the sections use: a hold-out column as a task, nested training
fractions, and a spread of training tasks over class balance. Shared by the hold-out, leave-tasks-out
and quality sections and by the benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gallery_core.data.tasks import TaskSpec, class_labels, encode_labels
from gallery_core.errors import UsageError
from gallery_core.evaluation.metrics import class_balance

MAX_HOLDOUT_CLASSES = 50


def holdout_task(listings: pd.DataFrame, column: str) -> TaskSpec:
    """A multiclass task over a hold-out column's recorded values (numbers sorted as numbers)."""
    if column not in listings.columns:
        raise UsageError(f"hold-out column {column!r} is not in the run's listings table")
    values = class_labels(listings[column]).dropna().unique().tolist()
    if len(values) < 2:
        raise UsageError(f"hold-out column {column!r} has fewer than 2 distinct values")
    if len(values) > MAX_HOLDOUT_CLASSES:
        raise UsageError(f"hold-out column {column!r} has {len(values)} distinct values; the hold-out evaluation "
                         f"treats the column as classes (at most {MAX_HOLDOUT_CLASSES})")
    try:
        classes = sorted(values, key=float)
    except ValueError:
        classes = sorted(values)
    return TaskSpec(name=column, column=column, kind="multiclass", classes=tuple(classes))


def nested_subsets(rows: np.ndarray, fractions: tuple[float, ...], seed: int) -> dict[float, np.ndarray]:
    """Each fraction's training rows; smaller fractions are subsets of larger ones (one seeded order),
    so a curve over fractions differs only by the data added."""
    order = np.random.default_rng(seed).permutation(np.asarray(rows))
    return {f: np.sort(order[:max(2, round(f * len(order)))]) for f in sorted(fractions)}


def default_single_task_tasks(tasks: tuple[TaskSpec, ...], listings: pd.DataFrame, is_val: np.ndarray,
                              n_binary: int) -> list[str]:
    """A cheap spread for Figures 5 and 6: ``n_binary`` binary tasks evenly over class balance (so the
    correlation has a range to work on), the multiclass task with the most classes (the paper's C1),
    and the first regression task."""
    binary = [t for t in tasks if t.kind == "binary"]
    chosen: list[str] = []
    if binary and n_binary > 0:
        balances = [class_balance(encode_labels(t, listings[t.column])[~is_val]) for t in binary]
        order = np.argsort(balances, kind="stable")
        picks = np.unique(np.round(np.linspace(0, len(order) - 1, min(n_binary, len(order)))).astype(int))
        chosen += [binary[order[i]].name for i in picks]
    multiclass = [t for t in tasks if t.kind == "multiclass"]
    if multiclass:
        chosen.append(max(multiclass, key=lambda t: t.output_dim).name)
    chosen += [t.name for t in tasks if t.kind == "regression"][:1]
    return chosen
