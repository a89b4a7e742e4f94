"""Leave tasks out: how well the embeddings carry over to tasks they never trained on.

The paper's Table 2 generalised, so that no single column decides. Besides the run's hold-out
column(s), chosen *training* tasks are held out of training: for each of several training seeds the MTL
model is retrained without them (on the run's training listings; the run's validation listings are
the test set), and each held-out task is probed from

  product       the retrained model's embedding for new tasks (the run's ``EmbedConfig.new_task_features``)
  learned       its learned gallery embedding alone (shown when ``product`` adds the pretrained features)
  imagenet      ImageNet transfer: the pretrained backbone's mean-pooled features, full dimension
  imagenet_pca  the same reduced by PCA (fit on the training listings) to the learned embedding's
                dimension, when that is smaller
  end_to_end    the run's architecture trained on the held-out task alone (at ``end_to_end_fractions``)

at nested fractions of the task's labelled training listings. Scores are accuracy (binary, multiclass)
or R^2 (regression), so higher is better everywhere; each is computed per seed, then reported as the
mean over seeds with a 95% Student-t interval. Every embedding's effective rank (participation ratio)
is reported beside it.

The held-out training tasks follow a rule that reads only the task list and the training labels' class
balance, never a result (``choose_transfer_tasks``).

This module is the protocol (also run by ``benchmarks/representation_study.py``); the report section
that runs it over seeds and summarises it is ``sections/transfer.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from gallery_core.config import BuildConfig
from gallery_core.data.tasks import TaskSpec, encode_labels, observed_mask
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import ProbeConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.models import (
    TrainedModel,
    fit_probe,
    head_outputs,
    model_gallery_embeddings,
    probe_score,
    train_baseline,
)
from gallery_core.evaluation.tasks import default_single_task_tasks, holdout_task, nested_subsets
from gallery_core.pipeline.embed import new_task_embeddings

METHODS: dict[str, str] = {
    "product": "Product embedding for new tasks",
    "learned": "Learned embedding alone",
    "imagenet": "ImageNet transfer",
    "imagenet_pca": "ImageNet transfer, PCA",
    "end_to_end": "End-to-end model",
}
RULE = ("the hold-out column(s), plus from the training tasks: {n_binary} binary tasks evenly spread over class "
        "balance (training labels), the multiclass task with the most classes and the first regression task "
        "in the tasks file")


def choose_transfer_tasks(run_tasks: tuple[TaskSpec, ...], listings: pd.DataFrame, is_val: np.ndarray,
                          holdout_columns: list[str], n_binary: int,
                          requested: tuple[str, ...] | None = None) -> tuple[list[TaskSpec], list[TaskSpec]]:
    """(held-out training tasks, hold-out column tasks). ``requested`` names training tasks to hold
    out instead of the rule's choice."""
    by_name = {t.name: t for t in run_tasks}
    if requested is not None:
        unknown = [name for name in requested if name not in by_name]
        if unknown:
            raise UsageError(f"transfer tasks {unknown} are not training tasks of this run; "
                             f"they are {sorted(by_name)}")
        names = list(requested)
    else:
        names = default_single_task_tasks(run_tasks, listings, is_val, n_binary)
    if len(names) >= len(run_tasks):
        raise UsageError("holding out every training task leaves nothing to train on")
    columns = [c for c in holdout_columns if c in listings.columns]
    return [by_name[n] for n in names], [holdout_task(listings, c) for c in columns]


@dataclass
class HeldOutTask:
    task: TaskSpec
    labels: np.ndarray  # (L,) encoded, rows of run.listings
    pool_rows: np.ndarray  # labelled training listings
    test_rows: np.ndarray  # labelled validation listings
    source: str  # "training task" or "hold-out column"


def held_out_tasks(tasks: list[TaskSpec], columns: list[TaskSpec], listings: pd.DataFrame,
                   is_val: np.ndarray) -> list[HeldOutTask]:
    out = []
    for source, group in (("hold-out column", columns), ("training task", tasks)):
        for task in group:
            labels = encode_labels(task, listings[task.column])
            observed = observed_mask(task, labels)
            test, pool = np.flatnonzero(observed & is_val), np.flatnonzero(observed & ~is_val)
            if len(test) and len(pool) >= 2:
                out.append(HeldOutTask(task, labels, pool, test, source))
    return out


def retrain_without(ctx: Context, held_out: list[TaskSpec], config: BuildConfig, name: str) -> TrainedModel:
    """The MTL model retrained on the run's training listings without the held-out tasks."""
    listings = ctx.run.listings
    names = {t.name for t in held_out}
    tasks = tuple(t for t in ctx.run.tasks if t.name not in names)
    train_ids = listings["listing_id"].to_numpy()[~ctx.is_val]
    return train_baseline(ctx.catalogue.subset(train_ids), tasks, config, ctx.work_dir / name, ctx.cache_dir,
                          ctx.device, progress=False)


