"""Short summaries of a run for its overview: the task table and headline validation metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from gallery_core.data.tasks import TaskSpec


@dataclass(frozen=True)
class HeadlineMetrics:
    n_tasks: int
    n_beating_baseline: int
    mean_accuracy: float | None  # classification tasks
    mean_baseline_accuracy: float | None
    mean_rmse_ratio: float | None  # regression tasks: RMSE / baseline RMSE, < 1 beats the baseline


def headline_metrics(metrics: pd.DataFrame) -> HeadlineMetrics:
    """From ``predict.metrics_table`` output."""
    if metrics.empty:
        return HeadlineMetrics(0, 0, None, None, None)
    classification = metrics[metrics["kind"] != "regression"]
    regression = metrics[metrics["kind"] == "regression"]
    baseline = regression["baseline"].where(regression["baseline"] > 0)
    return HeadlineMetrics(
        n_tasks=len(metrics),
        n_beating_baseline=int(metrics["beats_baseline"].sum()),
        mean_accuracy=float(classification["model"].mean()) if len(classification) else None,
        mean_baseline_accuracy=float(classification["baseline"].mean()) if len(classification) else None,
        mean_rmse_ratio=float((regression["model"] / baseline).mean()) if len(regression) else None,
    )


def task_table(tasks: Sequence[TaskSpec], metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per task: name, column, kind, number of classes, and its validation metric vs baseline."""
    table = pd.DataFrame([{"task": t.name, "column": t.column, "kind": t.kind,
                           "classes": len(t.classes) if t.classes else pd.NA} for t in tasks],
                         columns=["task", "column", "kind", "classes"])
    table["classes"] = table["classes"].astype("Int64")
    if not metrics.empty:
        table = table.merge(metrics[["task", "metric", "model", "baseline", "beats_baseline"]], on="task", how="left")
    return table
