"""The evaluation report: ``report.json`` (every number), ``report.md`` and its PNG figures.

Image links are bare file names, so the Markdown works wherever the folder is copied with its figures
(``<run>/evaluation/`` for the app's Model page, ``docs/evaluation/`` in the repository).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gallery_core.artifacts.store import atomic_path, write_json  # noqa: E402
from gallery_core.evaluation.holdout import METHODS  # noqa: E402
from gallery_core.evaluation.transfer import METHODS as TRANSFER_METHODS  # noqa: E402
from gallery_core.evaluation.verdicts import (  # noqa: E402
    PAPER_TABLE2_FULL,
    ablation_verdicts,
    audit_verdicts,
    holdout_verdicts,
    quality_verdicts,
    retrieval_verdicts,
    robustness_verdicts,
    transfer_verdicts,
)

REPORT_MARKDOWN = "report.md"
REPORT_JSON = "report.json"
FIGURES = {"holdout": "holdout_accuracy.png", "transfer": "transfer.png", "relative_error": "relative_error.png",
           "class_balance": "class_balance.png", "retrieval": "retrieval.png", "audit": "audit.png"}
COLOURS = {"mtl": "#1f77b4", "imagenet": "#ff7f0e", "end_to_end": "#2ca02c", "product": "#1f77b4",
           "learned": "#9467bd", "imagenet_pca": "#ffbb78",
           "pseudo_uniform": "#1f77b4", "uncertainty": "#d62728", "chance": "#999999"}


def clean_for_json(value: Any) -> Any:
    """NaN and infinities become null: strict JSON readers (browsers, jq) reject them."""
    if isinstance(value, dict):
        return {str(k): clean_for_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_for_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def all_verdicts(sections: dict[str, Any]) -> dict[str, list[str]]:
    makers = {"holdout": holdout_verdicts, "transfer": transfer_verdicts, "quality": quality_verdicts, "retrieval": retrieval_verdicts,
              "robustness": robustness_verdicts, "ablation": ablation_verdicts, "audit": audit_verdicts}
    return {name: makers[name](result) for name, result in sections.items()
            if name in makers and isinstance(result, dict) and "error" not in result}


# --- figures ---


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def holdout_figure(h: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, label in METHODS.items():
        rows = sorted((r for r in h["rows"] if r["method"] == method), key=lambda r: r["fraction"])
        x = [100 * r["fraction"] for r in rows]
        y = np.array([r["accuracy"] for r in rows])
        err = np.array([[r["accuracy"] - r["ci_low"] for r in rows], [r["ci_high"] - r["accuracy"] for r in rows]])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, color=COLOURS[method])
    ax.axhline(h["majority_baseline"]["accuracy"], ls="--", color=COLOURS["chance"], label="majority class")
    ax.set_xlabel("labelled training listings used (%)")
    ax.set_ylabel(f"test accuracy ({h['n_test']} listings)")
    ax.set_title(f"Hold-out task `{h['column']}`: accuracy (95% Wilson intervals)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def transfer_figure(t: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, label in TRANSFER_METHODS.items():
        rows = sorted((r for r in t["per_fraction"] if r["method"] == method), key=lambda r: r["fraction"])
        if not rows:
            continue
        x = [100 * r["fraction"] for r in rows]
        y = np.array([r["mean"] for r in rows])
        err = np.array([[_nan(r["mean"] - r["low"]) for r in rows], [_nan(r["high"] - r["mean"]) for r in rows]])
        ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label, color=COLOURS[method])
    ax.set_xlabel("labelled training listings used (%)")
    ax.set_ylabel("mean score over held-out tasks")
    ax.set_title(f"Tasks never trained on: mean over {len(t['held_out'])} tasks, {len(t['seeds'])} seeds (95% CI)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def relative_error_figure(q: dict[str, Any], path: Path) -> None:
    rows = [r for r in q["rows"] if "single_task" in r]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.6))
    y = np.arange(len(rows))
    height = 0.8 / max(len(q["weightings"]), 1)
    for i, weighting in enumerate(q["weightings"]):
        values = [100 * _nan(r.get(f"rel_error_{weighting}")) for r in rows]
        ax.barh(y + i * height, values, height=height, label=f"MTL ({weighting})", color=COLOURS.get(weighting))
    ax.set_yticks(y + height * (len(q["weightings"]) - 1) / 2, [f"{r['task']} ({r['kind']})" for r in rows])
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("relative error increase vs single-task model (%)  (< 0: MTL better)")
    ax.set_title("MTL against task-specific models (cf. paper's Figure 5)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3, axis="x")
    _save(fig, path)


def class_balance_figure(q: dict[str, Any], path: Path) -> None:
    rows = [r for r in q["rows"] if r["kind"] == "binary" and "single_task" in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for weighting in q["weightings"]:
        x = np.array([r["class_balance"] for r in rows])
        y = np.array([100 * _nan(r.get(f"rel_error_{weighting}")) for r in rows])
        c = q["class_balance_correlation"][weighting]
        r_text = f"r = {c['r']:.2f}, p = {c['p']:.2g}" if _is_finite(c.get("r")) else "r undefined"
        marker = "o" if weighting == q["weightings"][0] else "s"
        ax.scatter(x, y, color=COLOURS.get(weighting), marker=marker, alpha=0.8, label=f"{weighting} ({r_text})")
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.sum() >= 2 and np.ptp(x[keep]) > 0:
            slope, intercept = np.polyfit(x[keep], y[keep], 1)
            grid = np.linspace(x[keep].min(), x[keep].max(), 20)
            ax.plot(grid, slope * grid + intercept, color=COLOURS.get(weighting), alpha=0.6)
        for r, xi, yi in zip(rows, x, y, strict=True):
            if weighting == q["weightings"][0]:
                ax.annotate(r["task"], (xi, yi), fontsize=7, alpha=0.7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("class balance (fraction of the minority class)")
    ax.set_ylabel("relative error increase of MTL (%)")
    ax.set_title("Class balance and MTL against single-task models (cf. Figure 6)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def retrieval_figure(r: dict[str, Any], path: Path) -> None:
    attributes = r["attribute_agreement"]["attributes"]
    completion = r["gallery_completion"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    if "mtl" in completion:
        ks = ["top1", "top10"]
        x = np.arange(len(ks))
        for i, name in enumerate(("mtl", "imagenet")):
            left.bar(x + (i - 0.5) * 0.35, [100 * completion[name][k] for k in ks], 0.35,
                     label="MTL" if name == "mtl" else "ImageNet", color=COLOURS[name])
        left.scatter(x, [100 * completion["chance"][k] for k in ks], marker="_", s=400, color="black",
                     label="chance", zorder=3)
        left.set_xticks(x, ["top 1", "top 10"])
        left.set_ylabel("% of queries")
        left.set_title("Gallery completion")
        left.legend(fontsize=8)
    names = list(attributes)
    x = np.arange(len(names))
    for i, (key, label, colour) in enumerate((("precision_mtl", "MTL", COLOURS["mtl"]),
                                              ("precision_imagenet", "ImageNet", COLOURS["imagenet"]),
                                              ("chance", "chance", COLOURS["chance"]))):
        right.bar(x + (i - 1) * 0.27, [_nan(attributes[a][key]) for a in names], 0.27, label=label, color=colour)
    right.set_xticks(x, [f"{a}{' (hold-out)' if attributes[a]['holdout'] else ''}" for a in names],
                     rotation=30, ha="right")
    right.set_ylabel(f"precision@{r['attribute_agreement']['k']}")
    right.set_title("Neighbours sharing the listing's attribute")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def audit_figure(a: dict[str, Any], path: Path) -> None:
    tasks = list(a["tasks"])
    k0 = a["ks"][0]
    fig, ax = plt.subplots(figsize=(8, 4.2))
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
    _save(fig, path)


def _nan(value: Any) -> float:
    return float(value) if _is_finite(value) else float("nan")


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# --- Markdown ---


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "–" if not _is_finite(value) else f"{100 * value:+.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _bullets(lines: list[str]) -> list[str]:
    return [f"- {line}" for line in lines] + ([""] if lines else [])


def _status(result: dict[str, Any]) -> str | None:
    if "skipped" in result:
        return f"_Skipped: {result['skipped']}._"
    if "error" in result:
        return f"_Failed: {result['error']}._"
    return None


def holdout_markdown(h: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 1. Hold-out task (the paper's Table 2)", ""]
    if (status := _status(h)) is not None:
        return lines + [status, ""]
    lines += [f"Predicting `{h['column']}` (classes {', '.join(h['classes'])}), a column no model saw in training, "
              f"from the photos. Test set: {h['test_split']}, {h['n_test']} labelled listings; training pool: "
              f"{h['n_train_pool']} labelled training listings, nested fractions. (a) and (b) train the same "
              f"2-layer probe (hidden {h['probe']['hidden']}, early stopping on a tenth of its training rows); (c) "
              f"trains the run's architecture (frozen trunk, trainable top, head) on `{h['column']}` "
              f"alone, at most {h['epoch_budget']} epochs with the run's early stopping (the run's MTL model behind "
              f"(a) trained {h.get('run_epochs', '?')} epochs on every training task). Majority class "
              f"`{h['majority_baseline']['class']}`: {_f(h['majority_baseline']['accuracy'])}.", ""]
    by = {(r["method"], r["fraction"]): r for r in h["rows"]}
    header = ["training data", *[f"{label} (acc. [95% CI])" for label in METHODS.values()]]
    rows = []
    for f in h["fractions"]:
        n = by["mtl", f]["n_train"]
        rows.append([f"{100 * f:.0f}% ({n})"] + [f"{_f(by[m, f]['accuracy'])} [{_f(by[m, f]['ci_low'], 2)}, "
                                                 f"{_f(by[m, f]['ci_high'], 2)}]" for m in METHODS])
    paper = [f"{PAPER_TABLE2_FULL[m]:.3f}" for m in METHODS]
    rows.append(["paper, 100% (250k)", *paper])
    lines += _table(header, rows)
    lines += [f"![Hold-out accuracy against training data]({FIGURES['holdout']})", ""]
    lines += ["Training time (seconds, wall clock; the header says how busy the machine was). (a) and (b) are "
              f"the probe's fit; they also stand on one-off costs: the MTL model's training and embedding "
              f"({_f(h['one_off_seconds']['mtl'], 0)} s, shared by every downstream task) and the ImageNet features "
              f"({_f(h['one_off_seconds']['imagenet'], 1)} s).", ""]
    time_rows = [[f"{100 * f:.0f}%"] + [f"{_f(by[m, f]['train_seconds'], 1)} s "
                                         f"({_f(by[m, f]['ms_per_training_listing'], 2)} ms/listing)" for m in METHODS]
                 for f in h["fractions"]]
    lines += _table(["training data", *METHODS.values()], time_rows)
    return lines + _bullets(verdicts)


def _ci(d: dict[str, float]) -> str:
    """A mean over seeds with its 95% interval."""
    if not _is_finite(d.get("low")):
        return _f(d["mean"])
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def transfer_markdown(t: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 2. Leave tasks out: tasks the embedding never saw", ""]
    if (status := _status(t)) is not None:
        return lines + [status, ""]
    held = ", ".join(f"`{h['task']}` ({h['kind']}, {h['source']}, {h['n_test']} test listings)" for h in t["held_out"])
    dims = ", ".join(f"{TRANSFER_METHODS[m]} {d}-d" for m, d in t["dims"].items())
    lines += [f"Held out: {held}. The rule: {t['rule']}. For each of the seeds {t['seeds']} the MTL model is "
              f"retrained without them on the run's training listings (at most {t['epoch_budget']} epochs) and each "
              "held-out task is probed from each embedding with the same 2-layer probe, at nested fractions of its "
              "labelled training listings; the end-to-end model trains the run's architecture on the task alone "
              f"(at {', '.join(f'{100 * f:.0f}%' for f in t['end_to_end_fractions']) or 'no fraction'}). Score: "
              "accuracy, or R^2 for a regression task; mean over seeds with a 95% Student-t interval over seeds. "
              f"The product's embedding for new tasks is `{t['new_task_features']}`. Dimensions: {dims}.", ""]
    by = {(r["method"], r["fraction"]): r for r in t["per_fraction"]}
    methods = [m for m in TRANSFER_METHODS if any(k[0] == m for k in by)]
    header = ["training data", *[TRANSFER_METHODS[m] for m in methods]]
    rows = [[f"{100 * f:.0f}%"] + [_ci(by[m, f]) if (m, f) in by else "–" for m in methods]
            for f in sorted({f for _, f in by})]
    overall = {r["method"]: r for r in t["overall"]}
    rows.append(["mean over fractions"] + [_ci(overall[m]) if m in overall else "–" for m in methods])
    lines += ["Mean score over the held-out tasks:", ""] + _table(header, rows)
    lines += [f"![Score on tasks never trained on]({FIGURES['transfer']})", ""]
    per_task = {(r["method"], r["task"], r["fraction"]): r for r in t["per_task"]}
    largest = max(t["fractions"])
    task_rows = [[f"`{h['task']}` ({'R^2' if h['kind'] == 'regression' else 'accuracy'})"]
                 + [_ci(per_task[m, h["task"], largest]) if (m, h["task"], largest) in per_task else "–"
                    for m in methods] for h in t["held_out"]]
    lines += [f"Per task at {100 * largest:.0f}% of the labels:", ""] + _table(["task", *header[1:]], task_rows)
    ranks = [[TRANSFER_METHODS[m], _f(r["mean"], 1)] for m, r in t["effective_rank"].items()]
    lines += ["Effective rank (participation ratio of the listing embeddings, mean over seeds):", ""]
    lines += _table(["embedding", "participation ratio"], ranks)
    return lines + _bullets(verdicts)


def quality_markdown(q: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 3. Per-task quality (the paper's section 4.2, Figure 5)", ""]
    if (status := _status(q)) is not None:
        return lines + [status, ""]
    ws = q["weightings"]
    reused = q["reused_run_model"]
    origin = (f"MTL {reused} is the run's own model" if reused else
              f"the run's own model ({q['run_weighting']}, {q['run_max_epochs']} epochs) is shown for reference; "
              "both MTL weightings were retrained")
    lines += [f"Validation metric of every training task (on the run's validation listings) for MTL with each "
              f"weighting, beside the trivial baseline (majority class / training mean) and, for "
              f"{len(q['single_task_tasks'])} tasks, a single-task model of the same architecture trained end to end. "
              f"Every compared model had the same budget of {q['epoch_budget']} epochs with the run's early stopping; "
              f"{origin}. Relative error increase = (MTL error - single-task error) / single-task error, with error = "
              "1 - accuracy or MSE as in the paper (negative = MTL better).", ""]
    run_column = [] if reused else [f"run ({q['run_weighting']})"]
    header = ["task", "kind", "metric", "baseline", *run_column, *[f"MTL {w}" for w in ws], "single-task",
              *[f"rel. error {w}" for w in ws]]
    rows = []
    for r in q["rows"]:
        run_value = [] if reused else [_f(r["run"])]
        rows.append([r["task"], r["kind"], r["metric"], _f(r["baseline"]), *run_value,
                     *[_f(r.get(f"mtl_{w}")) for w in ws], _f(r.get("single_task")),
                     *[_pct(r.get(f"rel_error_{w}")) for w in ws]])
    lines += _table(header, rows)
    if any("single_task" in r for r in q["rows"]):
        lines += [f"![Relative error increase of MTL against single-task models]({FIGURES['relative_error']})", ""]
    lines += _bullets([v for v in verdicts if not v.startswith("Class balance")])
    lines += ["## 4. Class balance (the paper's Figure 6)", ""]
    binary = [r for r in q["rows"] if r["kind"] == "binary" and "single_task" in r]
    if not binary:
        return lines + ["_No binary task has a single-task model; pass binary tasks to --single-task-tasks._", ""]
    lines += _table(["task", "class balance", *[f"rel. error {w}" for w in ws]],
                    [[r["task"], _f(r["class_balance"]), *[_pct(r.get(f"rel_error_{w}")) for w in ws]]
                     for r in sorted(binary, key=lambda r: r["class_balance"])])
    corr_rows = [[w, _f(c["r"], 2), _f(c["p"], 3), str(c["n"]), _f(c.get("paper_r"), 2)]
                 for w, c in q["class_balance_correlation"].items()]
    lines += _table(["weighting", "Pearson r", "p", "n tasks", "paper r"], corr_rows)
    lines += [f"![Class balance against relative error increase]({FIGURES['class_balance']})", ""]
    return lines + _bullets([v for v in verdicts if v.startswith("Class balance")])


def retrieval_markdown(r: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 5. Retrieval", ""]
    if (status := _status(r)) is not None:
        return lines + [status, ""]
    c = r["gallery_completion"]
    lines += [f"**Gallery completion.** Each listing with at least 2 photos is queried with a random half of its photos "
              f"(the mean of their embeddings); it is found when its other half ranks within the top k of "
              f"{c['n_candidates']} candidates (every other listing's whole gallery, and its own other half).", ""]
    if "mtl" in c:
        lines += _table(["features", "top 1", "top 10", "median rank", "MRR"],
                        [[name, _f(c[key]["top1"]), _f(c[key]["top10"]), _f(c[key]["median_rank"], 1),
                          _f(c[key]["mrr"])] for key, name in (("mtl", "MTL embeddings"),
                                                               ("imagenet", "ImageNet features"))]
                        + [["chance", _f(c["chance"]["top1"]), _f(c["chance"]["top10"]), "–", "–"]])
    agreement = r["attribute_agreement"]
    lines += [f"**Attribute agreement.** Precision@{agreement['k']}: the share of a listing's {agreement['k']} nearest "
              "neighbours (exact cosine, itself excluded) with the same recorded value; chance = the same share for "
              "random listings.", ""]
    lines += _table(["attribute", "MTL", "ImageNet", "chance", "queries"],
                    [[f"`{a}`" + (" (hold-out)" if v["holdout"] else ""), _f(v["precision_mtl"]),
                      _f(v["precision_imagenet"]), _f(v["chance"]), str(v["n_queries"])]
                     for a, v in agreement["attributes"].items()])
    lines += [f"![Gallery completion and attribute agreement]({FIGURES['retrieval']})", ""]
    a = r["ann"]
    lines += [f"**Approximate index.** Annoy ({a['n_trees']} trees, search_k {a['search_k']}) against exact search over "
              f"{a['n_items']} listing embeddings, {a['n_queries']} queries: recall@{a['k']} {_f(a['recall'])}; query "
              f"latency median {_f(a['annoy_ms_median'], 2)} ms (p95 {_f(a['annoy_ms_p95'], 2)} ms), exact search "
              f"median {_f(a['exact_ms_median'], 2)} ms (p95 {_f(a['exact_ms_p95'], 2)} ms).", ""]
    return lines + _bullets(verdicts)


def _interval(d: dict[str, float]) -> str:
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def robustness_table(result: dict[str, Any]) -> list[str]:
    """Clean against each corruption for one model (``robustness.evaluate_run_robustness`` plus its ``k``)."""
    k, cond = result["k"], result["conditions"]
    corrupted = [c for c in cond if c != "clean"]
    rows = [["completion recall@1", *(_f(cond[c]["recall_at_1"]) for c in cond)],
            [f"completion recall@{k}", *(_f(cond[c][f"recall_at_{k}"]) for c in cond)],
            [f"attribute precision@{k}", *(_f(cond[c][f"mean_attribute_precision_at_{k}"]) for c in cond)],
            ["photo search recall@1", "-", *(_f(cond[c]["photo_search"]["photo_recall_at_1"]) for c in corrupted)],
            [f"photo search listing hit@{k}", "-",
             *(_f(cond[c]["photo_search"][f"listing_hit_at_{k}"]) for c in corrupted)]]
    return _table(["measure", *cond], rows)


def ablation_tables(arms: dict[str, Any], setup: dict[str, Any], paired: dict[str, Any],
                    heading: str = "##") -> list[str]:
    """The objective ablation's tables (``objectives.evaluate_ablation``; also the benchmark's own page):
    hold-out and clean retrieval over all listings, paired differences against the first arm, then
    clean against corrupted query photos."""
    k, column = setup["k"], setup["holdout_column"]
    lines = [f"{heading} Hold-out accuracy and clean retrieval (all listings)", ""]
    lines += _table(["arm", f"{column} accuracy [95% CI]", "completion recall@1", f"recall@{k}",
                     f"attribute precision@{k}", "epochs (best)", "train s (epochs)"],
                    [[name, f"{_f(a['holdout']['accuracy'])} [{_f(a['holdout']['ci_low'])}, "
                            f"{_f(a['holdout']['ci_high'])}]",
                      _f(a["clean_all_listings"]["recall_at_1"]), _f(a["clean_all_listings"][f"recall_at_{k}"]),
                      _f(a["clean_all_listings"][f"mean_attribute_precision_at_{k}"]),
                      f"{a['epochs_run']} ({a['best_epoch']})", f"{a['train_seconds']:.0f}"]
                     for name, a in arms.items()])
    lines += [f"Paired differences against `{next(iter(arms))}` (same test items; 95% bootstrap interval):", ""]
    lines += _table(["arm", f"{column} accuracy", f"completion recall@{k} (all listings)"],
                    [[name, _interval(d["holdout_accuracy"]), _interval(d[f"completion_recall_at_{k}"])]
                     for name, d in paired.items()])
    lines += [f"Majority-class accuracy of `{column}` on the same test listings: "
              f"{_f(setup['holdout_majority_accuracy'])}.", ""]

    conditions = ["clean", *setup["corruptions"]]
    n_half = next(iter(arms.values()))["holdout"]["query_half"]["n_test"]
    lines += [f"{heading} Clean vs corrupted query photos", "",
              f"`{column}` accuracy of the same probe on the query half of the {n_half} labelled validation "
              "listings among the queries (half a gallery, so below the full-gallery accuracy above):", ""]
    lines += _table(["arm", *conditions], [[name, *(_f(a["holdout"]["query_half"][c]) for c in conditions)]
                                           for name, a in arms.items()])
    for title, key in ((f"Gallery-completion recall@{k} ({setup['n_queries']} query listings):", f"recall_at_{k}"),
                       (f"Attribute precision@{k} of the same queries (mean over attributes):",
                        f"mean_attribute_precision_at_{k}")):
        lines += [title, ""]
        lines += _table(["arm", *conditions], [[name, *(_f(a["robustness"]["conditions"][c][key])
                                                        for c in conditions)] for name, a in arms.items()])
    corrupted = setup["corruptions"]
    lines += ["Single-photo search with a corrupted catalogue photo: its clean original found first "
              f"(recall@1) / its listing among the top {k} listings:", ""]
    search = {name: a["robustness"]["conditions"] for name, a in arms.items()}
    return lines + _table(["arm", *corrupted], [
        [name, *(f"{_f(cond[c]['photo_search']['photo_recall_at_1'])} / "
                 f"{_f(cond[c]['photo_search'][f'listing_hit_at_{k}'])}" for c in corrupted)]
        for name, cond in search.items()])


def robustness_markdown(r: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 6. Robustness to corrupted query photos (the reseller paper)", ""]
    if (status := _status(r)) is not None:
        return lines + [status, ""]
    lines += [f"This run's model on {r['n_queries']} validation listings ({r['n_query_photos']} query photos): the "
              "gallery-completion protocol of section 4 with the query half clean, then each photo of it JPEG "
              "re-compressed (quality 10-30), cropped, scribbled or watermarked (`gallery_core.data.corruptions`, seeded); "
              "the catalogue's photos stay clean. Photo search: each corrupted photo searched among all clean "
              "photos.", ""]
    return lines + robustness_table(r) + _bullets(verdicts)


def ablation_markdown(a: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 7. Visual-search objectives: ablation (the reseller paper)", ""]
    if (status := _status(a)) is not None:
        return lines + [status, ""]
    s, t = a["setup"], a.get("timings", {})
    lines += [f"Four models that differ only in their objectives, trained by `{a['command']}` on this run's catalogue "
              f"(results read from `{Path(a['source']).name}`; its page has the setup in full): the backbone "
              f"`{s['backbone']}` frozen entirely (`trainable_stages={s['trainable_stages']}`, unlike the run), lr "
              f"{s['lr']}, at most {s['max_epochs']} epochs, seed {s['seed']}; triplet weight {s['triplet_weight']} "
              f"(levels {s['level_edges']} of shared attributes), VAE weight {s['vae_weight']} "
              f"({s['vae_image_size']} px). Hold-out `{s['holdout_column']}` by the evaluation's probe on each arm's "
              f"embeddings ({s['n_val']} validation listings); retrieval over all {s['n_listings']} listings; "
              f"corrupted queries on {s['n_queries']} listings. Training took "
              f"{sum(arm['train_seconds'] for arm in a['arms'].values()) / 60:.0f} min for the four arms"
              + (f" (the whole job {t['total_s'] / 60:.0f} min)." if "total_s" in t else "."), ""]
    return lines + ablation_tables(a["arms"], s, a["paired"], heading="###") + _bullets(verdicts)


def audit_markdown(a: dict[str, Any], verdicts: list[str]) -> list[str]:
    lines = ["## 8. Audit against known wrong labels", ""]
    if (status := _status(a)) is not None:
        return lines + [status, ""]
    ks = a["ks"]
    lines += [f"Ranking: {a['ranking']}. Truth: `{Path(a['truth']).name}` (labels flipped on purpose; training "
              "never reads it). Precision@k = share of the k most suspicious labels that are flips; recall@k = "
              "share of the task's flips found in its top k.", ""]
    header = ["task", "flipped", "base rate", *[f"P@{k}" for k in ks], *[f"R@{k}" for k in ks], "R-precision", "AP"]
    rows = []
    for name, s in [*a["tasks"].items(), ("**all binary, pooled**", a["pooled"])]:
        at = {x["k"]: x for x in s["at_k"]}
        rows.append([name, str(s["n_flipped"]), _f(s["base_rate"]), *[_f(at[k]["precision"], 2) for k in ks],
                     *[_f(at[k]["recall"], 2) for k in ks], _f(s["r_precision"], 2), _f(s["average_precision"], 2)])
    lines += _table(header, rows)
    lines += [f"![Audit precision and recall]({FIGURES['audit']})", ""]
    return lines + _bullets(verdicts)


def render_markdown(report: dict[str, Any]) -> str:
    sections, verdicts = report["sections"], report["verdicts"]
    env = report["environment"]
    loads = [x for x in (env.get("load_average_at_start"), env.get("load_average_at_end")) if _is_finite(x)]
    shared = bool(loads) and max(loads) > (env.get("cpu_count") or 1)
    machine = ("above the number of cores, other work shared the machine and every time is inflated" if shared else
               "at most the number of cores: the evaluation had the machine to itself")
    lines = [f"# Evaluation of run `{report['run']['name']}`", "",
             f"Made by `{report['command']}` on {report['generated_at']} in {report['seconds']['total'] / 60:.1f} min "
             f"({env['device']}, {env['cpu_count']} CPU cores, {env['torch_threads']} torch "
             f"thread{'' if env['torch_threads'] == 1 else 's'}; load average "
             f"{_f(env.get('load_average_at_start'), 1)} at the start, {_f(env.get('load_average_at_end'), 1)} at the "
             f"end: {machine}). Run: "
             f"{report['run']['n_listings']} listings, {report['run']['n_photos']} photos, backbone "
             f"`{report['run']['backbone']}`, `{report['run']['weighting']}` weighting. Every number below comes from "
             "this run and the models trained for this report (all in `report.json`); the sentences comparing "
             "them with the papers are generated from those numbers. Times are wall clock"
             + (" and noisy on a shared machine." if shared else "."), "", "## Summary against the papers", ""]
    summary = [v for name in ("holdout", "transfer", "quality", "retrieval", "robustness", "ablation", "audit")
               for v in verdicts.get(name, [])[:1]]
    summary += [v for v in verdicts.get("quality", []) if v.startswith(("Pseudo-uniform", "Class balance"))]
    lines += _bullets(list(dict.fromkeys(summary)) or ["No section was run."])
    makers = {"holdout": holdout_markdown, "transfer": transfer_markdown, "quality": quality_markdown, "retrieval": retrieval_markdown,
              "robustness": robustness_markdown, "ablation": ablation_markdown, "audit": audit_markdown}
    for name, maker in makers.items():
        if name in sections:
            lines += maker(sections[name], verdicts.get(name, []))
    lines += ["## Settings and timings", "", "Section wall times: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in report["seconds"].items() if k != "total") + ".", "",
        "Settings (all of them, and every model's epochs, are in `report.json`): `" + _compact_json(report["config"])
        + "`", ""]
    return "\n".join(lines)


def _compact_json(data: Any) -> str:
    return json.dumps(clean_for_json(data), separators=(", ", ": "))


def write_report(report: dict[str, Any], out_dir: Path, copy_to: Path | None = None) -> Path:
    """Write figures, report.json and report.md into ``out_dir`` (and copy them to ``copy_to``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FIGURES.values():  # figures of sections not run this time would be stale
        (out_dir / name).unlink(missing_ok=True)
    sections = report["sections"]
    ok = {name: s for name, s in sections.items() if "skipped" not in s and "error" not in s}
    if "holdout" in ok:
        holdout_figure(ok["holdout"], out_dir / FIGURES["holdout"])
    if "transfer" in ok:
        transfer_figure(ok["transfer"], out_dir / FIGURES["transfer"])
    if "quality" in ok and any("single_task" in r for r in ok["quality"]["rows"]):
        relative_error_figure(ok["quality"], out_dir / FIGURES["relative_error"])
        if any(r["kind"] == "binary" and "single_task" in r for r in ok["quality"]["rows"]):
            class_balance_figure(ok["quality"], out_dir / FIGURES["class_balance"])
    if "retrieval" in ok:
        retrieval_figure(ok["retrieval"], out_dir / FIGURES["retrieval"])
    if "audit" in ok:
        audit_figure(ok["audit"], out_dir / FIGURES["audit"])
    write_json(out_dir / REPORT_JSON, clean_for_json(report))
    with atomic_path(out_dir / REPORT_MARKDOWN) as tmp:
        tmp.write_text(render_markdown(report))
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        for name in (REPORT_MARKDOWN, REPORT_JSON, *FIGURES.values()):
            (copy_to / name).unlink(missing_ok=True)
            if (out_dir / name).is_file():
                shutil.copyfile(out_dir / name, copy_to / name)
    return out_dir / REPORT_MARKDOWN
