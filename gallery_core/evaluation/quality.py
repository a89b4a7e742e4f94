"""Per-task quality (the paper's section 4.2): every training task's validation metric beside its trivial
baseline, the two MTL weightings against single-task models trained end to end (Figure 5), and, over
the binary tasks, how the MTL's loss against them depends on class balance (Figure 6).

All models share the run's validation listings: the core training loop splits a catalogue by a
seeded permutation of its listing ids, so a model trained on the run's catalogue with the run's seed
holds out the very same listings (checked, not assumed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gallery_core.data.tasks import TaskSpec, encode_labels
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
from gallery_core.names import class_prob_column
from gallery_core.pipeline.predict import task_metrics

PAPER_PEARSON = {"pseudo_uniform": 0.78, "uncertainty": 0.80}


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
