"""Task folds (report section): every training task held out once, each probed from a model that never saw it.

The protocol is ``gallery_core.evaluation.task_folds`` (also run by ``benchmarks/representation_study.py``
with further designs); this module runs it for the run's own settings and reports it beside the single-set
leave-tasks-out section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import mean_interval
from gallery_core.evaluation.report import bullets, fmt, is_finite, save_figure, subplots, table
from gallery_core.evaluation.sections.base import Section
from gallery_core.evaluation.task_folds import FOLD_RULE, fold_targets, run_task_folds, summarise_folds

FIGURE = "task_folds.png"
LABELS = {"product": "Product embedding for new tasks", "imagenet": "ImageNet transfer",
          "learned": "Learned embedding alone", "imagenet_pca": "ImageNet transfer, PCA"}


def evaluate_task_folds(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    if config.transfer_folds == 0:
        return {"skipped": "--transfer-folds 0"}
    if len(ctx.run.tasks) < config.transfer_folds:
        return {"skipped": f"{config.transfer_folds} folds need at least as many training tasks; the run has "
                           f"{len(ctx.run.tasks)}"}
    bar = tqdm(total=len(config.transfer_seeds) * config.transfer_folds, desc="task folds", unit="model",
               disable=not ctx.progress)

    def tick(message: str) -> None:
        bar.set_postfix_str(message[:80])
        bar.update()

    result = run_task_folds(ctx, config, tick=tick)
    bar.close()
    summary = summarise_folds(result["rows"])
    ranks = pd.DataFrame(result["ranks"])
    effective = {m: mean_interval(g.groupby("seed")["participation_ratio"].mean().tolist())
                 for m, g in ranks.groupby("method", sort=False)}
    return {"rule": FOLD_RULE.format(seed=config.fold_seed, k=config.transfer_folds),
            "holdout_columns": [c for c in ctx.run.holdout if c in ctx.run.listings.columns],
            "seeds": list(config.transfer_seeds), "fractions": sorted(config.fold_fractions),
            "new_task_features": ctx.run.config.embed.new_task_features, "effective_rank": effective,
            **result, **summary, "targets": fold_targets(summary)}


def _ci(d: dict[str, Any]) -> str:
    if not is_finite(d.get("low")):
        return fmt(d["mean"])
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def fold_verdicts(t: dict[str, Any]) -> list[str]:
    out = []
    for probe, target in t["targets"].items():
        gaps = ", ".join(f"{100 * f:.0f}% {g:+.3f}" for f, g in sorted(target["gap_per_fraction"].items()))
        below = target["tasks_significantly_below"]
        out.append(f"Task folds ({len(t['folds'])} folds, {len(t['seeds'])} seeds, {probe} probe): product minus "
                   f"ImageNet transfer on the mean over every task: {gaps}; worst task at 100% "
                   f"`{target['worst_task']}` {target['worst_margin']:+.3f}; "
                   + (f"significantly below ImageNet: {', '.join(f'`{x}`' for x in below)}." if below
                      else "no task significantly below ImageNet."))
    return out


PROBE_TEXT = {"mlp": "a 2-layer MLP probe", "linear": "a linear probe (logistic / ridge regression)"}


def _probes_text(probes: list[str]) -> str:
    """The probes the section ran, as the report's sentence names them (only those: --fold-probes may drop one)."""
    return " and ".join(PROBE_TEXT[p] for p in probes)


