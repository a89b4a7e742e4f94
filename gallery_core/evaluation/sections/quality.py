"""Per-task quality (the paper's section 4.2) and class balance (its Figure 6): every training task's
validation metric beside its trivial baseline, the two MTL weightings against single-task models
trained end to end (Figure 5), and, over the binary tasks, how the MTL's loss against them depends on
class balance.

All models share the run's validation listings: the core training loop splits a catalogue by a
seeded permutation of its listing ids, so a model trained on the run's catalogue with the run's seed
holds out the very same listings (checked, not assumed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gallery_core.data.tasks import encode_labels
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import MTL_WEIGHTINGS, EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import class_balance, pearson, relative_error_increase, task_error
from gallery_core.evaluation.models import (
    TrainedModel,
    head_outputs,
    model_gallery_embeddings,
    train_baseline,
)
from gallery_core.evaluation.papers import PAPER_PEARSON, PAPER_PEARSON_P, PAPER_PU_BETTER, PAPER_WITHIN
from gallery_core.evaluation.report import (
    COLOURS,
    bullets,
    finite_or_nan,
    fmt,
    is_finite,
    pct,
    save_figure,
    subplots,
    table,
)
from gallery_core.evaluation.sections.base import Section
from gallery_core.evaluation.tasks import default_single_task_tasks
from gallery_core.names import class_prob_column
from gallery_core.pipeline.predict import task_metrics

SIGNIFICANCE = 0.05  # ours, not the paper's: when a correlation counts as agreeing with it
RELATIVE_ERROR_FIGURE = "relative_error.png"
CLASS_BALANCE_FIGURE = "class_balance.png"


def model_validation_metrics(ctx: Context, trained: TrainedModel) -> dict[str, dict[str, Any]]:
    """Validation metrics of a trained model's tasks, computed exactly as the run's ``metrics.json``."""
    run, listings = ctx.run, ctx.run.listings
    val_ids = listings["listing_id"].to_numpy()[ctx.is_val]
    if sorted(trained.checkpoint["val_listing_ids"]) != sorted(val_ids.tolist()):
        raise ValueError("a baseline model was validated on other listings than the run; the catalogue or "
                         "the training split changed since the run was built")
    ids, embeddings = model_gallery_embeddings(trained.model, ctx.catalogue.subset(val_ids), run.config,
                                               ctx.cache_dir, ctx.cache_key, ctx.device)
    rows = np.array([ctx.run.row_of_listing[i] for i in ids])
    outputs = head_outputs(trained.model, embeddings)
    columns: dict[str, np.ndarray] = {}
    for task in trained.model.heads.tasks:
        out = outputs[task.name]
        if task.kind == "multiclass":
            for j, c in enumerate(task.classes):
                columns[class_prob_column(task.name, c)] = _scatter(out[:, j], rows, len(listings))
        else:
            suffix = "prob" if task.kind == "binary" else "pred"
            columns[f"{task.name}__{suffix}"] = _scatter(out, rows, len(listings))
    predictions = pd.DataFrame(columns)
    is_val = np.zeros(len(listings), dtype=bool)
    is_val[rows] = True
    return {task.name: task_metrics(task, predictions, listings, is_val) for task in trained.model.heads.tasks}


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[rows] = values
    return out


def _error(metrics: dict[str, Any]) -> float | None:
    return task_error(metrics["kind"], metrics) if "primary" in metrics else None


def evaluate_quality(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    tasks = run.tasks
    names = [t.name for t in tasks]
    if config.single_task_tasks is None:
        single = default_single_task_tasks(tasks, run.listings, ctx.is_val, config.n_single_task)
    else:
        unknown = [n for n in config.single_task_tasks if n not in names]
        if unknown:
            raise UsageError(f"--single-task-tasks: unknown tasks {unknown}; this run's tasks are {names}")
        single = list(dict.fromkeys(config.single_task_tasks))
    run_weighting = run.config.train.weighting
    budget = config.epoch_budget(run.config.train.max_epochs)
    # Every model compared here gets the same epoch budget. The run's own model stands for its weighting
    # when the budget is the run's; otherwise that weighting is retrained too, so neither side is favoured.
    reuse_run = budget == run.config.train.max_epochs and run_weighting in MTL_WEIGHTINGS
    to_train = [w for w in MTL_WEIGHTINGS if not (reuse_run and w == run_weighting)]

    mtl_metrics: dict[str, dict[str, dict[str, Any]]] = {}
    trained_info: dict[str, Any] = {}
    if reuse_run:
        mtl_metrics[run_weighting] = run.metrics["tasks"]
        record = run.manifest["steps"]["train"]
        best, ran = record.get("best_epoch"), record.get("epochs_run")
        trained_info[f"mtl_{run_weighting}"] = {"seconds": record["seconds"], "best_epoch": best, "epochs_run": ran,
                                                "max_epochs": budget, "n_listings": len(run.listings),
                                                "still_improving": best == budget, "the_run": True}
    bar = tqdm(total=len(to_train) + len(single), desc="per-task quality", unit="model", disable=not ctx.progress)
    for weighting in to_train:
        bar.set_postfix_str(f"MTL {weighting}")
        trained = train_baseline(ctx.catalogue, tasks, ctx.baseline_config(budget, weighting),
                                 ctx.work_dir / f"mtl-{weighting}", ctx.cache_dir, ctx.device, progress=False)
        mtl_metrics[weighting] = model_validation_metrics(ctx, trained)
        trained_info[f"mtl_{weighting}"] = trained.summary()
        bar.update()
    single_metrics: dict[str, dict[str, Any]] = {}
    for name in single:
        bar.set_postfix_str(f"single-task {name}")
        task = run.task(name)
        trained = train_baseline(ctx.catalogue, (task,), ctx.baseline_config(budget),
                                 ctx.work_dir / f"single-{name}", ctx.cache_dir, ctx.device, progress=False)
        single_metrics[name] = model_validation_metrics(ctx, trained)[name]
        trained_info[f"single_{name}"] = trained.summary()
        bar.update()
    bar.close()

    rows = []
    for task in tasks:
        base = run.metrics["tasks"].get(task.name, {})
        if "primary" not in base:
            continue
        primary = base["primary"]
        row: dict[str, Any] = {"task": task.name, "kind": task.kind, "metric": primary,
                               "baseline": base[f"baseline_{primary}"], "n_val": base["n"], "run": base[primary],
                               "run_beats_baseline": base["beats_baseline"]}
        if task.kind == "binary":
            row["class_balance"] = class_balance(encode_labels(task, run.listings[task.column])[~ctx.is_val])
        for weighting, metrics in mtl_metrics.items():
            m = metrics.get(task.name, {})
            row[f"mtl_{weighting}"] = m.get(primary)
            row[f"beats_baseline_{weighting}"] = m.get("beats_baseline")
        if task.name in single_metrics and "primary" in single_metrics[task.name]:
            s = single_metrics[task.name]
            row["single_task"] = s[primary]
            reference = _error(s)
            for weighting, metrics in mtl_metrics.items():
                err = _error(metrics.get(task.name, {}))
                row[f"rel_error_{weighting}"] = (relative_error_increase(err, reference)
                                                 if err is not None else None)
        rows.append(row)

    correlation = {}
    binary_rows = [r for r in rows if r["kind"] == "binary" and "single_task" in r]
    for weighting in MTL_WEIGHTINGS:
        result = pearson([r["class_balance"] for r in binary_rows],
                         [r[f"rel_error_{weighting}"] for r in binary_rows])
        correlation[weighting] = result | {"paper_r": PAPER_PEARSON.get(weighting)}

    compared = [r for r in rows if all(r.get(f"mtl_{w}") is not None for w in MTL_WEIGHTINGS)]
    pu_better = sum(_better(r, "pseudo_uniform", "uncertainty") for r in compared)
    pu_worse = sum(_better(r, "uncertainty", "pseudo_uniform") for r in compared)
    return {
        "run_weighting": run_weighting,
        "weightings": [w for w in MTL_WEIGHTINGS if w in mtl_metrics],
        "single_task_tasks": single,
        "epoch_budget": budget,
        "run_max_epochs": run.config.train.max_epochs,
        "reused_run_model": run_weighting if reuse_run else None,
        "models": trained_info,
        "rows": rows,
        "class_balance_correlation": correlation,
        "pseudo_uniform_better": {"n_better": pu_better, "n_worse": pu_worse,
                                  "n_tied": len(compared) - pu_better - pu_worse, "n_tasks": len(compared)},
    }


def _better(row: dict[str, Any], a: str, b: str) -> bool:
    """Whether weighting ``a`` has the better validation metric than ``b`` on this task (ties: no)."""
    va, vb = row[f"mtl_{a}"], row[f"mtl_{b}"]
    return va < vb if row["metric"] == "rmse" else va > vb


def quality_verdicts(q: dict[str, Any]) -> list[str]:
    out = []
    rows = q["rows"]
    beats = sum(bool(r.get("run_beats_baseline")) for r in rows)
    claim = "as in the paper" if beats == len(rows) else "unlike the paper, where MTL beat it on every task"
    out.append(f"The run's MTL model ({q['run_weighting']}) beats the trivial baseline (majority class / mean) on "
               f"{beats} of {len(rows)} tasks, {claim}.")
    better = q["pseudo_uniform_better"]
    if better["n_tasks"]:
        n_better, n_worse, n_tied = better["n_better"], better["n_worse"], better["n_tied"]
        paper_better, paper_tasks = PAPER_PU_BETTER
        paper_share = f"{paper_better / paper_tasks:.0%}"
        if n_better > better["n_tasks"] / 2:
            claim = f"agrees with the paper's {paper_better} of {paper_tasks} ({paper_share})"
        elif n_better > n_worse:
            claim = f"points the paper's way ({paper_better} of {paper_tasks}, {paper_share}) but is no majority of the tasks"
        else:
            claim = (f"does not agree with the paper, where pseudo-uniform was better on {paper_better} of "
                     f"{paper_tasks} tasks ({paper_share})")
        out.append(f"Pseudo-uniform weighting has the better validation metric than uncertainty weighting on "
                   f"{n_better} of {better['n_tasks']} tasks ({100 * (n_better / better['n_tasks']):.1f}%; worse on "
                   f"{n_worse}, tied on {n_tied}), with the same {q['epoch_budget']}-epoch budget; this {claim}.")
    compared = [r for r in rows if "single_task" in r]
    for weighting in q["weightings"]:
        values = [r[f"rel_error_{weighting}"] for r in compared if is_finite(r.get(f"rel_error_{weighting}"))]
        if not values:
            continue
        n_better = sum(v < 0 for v in values)
        within = sum(abs(v) <= PAPER_WITHIN for v in values)
        out.append(f"Against single-task models ({weighting}): MTL has fewer errors on {n_better} of {len(values)} "
                   f"tasks and is within {PAPER_WITHIN:.0%} relative error on {within}; median relative error "
                   f"increase {float(np.median(values)):+.1%} (paper: most tasks somewhat worse, most binary tasks "
                   f"within {PAPER_WITHIN:.0%}, a few better).")
    for weighting, c in q["class_balance_correlation"].items():
        if not is_finite(c.get("r")):
            out.append(f"Class balance vs relative error increase ({weighting}): Pearson's r is undefined with "
                       f"{c['n']} binary tasks (it needs at least 3, with differing values).")
            continue
        paper = c.get("paper_r")
        paper_p = f"{PAPER_PEARSON_P:.3f}".removeprefix("0")
        reference = f" (paper: r = {paper:.2f}, p < {paper_p})" if paper is not None else ""
        if c["r"] > 0 and c["p"] < SIGNIFICANCE:
            claim = "agrees with the paper: MTL loses least where the classes are most imbalanced"
        elif c["r"] > 0:
            claim = f"points the paper's way but is not significant at {SIGNIFICANCE} with {c['n']} tasks"
        else:
            claim = "does not agree with the paper's positive relationship"
        out.append(f"Class balance vs relative error increase ({weighting}): r = {c['r']:.2f}, p = {c['p']:.3g}, "
                   f"n = {c['n']}{reference}; this {claim}.")
    single = [n.removeprefix("single_") for n, i in q["models"].items() if n.startswith("single_") and i["still_improving"]]
    mtl = [n.removeprefix("mtl_") for n, i in q["models"].items() if n.startswith("mtl_") and i["still_improving"]]
    if single:
        out.append(f"Caveat: the single-task models of {', '.join(single)} had their best epoch at the last of "
                   f"{q['epoch_budget']}; more epochs might improve them, so the comparison may flatter MTL there.")
    if mtl:
        out.append(f"Caveat: the MTL model(s) ({', '.join(mtl)}) had their best epoch at the last of "
                   f"{q['epoch_budget']}; more epochs might improve them.")
    return out


def quality_markdown(q: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    """Two bodies: per-task quality, then class balance."""
    ws = q["weightings"]
    reused = q["reused_run_model"]
    origin = (f"MTL {reused} is the run's own model" if reused else
              f"the run's own model ({q['run_weighting']}, {q['run_max_epochs']} epochs) is shown for reference; "
              "both MTL weightings were retrained")
    lines = [f"Validation metric of every training task (on the run's validation listings) for MTL with each "
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
        run_value = [] if reused else [fmt(r["run"])]
        rows.append([r["task"], r["kind"], r["metric"], fmt(r["baseline"]), *run_value,
                     *[fmt(r.get(f"mtl_{w}")) for w in ws], fmt(r.get("single_task")),
                     *[pct(r.get(f"rel_error_{w}")) for w in ws]])
    lines += table(header, rows)
    if any("single_task" in r for r in q["rows"]):
        lines += [f"![Relative error increase of MTL against single-task models]({RELATIVE_ERROR_FIGURE})", ""]
    lines += bullets([v for v in verdicts if not v.startswith("Class balance")])
    binary = [r for r in q["rows"] if r["kind"] == "binary" and "single_task" in r]
    if not binary:
        return [lines, ["_No binary task has a single-task model; pass binary tasks to --single-task-tasks._", ""]]
    balance = table(["task", "class balance", *[f"rel. error {w}" for w in ws]],
                    [[r["task"], fmt(r["class_balance"]), *[pct(r.get(f"rel_error_{w}")) for w in ws]]
                     for r in sorted(binary, key=lambda r: r["class_balance"])])
    corr_rows = [[w, fmt(c["r"], 2), fmt(c["p"], 3), str(c["n"]), fmt(c.get("paper_r"), 2)]
                 for w, c in q["class_balance_correlation"].items()]
    balance += table(["weighting", "Pearson r", "p", "n tasks", "paper r"], corr_rows)
    balance += [f"![Class balance against relative error increase]({CLASS_BALANCE_FIGURE})", ""]
    return [lines, balance + bullets([v for v in verdicts if v.startswith("Class balance")])]


def relative_error_figure(q: dict[str, Any], path: Path) -> Path:
    rows = [r for r in q["rows"] if "single_task" in r]
    fig, ax = subplots(figsize=(6.4, 0.45 * len(rows) + 1.6))
    y = np.arange(len(rows))
    height = 0.8 / max(len(q["weightings"]), 1)
    for i, weighting in enumerate(q["weightings"]):
        values = [100 * finite_or_nan(r.get(f"rel_error_{weighting}")) for r in rows]
        ax.barh(y + i * height, values, height=height, label=f"MTL ({weighting})", color=COLOURS.get(weighting))
    ax.set_yticks(y + height * (len(q["weightings"]) - 1) / 2, [f"{r['task']} ({r['kind']})" for r in rows])
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("relative error increase vs single-task model (%)  (< 0: MTL better)")
    ax.set_title("MTL against task-specific models (cf. paper's Figure 5)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def class_balance_figure(q: dict[str, Any], path: Path) -> Path:
    rows = [r for r in q["rows"] if r["kind"] == "binary" and "single_task" in r]
    fig, ax = subplots(figsize=(6.4, 4.2))
    for weighting in q["weightings"]:
        x = np.array([r["class_balance"] for r in rows])
        y = np.array([100 * finite_or_nan(r.get(f"rel_error_{weighting}")) for r in rows])
        c = q["class_balance_correlation"][weighting]
        r_text = f"r = {c['r']:.2f}, p = {c['p']:.2g}" if is_finite(c.get("r")) else "r undefined"
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
    return save_figure(fig, path)


def quality_figures(q: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out = {}
    if any("single_task" in r for r in q["rows"]):
        out["relative_error"] = relative_error_figure(q, out_dir / RELATIVE_ERROR_FIGURE)
        if any(r["kind"] == "binary" and "single_task" in r for r in q["rows"]):
            out["class_balance"] = class_balance_figure(q, out_dir / CLASS_BALANCE_FIGURE)
    return out


def quality_plan(config: EvaluationConfig, n_holdout_columns: int) -> str:
    n_single = config.n_single_task + 2 if config.single_task_tasks is None else len(config.single_task_tasks)
    return f"quality: up to {n_single + 2} models"


SECTION = Section(name="quality", titles=("Per-task quality (the paper's section 4.2, Figure 5)",
                                          "Class balance (the paper's Figure 6)"),
                  run=evaluate_quality, verdicts=quality_verdicts, markdown=quality_markdown,
                  figures=quality_figures, figure_files=(RELATIVE_ERROR_FIGURE, CLASS_BALANCE_FIGURE),
                  summary_prefixes=("Pseudo-uniform", "Class balance"), plan=quality_plan)
