"""The hold-out task (the paper's Table 2): predict a column training never saw, three ways.

(a) MTL embeddings + a shallow probe, (b) ImageNet transfer (the pretrained backbone's mean-pooled
photo features) + the same probe, (c) a model of the run's architecture trained end to end on the
hold-out task alone. Each at nested fractions of the labelled training listings; accuracy on the
run's validation listings, which the MTL model never trained on, so (a) cannot have seen them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gallery_core.data.tasks import encode_labels
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import (
    accuracy,
    majority_baseline,
    paired_bootstrap_difference,
    wilson_interval,
)
from gallery_core.evaluation.models import fit_probe, head_outputs, model_gallery_embeddings, train_baseline
from gallery_core.evaluation.papers import (
    PAPER_CATCH_UP,
    PAPER_TABLE2_FULL,
    PAPER_TABLE2_LISTINGS,
    PAPER_TABLE2_ORDER,
)
from gallery_core.evaluation.report import COLOURS, bullets, fmt, save_figure, subplots, table
from gallery_core.evaluation.sections.base import Section
from gallery_core.evaluation.tasks import holdout_task, nested_subsets

METHODS: dict[str, str] = {
    "mtl": "MTL embeddings",
    "imagenet": "ImageNet transfer",
    "end_to_end": "End-to-end model",
}
SHORT = {"mtl": "MTL", "end_to_end": "end-to-end", "imagenet": "ImageNet"}  # in sentences quoting the paper
FIGURE = "holdout_accuracy.png"


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
    majority, majority_accuracy = majority_baseline(labels[pool_rows], y_test)

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
        "majority_baseline": {"class": task.classes[majority], "accuracy": majority_accuracy},
        "rows": rows,
        "one_off_seconds": {"mtl": round(train_step, 2), "imagenet": round(imagenet.seconds, 2)},
        "comparisons_at_largest_fraction": comparisons,
        "epoch_budget": budget,
        "run_epochs": run.manifest["steps"]["train"].get("epochs_run"),  # the MTL model behind (a)
        "probe": probe_config.__dict__,
        "mtl_features": run.config.embed.new_task_features,
    }


def holdout_verdicts(h: dict[str, Any]) -> list[str]:
    rows = h["rows"]
    largest, smallest = max(h["fractions"]), min(h["fractions"])
    acc = {(r["method"], r["fraction"]): r["accuracy"] for r in rows}
    at_full = {m: acc[m, largest] for m in METHODS}
    order = sorted(METHODS, key=lambda m: -at_full[m])
    ranking = " > ".join(f"{METHODS[m]} {at_full[m]:.3f}" for m in order)
    paper = " > ".join(f"{SHORT[m]} {PAPER_TABLE2_FULL[m]:.3f}" for m in PAPER_TABLE2_ORDER)
    out = []
    where = f"with {100 * largest:.0f}% of the labelled training data ({h['n_test']} test listings)"
    claim = "agrees with" if tuple(order) == PAPER_TABLE2_ORDER else "differs from"
    out.append(f"Hold-out `{h['column']}`: the ordering {claim} the paper's Table 2 ({paper}) {where}: {ranking}.")
    for key, (a, b) in {"mtl_vs_end_to_end": ("mtl", "end_to_end"), "mtl_vs_imagenet": ("mtl", "imagenet")}.items():
        c = h["comparisons_at_largest_fraction"][key]
        if c["low"] > 0 or c["high"] < 0:
            strength = "a gap larger than the test set's noise"
        else:
            strength = "a gap within the test set's noise"
        out.append(f"{METHODS[a]} minus {METHODS[b]}: {c['difference']:+.3f} (95% paired bootstrap interval "
                   f"{c['low']:+.3f} to {c['high']:+.3f}), {strength}.")
    small = {m: acc[m, smallest] for m in METHODS}
    best_small = max(small, key=small.get)
    if len(h["fractions"]) > 1:
        claim = "agrees with" if best_small == "mtl" else "does not agree with"
        out.append(f"With the least data ({100 * smallest:.0f}%), {METHODS[best_small]} is best "
                   f"({', '.join(f'{METHODS[m]} {small[m]:.3f}' for m in METHODS)}); this {claim} the paper's "
                   "finding that MTL embeddings are better with little data.")
        catch_up = [f for f in h["fractions"] if acc["end_to_end", f] >= small["mtl"]]
        paper_e2e, paper_mtl = (f"{100 * PAPER_CATCH_UP[m]:.0f}%" for m in ("end_to_end", "mtl"))
        if catch_up:
            out.append(f"The end-to-end model first matches the MTL embeddings' accuracy at {100 * smallest:.0f}% "
                       f"when it has {100 * min(catch_up):.0f}% of the data (paper: {paper_e2e} vs {paper_mtl}).")
        else:
            out.append(f"The end-to-end model never reaches the MTL embeddings' accuracy at {100 * smallest:.0f}% of the "
                       f"data, even with all of it (paper: it catches up at {paper_e2e}).")
    still = [r for r in rows if r["method"] == "end_to_end" and r.get("still_improving")]
    if still:
        fractions = ", ".join(f"{100 * r['fraction']:.0f}%" for r in still)
        out.append(f"Caveat: the end-to-end model had its best epoch at the last of {h['epoch_budget']} at "
                   f"{fractions} of the data; a larger --epochs budget "
                   "might improve it, so the comparison may flatter the probes there.")
    majority = h["majority_baseline"]["accuracy"]
    if at_full["mtl"] <= majority:
        out.append(f"The MTL probe does not beat predicting the majority class ({majority:.3f}).")
    return out


def holdout_markdown(h: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    lines = [f"Predicting `{h['column']}` (classes {', '.join(h['classes'])}), a column no model saw in training, "
             f"from the photos. Test set: {h['test_split']}, {h['n_test']} labelled listings; training pool: "
             f"{h['n_train_pool']} labelled training listings, nested fractions. (a) and (b) train the same "
             f"2-layer probe (hidden {h['probe']['hidden']}, early stopping on a tenth of its training rows); (c) "
             f"trains the run's architecture (frozen trunk, trainable top, head) on `{h['column']}` "
             f"alone, at most {h['epoch_budget']} epochs with the run's early stopping (the run's MTL model behind "
             f"(a) trained {h.get('run_epochs', '?')} epochs on every training task). Majority class "
             f"`{h['majority_baseline']['class']}`: {fmt(h['majority_baseline']['accuracy'])}.", ""]
    by = {(r["method"], r["fraction"]): r for r in h["rows"]}
    header = ["training data", *[f"{label} (acc. [95% CI])" for label in METHODS.values()]]
    rows = []
    for f in h["fractions"]:
        n = by["mtl", f]["n_train"]
        rows.append([f"{100 * f:.0f}% ({n})"] + [f"{fmt(by[m, f]['accuracy'])} [{fmt(by[m, f]['ci_low'], 2)}, "
                                                 f"{fmt(by[m, f]['ci_high'], 2)}]" for m in METHODS])
    paper = [f"{PAPER_TABLE2_FULL[m]:.3f}" for m in METHODS]
    rows.append([f"paper, 100% ({PAPER_TABLE2_LISTINGS // 1000}k)", *paper])
    lines += table(header, rows)
    lines += [f"![Hold-out accuracy against training data]({FIGURE})", ""]
    lines += ["Training time (seconds, wall clock; the header says how busy the machine was). (a) and (b) are "
              f"the probe's fit; they also stand on one-off costs: the MTL model's training and embedding "
              f"({fmt(h['one_off_seconds']['mtl'], 0)} s, shared by every downstream task) and the ImageNet features "
              f"({fmt(h['one_off_seconds']['imagenet'], 1)} s).", ""]
    time_rows = [[f"{100 * f:.0f}%"] + [f"{fmt(by[m, f]['train_seconds'], 1)} s "
                                         f"({fmt(by[m, f]['ms_per_training_listing'], 2)} ms/listing)" for m in METHODS]
                 for f in h["fractions"]]
    lines += table(["training data", *METHODS.values()], time_rows)
    return [lines + bullets(verdicts)]


def holdout_figure(h: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    fig, ax = subplots(figsize=(6.4, 4.2))
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
    return {"holdout": save_figure(fig, out_dir / FIGURE)}


def holdout_plan(config: EvaluationConfig, n_holdout_columns: int) -> str | None:
    return f"hold-out: {len(config.fractions)} end-to-end models" if n_holdout_columns else None


SECTION = Section(name="holdout", titles=("Hold-out task (the paper's Table 2)",), run=evaluate_holdout,
                  verdicts=holdout_verdicts, markdown=holdout_markdown, figures=holdout_figure,
                  figure_files=(FIGURE,), plan=holdout_plan)
