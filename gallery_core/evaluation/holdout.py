"""The hold-out task (the paper's Table 2): predict a column training never saw, three ways.

(a) MTL embeddings + a shallow probe, (b) ImageNet transfer (the pretrained backbone's mean-pooled
photo features) + the same probe, (c) a model of the run's architecture trained end to end on the
hold-out task alone. Each at nested fractions of the labelled training listings; accuracy on the
run's validation listings, which the MTL model never trained on, so (a) cannot have seen them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gallery_core.data.tasks import TaskSpec, class_labels, encode_labels
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import accuracy, paired_bootstrap_difference, wilson_interval
from gallery_core.evaluation.models import fit_probe, head_outputs, model_gallery_embeddings, train_baseline

METHODS: dict[str, str] = {
    "mtl": "MTL embeddings",
    "imagenet": "ImageNet transfer",
    "end_to_end": "End-to-end model",
}
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


def _row(method: str, fraction: float, n_train: int, correct: np.ndarray, seconds: float,
         **extra: Any) -> dict[str, Any]:
    low, high = wilson_interval(int(correct.sum()), len(correct))
    return {"method": method, "label": METHODS[method], "fraction": fraction, "n_train": n_train,
            "accuracy": accuracy(correct, np.ones_like(correct)), "ci_low": low, "ci_high": high,
            "train_seconds": round(seconds, 3), "ms_per_training_listing": round(1000 * seconds / n_train, 3),
            **extra}


def evaluate_holdout(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    column = config.holdout_column or (run.holdout[0] if run.holdout else None)
    if column is None:
        return {"skipped": "the run has no hold-out column (tasks.yaml `holdout:`); pass --holdout-column"}
    if column in {t.column for t in run.tasks}:
        raise UsageError(f"{column!r} is a training task of this run, not a hold-out column")
    listings = run.listings
    task = holdout_task(listings, column)
    labels = encode_labels(task, listings[column])
    labelled = labels >= 0
    test_rows = np.flatnonzero(labelled & ctx.is_val)
    pool_rows = np.flatnonzero(labelled & ~ctx.is_val)
    if len(test_rows) == 0 or len(pool_rows) < 2:
        return {"skipped": f"too few labelled listings for {column!r} (test {len(test_rows)}, train {len(pool_rows)})"}
    subsets = nested_subsets(pool_rows, config.fractions, config.seed)
    budget = config.epoch_budget(run.config.train.max_epochs)
    probe_config = replace(config.probe, hidden=config.probe.hidden or run.config.model.head_hidden)
    y_test = labels[test_rows]
    majority = int(np.bincount(labels[pool_rows], minlength=len(task.classes)).argmax())

    # (a) reads what the run offers for new tasks (EmbedConfig.new_task_features), as a user would.
    mtl_features = np.array(run.new_task_embeddings)
    imagenet = ctx.imagenet
    features = {"mtl": mtl_features, "imagenet": imagenet.listings}
    train_step = run.manifest["steps"]["train"]["seconds"] + run.manifest["steps"]["embed"]["seconds"]

    # Warm up torch's kernels so that the first probe's time is not start-up time.
    fit_probe(task, mtl_features[pool_rows[:8]], labels[pool_rows[:8]], replace(probe_config, max_epochs=1))
    rows: list[dict[str, Any]] = []
    correct_at: dict[tuple[str, float], np.ndarray] = {}
    bar = tqdm(total=3 * len(subsets), desc=f"hold-out {column}", unit="model", disable=not ctx.progress)
    for fraction, train_rows in subsets.items():
        y_train = labels[train_rows]
        for method in ("mtl", "imagenet"):
            bar.set_postfix_str(f"{METHODS[method]} {fraction:.0%}")
            probe = fit_probe(task, features[method][train_rows], y_train, probe_config, seed=config.seed)
            predicted = probe.predict_proba(features[method][test_rows]).argmax(axis=1)
            correct_at[method, fraction] = predicted == y_test
            rows.append(_row(method, fraction, len(train_rows), correct_at[method, fraction], probe.seconds_,
                             best_epoch=probe.best_epoch_))
            bar.update()
        bar.set_postfix_str(f"{METHODS['end_to_end']} {fraction:.0%}")
        train_ids = listings["listing_id"].to_numpy()[train_rows]
        trained = train_baseline(ctx.catalogue.subset(train_ids), (task,), ctx.baseline_config(budget),
                                 ctx.work_dir / f"holdout-{fraction:g}", ctx.cache_dir, ctx.device, progress=False)
        test_ids = listings["listing_id"].to_numpy()[test_rows]
        ids, embeddings = model_gallery_embeddings(trained.model, ctx.catalogue.subset(test_ids), run.config,
                                                   ctx.cache_dir, ctx.cache_key, ctx.device)
        position = {lid: i for i, lid in enumerate(ids)}
        probabilities = head_outputs(trained.model, embeddings)[task.name][[position[i] for i in test_ids]]
        correct_at["end_to_end", fraction] = probabilities.argmax(axis=1) == y_test
        rows.append(_row("end_to_end", fraction, len(train_rows), correct_at["end_to_end", fraction],
                         trained.seconds, **{k: v for k, v in trained.summary().items() if k != "seconds"}))
        bar.update()
    bar.close()

    largest = max(subsets)
    comparisons = {}
    for a, b in (("mtl", "end_to_end"), ("mtl", "imagenet"), ("end_to_end", "imagenet")):
        comparisons[f"{a}_vs_{b}"] = paired_bootstrap_difference(correct_at[a, largest], correct_at[b, largest],
                                                                 seed=config.seed)
    return {
        "column": column,
        "classes": list(task.classes),
        "test_split": "the run's validation listings (never trained on by the MTL model)",
        "n_test": len(test_rows),
        "n_train_pool": len(pool_rows),
        "fractions": sorted(subsets),
        "majority_baseline": {"class": task.classes[majority], "accuracy": float((y_test == majority).mean())},
        "rows": rows,
        "one_off_seconds": {"mtl": round(train_step, 2), "imagenet": round(imagenet.seconds, 2)},
        "comparisons_at_largest_fraction": comparisons,
        "epoch_budget": budget,
        "run_epochs": run.manifest["steps"]["train"].get("epochs_run"),  # the MTL model behind (a)
        "probe": probe_config.__dict__,
        "mtl_features": run.config.embed.new_task_features,
    }
