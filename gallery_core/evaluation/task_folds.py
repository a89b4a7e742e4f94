"""Leave one fold of tasks out: every training task is held out once, so no choice of held-out set decides.

The training tasks are dealt into K folds by a written rule (``task_folds``): each kind (binary, multiclass,
regression) in turn, its tasks shuffled with a fixed seed, dealt round-robin with one counter running across
the kinds, so every fold gets a spread of kinds and the folds differ in size by at most one task. For each
training seed and fold, the MTL model is retrained on the run's training listings *without* that fold's tasks
(their labels, losses and heads never reach it), and the fold's tasks, plus the run's hold-out column(s), which
no model ever trains on, are probed from

  product   the retrained model's embedding for new tasks (the run's ``EmbedConfig.new_task_features``)
  imagenet  ImageNet transfer: the pretrained backbone's mean-pooled features

(and any further feature sets a study adds through ``extra_features``) with two probes: ``mlp``, the
evaluation's 2-layer head (``models.fit_probe``), and ``linear``, logistic / ridge regression on standardised
features (scikit-learn), since two embeddings this close can be ordered differently by the two. Scores are
accuracy, or R^2 for a regression task, on the run's validation listings, at fractions of each task's labelled
training listings. A hold-out column is probed from every fold's model; its score per seed is the mean over
folds.

The summary (``summarise_folds``) gives per task and per fraction the mean over seeds with a 95% Student-t
interval, the same for the mean over tasks, and each task's margin against ImageNet transfer (paired per
seed, with its interval): the worst task's margin is the number that says "universal" or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gallery_core.config import BuildConfig
from gallery_core.data.tasks import TASK_KINDS, TaskSpec
from gallery_core.evaluation.config import EvaluationConfig, ProbeConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import mean_interval, participation_ratio
from gallery_core.evaluation.models import fit_probe, probe_score
from gallery_core.evaluation.tasks import holdout_task, nested_subsets
from gallery_core.evaluation.transfer import (
    HeldOutTask,
    feature_sets,
    held_out_tasks,
    learned_listing_embeddings,
    retrain_without,
    trained_task_scores,
)

FOLD_RULE = ("each kind of task in turn (binary, multiclass, regression), its tasks shuffled with seed {seed}, "
             "dealt round-robin into {k} folds with one counter across the kinds")
PROBES = ("mlp", "linear")
# The linear probe's regularisation: C = 0.1 on standardised features for classification (the setting of the
# measurements that opened issue 19), ridge's alpha by its own leave-one-out search for regression.
LINEAR_C = 0.1
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)

# (fold's model as TrainedModel, its learned listing embeddings (L, D), its config, seed) -> {name: (L, D')}
ExtraFeatures = Callable[[Any, np.ndarray, Any, int], dict[str, np.ndarray]]


def task_folds(tasks: tuple[TaskSpec, ...] | list[TaskSpec], k: int, seed: int = 0) -> list[list[TaskSpec]]:
    """The training tasks in ``k`` folds (see ``FOLD_RULE``); every task is in exactly one fold."""
    if k < 2:
        raise ValueError(f"task folds: k must be >= 2, got {k}")
    if k > len(tasks):
        raise ValueError(f"task folds: {k} folds need at least {k} training tasks, the run has {len(tasks)}")
    rng = np.random.default_rng(seed)
    folds: list[list[TaskSpec]] = [[] for _ in range(k)]
    counter = 0
    for kind in TASK_KINDS:
        of_kind = sorted((t for t in tasks if t.kind == kind), key=lambda t: t.name)
        for i in rng.permutation(len(of_kind)):
            folds[counter % k].append(of_kind[i])
            counter += 1
    return folds


def linear_probe_score(task: TaskSpec, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       y_test: np.ndarray, seed: int = 0) -> float:
    """Logistic regression (C = LINEAR_C) or ridge regression (alpha by leave-one-out over RIDGE_ALPHAS) on
    standardised features -> the test score (accuracy or R^2, as ``probe_score``)."""
    if task.kind == "regression":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
        model.fit(x_train, y_train)
        return probe_score(task, model.predict(x_test), y_test)
    y_train = np.asarray(y_train).astype(np.int64)
    if len(np.unique(y_train)) < 2:  # one class among the training labels: predict it
        constant = np.full(len(y_test), y_train[0])
        return float(np.mean(constant == np.asarray(y_test).astype(np.int64)))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=LINEAR_C, max_iter=2000, random_state=seed))
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    return float(np.mean(predicted == np.asarray(y_test).astype(np.int64)))


def fold_probe_rows(held: list[HeldOutTask], features: dict[str, np.ndarray], fractions: tuple[float, ...],
                    probe: ProbeConfig, probes: tuple[str, ...], seed: int, fold: int,
                    tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """One row per (task, fraction, feature set, probe): the test score."""
    rows = []
    for h in held:
        for fraction, train_rows in nested_subsets(h.pool_rows, fractions, seed).items():
            for method, x in features.items():
                for kind in probes:
                    if kind == "mlp":
                        fitted = fit_probe(h.task, x[train_rows], h.labels[train_rows], probe, seed=seed)
                        score = probe_score(h.task, fitted.predict(x[h.test_rows]), h.labels[h.test_rows])
                    else:
                        score = linear_probe_score(h.task, x[train_rows], h.labels[train_rows], x[h.test_rows],
                                                   h.labels[h.test_rows], seed)
                    rows.append({"seed": seed, "fold": fold, "probe": kind, "method": method, "task": h.task.name,
                                 "kind": h.task.kind, "source": h.source, "fraction": fraction,
                                 "n_train": len(train_rows), "score": score})
                    if tick is not None:
                        tick()
    return rows


@dataclass
class Margin:
    task: str
    mean: float  # product minus ImageNet, mean over seeds
    low: float
    high: float
    product: float
    imagenet: float

    @property
    def significantly_below(self) -> bool:
        """The whole 95% interval of the paired difference lies below zero."""
        return bool(np.isfinite(self.high) and self.high < 0)


def summarise_folds(rows: list[dict[str, Any]], baseline: str = "imagenet") -> dict[str, Any]:
    """Per (probe, method, task, fraction): mean over seeds with a 95% interval (a task probed in several folds
    of one seed, the hold-out column, is first averaged over them); per (probe, method, fraction) the mean over
    tasks, taken per seed; per (probe, method, task, fraction) the paired margin against ``baseline``."""
    table = pd.DataFrame(rows)
    per_seed = table.groupby(["probe", "method", "task", "kind", "fraction", "seed"], sort=False)["score"].mean()
    per_seed = per_seed.reset_index()
    per_task = [{"probe": p, "method": m, "task": t, "kind": k, "fraction": f, **mean_interval(g["score"].tolist())}
                for (p, m, t, k, f), g in per_seed.groupby(["probe", "method", "task", "kind", "fraction"], sort=False)]
    mean_tasks = per_seed.groupby(["probe", "method", "fraction", "seed"], sort=False)["score"].mean().reset_index()
    per_fraction = [{"probe": p, "method": m, "fraction": f, **mean_interval(g["score"].tolist())}
                    for (p, m, f), g in mean_tasks.groupby(["probe", "method", "fraction"], sort=False)]
    margins = []
    keyed = per_seed.set_index(["probe", "method", "task", "fraction", "seed"])["score"]
    for (p, m, t, f), g in per_seed.groupby(["probe", "method", "task", "fraction"], sort=False):
        if m == baseline:
            continue
        seeds = [s for s in g["seed"] if (p, baseline, t, f, s) in keyed.index]
        if not seeds:
            continue
        ours = np.array([keyed[p, m, t, f, s] for s in seeds])
        base = np.array([keyed[p, baseline, t, f, s] for s in seeds])
        interval = mean_interval((ours - base).tolist())
        margins.append({"probe": p, "method": m, "task": t, "fraction": f, "product": float(ours.mean()),
                        "imagenet": float(base.mean()), **interval})
    return {"per_task": per_task, "per_fraction": per_fraction, "margins": margins}


def fold_targets(summary: dict[str, Any], method: str = "product", baseline: str = "imagenet") -> dict[str, Any]:
    """Issue 19's bar, per probe: ``method`` >= ``baseline`` on the mean over tasks at every fraction, and at the
    largest fraction no task significantly below it (the paired difference's 95% interval wholly under zero)."""
    out = {}
    for probe in sorted({r["probe"] for r in summary["per_fraction"]}):
        frac = {(r["method"], r["fraction"]): r["mean"] for r in summary["per_fraction"] if r["probe"] == probe}
        fractions = sorted(f for (m, f) in frac if m == method)
        gaps = {f: frac[method, f] - frac[baseline, f] for f in fractions if (baseline, f) in frac}
        largest = max(fractions) if fractions else None
        margins = [Margin(r["task"], r["mean"], r["low"], r["high"], r["product"], r["imagenet"])
                   for r in summary["margins"] if r["probe"] == probe and r["method"] == method
                   and r["fraction"] == largest]
        worst = min(margins, key=lambda m: m.mean) if margins else None
        out[probe] = {
            "gap_per_fraction": gaps,
            "mean_at_least_baseline": bool(gaps) and all(g >= 0 for g in gaps.values()),
            "worst_task": None if worst is None else worst.task,
            "worst_margin": None if worst is None else worst.mean,
            "tasks_significantly_below": [m.task for m in margins if m.significantly_below],
        }
    return out


def run_fold(ctx: Context, config: EvaluationConfig, seed: int, fold: int, held_tasks: list[TaskSpec],
             extra_features: ExtraFeatures | None = None,
             configure: Callable[[BuildConfig], BuildConfig] | None = None,
             drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """One (seed, fold): the model retrained without ``held_tasks``, its features, the probes' rows.

    ``configure`` changes the fold model's training config (a design under study, e.g. another objective);
    ``drop`` names feature sets not to probe (e.g. ImageNet's, already probed for this seed and fold)."""
    run, listings = ctx.run, ctx.run.listings
    columns = [holdout_task(listings, c) for c in run.holdout if c in listings.columns]
    seeded = ctx.baseline_config(config.epoch_budget(run.config.train.max_epochs))
    seeded = replace(seeded, train=replace(seeded.train, seed=seed))
    if configure is not None:
        seeded = configure(seeded).validate()
    probe = replace(config.probe, hidden=config.probe.hidden or run.config.model.head_hidden)
    trained = retrain_without(ctx, held_tasks, seeded, f"fold-{seed}-{fold}")
    if {t.name for t in trained.model.heads.tasks} & {t.name for t in held_tasks}:
        raise AssertionError("a held-out task reached its fold's model")  # the rule's own guarantee
    learned = learned_listing_embeddings(ctx, trained, seeded)
    features = feature_sets(learned, ctx.imagenet.listings, run.config.embed.new_task_features,
                            np.flatnonzero(~ctx.is_val), seed)
    if extra_features is not None:
        features |= extra_features(trained, learned, seeded, seed)
    features = {name: x for name, x in features.items() if name not in drop}
    held = held_out_tasks(held_tasks, columns, listings, ctx.is_val)
    model = {"seed": seed, "fold": fold, "held_out": [t.name for t in held_tasks],
             "trained_task_scores": trained_task_scores(trained, learned, listings, ctx.is_val), **trained.summary()}
    ranks = [{"seed": seed, "fold": fold, "method": method, "dim": int(x.shape[1]),
              "participation_ratio": participation_ratio(x)} for method, x in features.items()]
    rows = fold_probe_rows(held, features, tuple(config.fold_fractions), probe, tuple(config.fold_probes), seed, fold)
    return {"rows": rows, "ranks": ranks, "model": model, "probe": probe.__dict__}


def run_task_folds(ctx: Context, config: EvaluationConfig, extra_features: ExtraFeatures | None = None,
                   tick: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The protocol over ``config.transfer_seeds`` x ``config.transfer_folds`` folds -> rows, models, ranks."""
    folds = task_folds(ctx.run.tasks, config.transfer_folds, config.fold_seed)
    rows: list[dict[str, Any]] = []
    ranks: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    probe: dict[str, Any] = {}
    for seed in config.transfer_seeds:
        for fold, held_tasks in enumerate(folds):
            if tick is not None:
                tick(f"seed {seed}, fold {fold + 1}/{len(folds)}: MTL without {[t.name for t in held_tasks]}")
            out = run_fold(ctx, config, seed, fold, held_tasks, extra_features)
            rows += out["rows"]
            ranks += out["ranks"]
            models.append(out["model"])
            probe = out["probe"]
    return {"folds": [[t.name for t in f] for f in folds], "rows": rows, "ranks": ranks, "models": models,
            "epoch_budget": config.epoch_budget(ctx.run.config.train.max_epochs), "probe": probe}
