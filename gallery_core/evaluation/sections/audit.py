"""The audit against known wrong labels (report section 8): how well the attribute audit finds them.

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
from gallery_core.evaluation.report import COLOURS, bullets, fmt, save_figure, subplots, table
from gallery_core.evaluation.sections.base import Section

FIGURE = "audit.png"

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


def audit_verdicts(a: dict[str, Any]) -> list[str]:
    p = a["pooled"]
    first = p["at_k"][0]
    lift = first["precision"] / p["base_rate"] if p["base_rate"] else float("nan")
    return [f"Audit: over all binary tasks, {first['hits']} of the {first['k']} most suspicious labels are known flips "
            f"(precision {first['precision']:.2f}, {lift:.1f}x the base rate {p['base_rate']:.3f}); R-precision "
            f"{p['r_precision']:.2f}, average precision {p['average_precision']:.2f}."]


def audit_markdown(a: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    ks = a["ks"]
    lines = [f"Ranking: {a['ranking']}. Truth: `{Path(a['truth']).name}` (labels flipped on purpose; training "
             "never reads it). Precision@k = share of the k most suspicious labels that are flips; recall@k = "
             "share of the task's flips found in its top k.", ""]
    header = ["task", "flipped", "base rate", *[f"P@{k}" for k in ks], *[f"R@{k}" for k in ks], "R-precision", "AP"]
    rows = []
    for name, s in [*a["tasks"].items(), ("**all binary, pooled**", a["pooled"])]:
        at = {x["k"]: x for x in s["at_k"]}
        rows.append([name, str(s["n_flipped"]), fmt(s["base_rate"]), *[fmt(at[k]["precision"], 2) for k in ks],
                     *[fmt(at[k]["recall"], 2) for k in ks], fmt(s["r_precision"], 2), fmt(s["average_precision"], 2)])
    lines += table(header, rows)
    lines += [f"![Audit precision and recall]({FIGURE})", ""]
    return [lines + bullets(verdicts)]


def audit_figure(a: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    tasks = list(a["tasks"])
    k0 = a["ks"][0]
    fig, ax = subplots(figsize=(8, 4.2))
    x = np.arange(len(tasks))
    precision = [a["tasks"][t]["at_k"][0]["precision"] for t in tasks]
    recall = [a["tasks"][t]["at_k"][-1]["recall"] for t in tasks]
    ax.bar(x - 0.2, precision, 0.4, label=f"precision@{k0}", color=COLOURS["mtl"])
    ax.bar(x + 0.2, recall, 0.4, label=f"recall@{a['ks'][-1]}", color=COLOURS["end_to_end"])
    ax.scatter(x, [a["tasks"][t]["base_rate"] for t in tasks], marker="_", s=300, color="black",
               label="base rate (share flipped)", zorder=3)
    ax.set_xticks(x, tasks, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("Audit ranking against the known flipped flags")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return {"audit": save_figure(fig, out_dir / FIGURE)}


SECTION = Section(name="audit", titles=("Audit against known wrong labels",), run=evaluate_audit,
                  verdicts=audit_verdicts, markdown=audit_markdown, figures=audit_figure, figure_files=(FIGURE,))
