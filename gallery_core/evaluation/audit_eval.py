"""How well the attribute audit finds wrong labels, where they are known.

The demo catalogue flips about 3% of its binary flags and lists them in ``truth/flipped_flags.csv``
(listing_id, column, recorded, true); training never reads it. The audit's ranking
(``gallery_core.app.audit.suspicion_table``: 1 - out-of-fold P(recorded value)) is scored against it:
precision and recall of its top k for each binary task, and over all binary tasks pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.app.audit import suspicion_table
from gallery_core.data.tasks import TaskSpec, encode_labels, observed_mask
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import average_precision, precision_recall_at_k

FLIPPED_FILE = "flipped_flags.csv"


def load_flipped(path: str | Path) -> pd.DataFrame:
    """The known wrong labels: one row per (listing_id, column)."""
    path = Path(path)
    table = pd.read_csv(path, dtype={"listing_id": str})
    missing = {"listing_id", "column"} - set(table.columns)
    if missing:
        raise UsageError(f"{path}: needs columns listing_id and column (missing {sorted(missing)})")
    return table


def ranking_scores(ranked_ids: pd.Series, positives: set[str], n_positive: int, ks: tuple[int, ...],
                   ) -> dict[str, Any]:
    """Precision/recall at each k, R-precision (k = number of positives) and average precision."""
    hits = ranked_ids.isin(positives).to_numpy()
    at_k = [precision_recall_at_k(hits, k, n_positive) for k in ks]
    r_precision = precision_recall_at_k(hits, n_positive, n_positive)["precision"] if n_positive else float("nan")
    return {"n_ranked": len(hits), "n_flipped": n_positive,
            "base_rate": n_positive / len(hits) if len(hits) else float("nan"),
            "at_k": at_k, "r_precision": r_precision, "average_precision": average_precision(hits, n_positive)}


def _labelled_ids(task: TaskSpec, listings: pd.DataFrame) -> set[str]:
    labels = encode_labels(task, listings[task.column])
    return set(listings["listing_id"].to_numpy()[observed_mask(task, labels)])


def evaluate_audit(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    truth_dir = Path(config.truth_dir) if config.truth_dir else Path(run.manifest["catalogue"]["root"]) / "truth"
    path = truth_dir / FLIPPED_FILE
    if not path.is_file():
        return {"skipped": f"no known wrong labels ({path} not found): the audit can only be scored where "
                           "they are known, e.g. on the demo catalogue"}
    flipped = load_flipped(path)
    binary = [t for t in run.tasks if t.kind == "binary"]
    per_task, pooled = {}, []
    for task in binary:
        table = suspicion_table(task, run.listings, run.predictions)
        positives = set(flipped.loc[flipped["column"] == task.column, "listing_id"]) & _labelled_ids(task, run.listings)
        per_task[task.name] = ranking_scores(table["listing_id"], positives, len(positives), config.audit_ks)
        pooled.append(pd.DataFrame({"key": task.name + "\0" + table["listing_id"],
                                    "suspicion": table["suspicion"].to_numpy()}))
        pooled[-1]["positive"] = table["listing_id"].isin(positives).to_numpy()
    if not per_task:
        return {"skipped": "the run has no binary tasks"}
    everything = pd.concat(pooled).sort_values("suspicion", ascending=False, kind="stable")
    n_positive = int(sum(s["n_flipped"] for s in per_task.values()))
    positive_keys = set(everything.loc[everything["positive"], "key"])
    pooled_ks = tuple(sorted({*config.audit_ks, *(k * len(per_task) for k in config.audit_ks)}))
    overall = ranking_scores(everything["key"], positive_keys, n_positive, pooled_ks)
    return {"truth": str(path), "ranking": "gallery_core.app.audit.suspicion_table (1 - out-of-fold P(recorded))",
            "ks": list(config.audit_ks), "tasks": per_task, "pooled": overall,
            "mean_r_precision": float(np.nanmean([s["r_precision"] for s in per_task.values()]))}