def fold_markdown(t: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    probes = sorted({r["probe"] for r in t["per_fraction"]})
    folds = "; ".join(f"{i + 1}: " + ", ".join(f"`{n}`" for n in f) for i, f in enumerate(t["folds"]))
    lines = [f"Every training task is held out once. The rule: {t['rule']}. Folds: {folds}. For each seed in "
             f"{t['seeds']} and each fold, the MTL model is retrained on the run's training listings without the "
             f"fold's tasks (at most {t['epoch_budget']} epochs); the fold's tasks and the hold-out column(s) "
             f"{', '.join(f'`{c}`' for c in t['holdout_columns']) or '(none)'} (probed from every fold's model, "
             f"averaged over folds) are probed on the run's validation listings with {_probes_text(probes)}. Score: "
             "accuracy, or R^2 for a regression task; mean over seeds with a 95% Student-t interval. The product's "
             f"embedding for new tasks is `{t['new_task_features']}`.", ""]
    methods = [m for m in LABELS if any(r["method"] == m for r in t["per_fraction"])]
    by = {(r["probe"], r["method"], r["fraction"]): r for r in t["per_fraction"]}
    rows = [[probe, f"{100 * f:.0f}%"] + [_ci(by[probe, m, f]) if (probe, m, f) in by else "–" for m in methods]
            for probe in probes for f in t["fractions"]]
    lines += ["Mean over every held-out task:", ""] + table(["probe", "labels", *[LABELS[m] for m in methods]], rows)
    largest = max(t["fractions"])
    margins = {(r["probe"], r["task"]): r for r in t["margins"] if r["method"] == "product" and r["fraction"] == largest}
    tasks = list(dict.fromkeys(r["task"] for r in t["per_task"]))
    kinds = {r["task"]: r["kind"] for r in t["per_task"]}
    task_rows = []
    for task in tasks:
        cells = [f"`{task}` ({'R^2' if kinds[task] == 'regression' else 'acc.'})"]
        for probe in probes:
            m = margins.get((probe, task))
            cells += ["–", "–", "–"] if m is None else [fmt(m["product"]), fmt(m["imagenet"]), _ci(m)]
        task_rows.append(cells)
    header = ["task"] + [f"{label} ({p})" for p in probes for label in ("product", "ImageNet", "margin")]
    lines += [f"Per task at {100 * largest:.0f}% of the labels (margin: product minus ImageNet, paired per seed):",
              ""] + table(header, task_rows)
    ranks = [[LABELS.get(m, m), fmt(r["mean"], 1)] for m, r in t["effective_rank"].items()]
    lines += ["Effective rank (participation ratio of the listing embeddings, mean over folds and seeds):", ""]
    lines += table(["embedding", "participation ratio"], ranks)
    seconds = [m["seconds"] for m in t["models"]]
    lines += [f"{len(seconds)} models trained, {np.mean(seconds):.0f} s each on average.", "",
              f"![Per-task margin against ImageNet transfer]({FIGURE})", ""]
    return [lines + bullets(verdicts)]


def fold_figure(t: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    largest = max(t["fractions"])
    probes = sorted({r["probe"] for r in t["margins"]})
    fig, axes = subplots(1, len(probes), figsize=(5.2 * len(probes), 5.4), squeeze=False)
    for ax, probe in zip(axes[0], probes, strict=True):
        rows = sorted((r for r in t["margins"] if r["probe"] == probe and r["method"] == "product"
                       and r["fraction"] == largest), key=lambda r: r["mean"])
        y = np.arange(len(rows))
        means = np.array([r["mean"] for r in rows])
        err = np.array([[r["mean"] - r["low"] if is_finite(r["low"]) else 0 for r in rows],
                        [r["high"] - r["mean"] if is_finite(r["high"]) else 0 for r in rows]])
        ax.barh(y, means, xerr=err, color=["#d62728" if m < 0 else "#1f77b4" for m in means], capsize=2)
        ax.set_yticks(y, [r["task"] for r in rows], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("product minus ImageNet transfer (95% CI)")
        ax.set_title(f"{probe} probe, {100 * largest:.0f}% of labels", fontsize=9)
    return {"task_folds": save_figure(fig, out_dir / FIGURE)}


def fold_plan(config: EvaluationConfig, n_holdout_columns: int) -> str | None:
    if config.transfer_folds == 0:
        return None
    return (f"task folds: {len(config.transfer_seeds)} seeds x {config.transfer_folds} folds = "
            f"{len(config.transfer_seeds) * config.transfer_folds} models, {len(config.fold_probes)} probes at "
            f"{len(config.fold_fractions)} fractions")


SECTION = Section(name="task_folds", titles=("Task folds: every task held out once",), run=evaluate_task_folds,
                  verdicts=fold_verdicts, markdown=fold_markdown, figures=fold_figure, figure_files=(FIGURE,),
                  summary_prefixes=("Task folds",), plan=fold_plan)