def learned_listing_embeddings(ctx: Context, trained: TrainedModel, config: BuildConfig) -> np.ndarray:
    """The model's gallery embeddings (heads' input) of every listing of the run, rows of run.listings."""
    ids, embeddings = model_gallery_embeddings(trained.model, ctx.catalogue, config, ctx.cache_dir,
                                               trained.checkpoint["trunk_cache_key"], ctx.device)
    rows = np.array([ctx.run.row_of_listing[i] for i in ids])
    if len(rows) != len(ctx.run.listings):
        raise ValueError("the retrained model embedded other listings than the run has")
    out = np.zeros((len(rows), embeddings.shape[1]), np.float32)
    out[rows] = embeddings
    return out


def trained_task_scores(trained: TrainedModel, learned: np.ndarray, listings: pd.DataFrame,
                        is_val: np.ndarray) -> dict[str, float]:
    """Validation score of each task the model trained on (accuracy, or R^2 for regression), from its
    own heads, on the run's validation listings."""
    rows = np.flatnonzero(is_val)
    outputs = head_outputs(trained.model, learned[rows])
    scores = {}
    for task in trained.model.heads.tasks:
        labels = encode_labels(task, listings[task.column])[rows]
        observed = observed_mask(task, labels)
        if observed.sum() >= 2:
            scores[task.name] = probe_score(task, outputs[task.name][observed], labels[observed])
    return scores


def feature_sets(learned: np.ndarray, pretrained: np.ndarray, new_task_features: str, fit_rows: np.ndarray,
                 seed: int) -> dict[str, np.ndarray]:
    """The embeddings compared, (L, D) each, keyed by METHODS."""
    features = {"product": new_task_embeddings(learned, pretrained, new_task_features)}
    if new_task_features != "learned":
        features["learned"] = new_task_embeddings(learned, None, "learned")
    features["imagenet"] = np.asarray(pretrained, np.float32)
    dim = learned.shape[1]
    if dim < pretrained.shape[1]:
        pca = PCA(n_components=dim, random_state=seed).fit(pretrained[fit_rows])
        features["imagenet_pca"] = pca.transform(pretrained).astype(np.float32)
    return features


def probe_rows(held: list[HeldOutTask], features: dict[str, np.ndarray], fractions: tuple[float, ...],
               probe: ProbeConfig, seed: int, bar: tqdm | None = None) -> list[dict[str, Any]]:
    """One row per (task, fraction, feature set): the probe's test score."""
    rows = []
    for h in held:
        for fraction, train_rows in nested_subsets(h.pool_rows, fractions, seed).items():
            for method, x in features.items():
                fitted = fit_probe(h.task, x[train_rows], h.labels[train_rows], probe, seed=seed)
                score = probe_score(h.task, fitted.predict(x[h.test_rows]), h.labels[h.test_rows])
                rows.append({"seed": seed, "method": method, "task": h.task.name, "kind": h.task.kind,
                             "fraction": fraction, "n_train": len(train_rows), "score": score})
                if bar is not None:
                    bar.update()
    return rows


def end_to_end_rows(ctx: Context, held: list[HeldOutTask], fractions: tuple[float, ...], config: BuildConfig,
                    seed: int, bar: tqdm | None = None) -> list[dict[str, Any]]:
    """The run's architecture trained end to end on each held-out task alone (``train_baseline``: its attribute
    loss alone), at ``fractions``."""
    listings = ctx.run.listings
    ids = listings["listing_id"].to_numpy()
    rows = []
    for h in held:
        for fraction, train_rows in nested_subsets(h.pool_rows, fractions, seed).items():
            trained = train_baseline(ctx.catalogue.subset(ids[train_rows]), (h.task,), config,
                                     ctx.work_dir / f"e2e-{seed}", ctx.cache_dir, ctx.device, progress=False)
            test_ids, embeddings = model_gallery_embeddings(trained.model, ctx.catalogue.subset(ids[h.test_rows]),
                                                            config, ctx.cache_dir,
                                                            trained.checkpoint["trunk_cache_key"], ctx.device)
            position = {lid: i for i, lid in enumerate(test_ids)}
            output = head_outputs(trained.model, embeddings)[h.task.name][[position[i] for i in ids[h.test_rows]]]
            rows.append({"seed": seed, "method": "end_to_end", "task": h.task.name, "kind": h.task.kind,
                         "fraction": fraction, "n_train": len(train_rows),
                         "score": probe_score(h.task, output, h.labels[h.test_rows]),
                         "seconds": round(trained.seconds, 2)})
            if bar is not None:
                bar.update()
    return rows
