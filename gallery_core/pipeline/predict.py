"""Per-task predictions for every listing, out-of-fold probes for the audit, and validation metrics.

Columns of ``predictions.parquet`` (one row per listing, same order as ``listings.parquet``):
  binary      ``<task>__prob``      P(1) from the trained head
  multiclass  ``<task>__pred``      the argmax class, ``<task>__confidence`` its probability,
              ``<task>__p__<class>`` every class probability
  regression  ``<task>__pred``
and for every task ``<task>__oof_pred`` and ``<task>__oof_p_recorded`` (classification) from a probe
trained on the frozen listing embeddings in k folds: each listing's out-of-fold prediction comes
from a probe that never saw its label, which is what the audit ranks by. Listings without a
recorded value get NaN there.

At scale (500k listings) the step works in chunks: the heads read ``CHUNK_LISTINGS`` listings' photo
embeddings at a time (photos are stored listing by listing, so a chunk is one contiguous slice of
``photo_embeddings.npy``, read with plain file reads by ``NpyRows``: a memory map would leave every page read
in the step's resident set), and each fold's probe trains on at most ``PredictConfig.probe_sample`` labelled
listings (a seeded sample, ``probe_folds``) and predicts its held-out listings a chunk at a time. Below those sizes (the demo)
everything is one chunk and every probe sees all its training rows: the same numbers as before.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from gallery_core.config import MIN_VALIDATION_LISTINGS, PredictConfig
from gallery_core.data.tasks import TaskSpec, encode_labels, observed_mask
from gallery_core.models.encoder import MultiTaskHeads
from gallery_core.names import (
    class_prob_column,
    confidence_column,
    oof_p_recorded_column,
    oof_pred_column,
    pred_column,
    prob_column,
)
from gallery_core.pipeline.embed import mean_per_listing

# Floor on a probability in log losses (and smoothing of the class prior): a confident mistake costs
# -log(1e-7) ~ 16 nats instead of infinity.
PRIOR_SMOOTHING = 1e-7
# A validation metric needs at least this many labelled validation listings (R^2 needs 2, and one listing
# decides a comparison with the baseline by a coin flip); below it the task is not measured.
MIN_MEASURED_LISTINGS = 2
MAX_TASKS_IN_WARNING = 5
# Listings per chunk of head predictions and of probe predictions (the results do not depend on it): at
# ~20 photos a listing and 1,280 dims, 5,000 listings' photo embeddings are ~0.5 GB.
CHUNK_LISTINGS = 5_000
METRICS_TABLE_COLUMNS = ["task", "kind", "metric", "model", "baseline", "beats_baseline", "n_val", "note"]


@torch.no_grad()
def head_predictions(heads: MultiTaskHeads, gallery_embeddings: np.ndarray) -> pd.DataFrame:
    """Every head's prediction for (L, D) gallery embeddings (the unnormalised photo mean)."""
    heads.eval()
    device = next(heads.parameters()).device
    x = torch.from_numpy(gallery_embeddings).to(device)
    columns: dict[str, Any] = {}
    for name, prediction in heads.predict(x).items():
        task = heads.heads[name].task
        out = prediction.float().cpu().numpy()
        if task.kind == "binary":
            columns[prob_column(name)] = out
        elif task.kind == "regression":
            columns[pred_column(name)] = out
        else:
            classes = np.array(task.classes, dtype=object)
            columns[pred_column(name)] = classes[out.argmax(axis=1)]
            columns[confidence_column(name)] = out.max(axis=1)
            for j, c in enumerate(task.classes):
                columns[class_prob_column(name, c)] = out[:, j]
    return pd.DataFrame(columns)


def gallery_embeddings(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int) -> np.ndarray:
    """The heads' input: mean of each listing's raw photo embeddings (L, D), not normalised."""
    return mean_per_listing(photo_embeddings, listing_index, n_listings)


def chunked_head_predictions(heads: MultiTaskHeads, photo_embeddings: np.ndarray, listing_index: np.ndarray,
                             n_listings: int, chunk_listings: int = CHUNK_LISTINGS) -> pd.DataFrame:
    """``head_predictions`` of every listing, ``chunk_listings`` listings at a time: (P, D) photo embeddings
    (an array, or ``NpyRows`` reading them from disk a chunk at a time) and their listing index (P,), which must be sorted (photos stored listing by
    listing, as embed writes them), so each chunk's photos are one contiguous slice."""
    listing_index = np.asarray(listing_index)
    if len(listing_index) and np.any(np.diff(listing_index) < 0):
        raise ValueError("photos must be stored listing by listing (listing_index sorted) to predict in chunks")
    bounds = np.searchsorted(listing_index, np.arange(0, n_listings + chunk_listings, chunk_listings))
    tables = []
    for chunk, start in enumerate(range(0, n_listings, chunk_listings)):
        stop = min(start + chunk_listings, n_listings)
        lo, hi = bounds[chunk], bounds[chunk + 1]
        pooled = gallery_embeddings(photo_embeddings[lo:hi], listing_index[lo:hi] - start, stop - start)  # (chunk, D)
        tables.append(head_predictions(heads, pooled))
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


class _Probe(ClassifierMixin, BaseEstimator):
    """Logistic regression on frozen embeddings; a training fold with a single class predicts that class
    with certainty (a rare class can be absent from a fold of a small catalogue)."""

    def __init__(self, C: float = 1.0, max_iter: int = 300) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probe:
        self.classes_ = np.unique(y)
        self.model_ = (DummyClassifier(strategy="prior") if len(self.classes_) < 2 else
                       LogisticRegression(C=self.C, max_iter=self.max_iter)).fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def probe_folds(n_observed: int, config: PredictConfig, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probes' k-fold split of ``n_observed`` labelled listings: (train, test) positions per fold, train
    cut to a seeded sample of ``config.probe_sample`` positions (sorted) where the fold has more. Every
    labelled listing is in exactly one test fold; its probe never saw its label."""
    folds = KFold(n_splits=min(config.oof_folds, n_observed), shuffle=True, random_state=seed)
    split = []
    for fold, (train, test) in enumerate(folds.split(np.zeros((n_observed, 1)))):
        if len(train) > config.probe_sample:
            train = np.sort(np.random.default_rng([seed, fold]).choice(train, config.probe_sample, replace=False))
        split.append((train, test))
    return split


def out_of_fold_predictions(task: TaskSpec, embeddings: np.ndarray, labels: np.ndarray,
                            config: PredictConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """k-fold probes (logistic / ridge) on frozen (L, D') embeddings (an array or ``NpyRows``: read a chunk at a
    time); NaN where there is no recorded label, and everywhere when fewer than 2 listings have one (no probe
    can be trained and tested)."""
    n = len(labels)
    observed = np.flatnonzero(observed_mask(task, labels))
    oof_pred = np.full(n, np.nan) if task.kind != "multiclass" else np.full(n, None, dtype=object)
    if len(observed) < 2:
        columns = {oof_pred_column(task.name): oof_pred}
        return columns if task.kind == "regression" else columns | {oof_p_recorded_column(task.name): np.full(n, np.nan)}
    y = labels[observed] if task.kind == "regression" else labels[observed].astype(np.int64)  # (n_observed,)
    # Classification: P(class) for every class the task has, 0 for a class absent from a fold's training rows.
    proba = np.zeros((len(observed), task.output_dim if task.kind == "multiclass" else 2))
    regression = np.zeros(len(observed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The number of unique classes")
        for train, test in probe_folds(len(observed), config, seed):
            x_train = np.asarray(embeddings[observed[train]])  # (n_train, D'): at most probe_sample rows
            probe = Ridge(alpha=1.0) if task.kind == "regression" else _Probe()
            probe.fit(x_train, y[train])
            del x_train
            for start in range(0, len(test), CHUNK_LISTINGS):
                rows = test[start:start + CHUNK_LISTINGS]
                x = np.asarray(embeddings[observed[rows]])  # (chunk, D')
                if task.kind == "regression":
                    regression[rows] = probe.predict(x)
                else:
                    proba[np.ix_(rows, probe.classes_)] = probe.predict_proba(x)
    if task.kind == "regression":
        oof_pred[observed] = regression
        return {oof_pred_column(task.name): oof_pred}
    p_recorded = np.full(n, np.nan)
    p_recorded[observed] = proba[np.arange(len(observed)), y]
    if task.kind == "binary":
        oof_pred[observed] = proba[:, 1]
    else:
        oof_pred[observed] = np.array(task.classes, dtype=object)[proba.argmax(axis=1)]
    return {oof_pred_column(task.name): oof_pred, oof_p_recorded_column(task.name): p_recorded}


# --- metrics against trivial baselines (scikit-learn's metrics and dummy estimators) ---

def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, train_labels: np.ndarray,
                           n_classes: int) -> dict[str, float]:
    """probabilities (N, C), labels (N,) int; baseline = the training set's majority class / class prior."""
    classes = np.arange(n_classes)
    no_features = np.zeros((len(train_labels), 1))
    majority = DummyClassifier(strategy="most_frequent").fit(no_features, train_labels)
    # The prior over every class, smoothed so that a class unseen in training costs a finite log loss.
    prior = np.bincount(train_labels, minlength=n_classes) + PRIOR_SMOOTHING
    prior = np.tile(prior / prior.sum(), (len(labels), 1))
    floored = np.clip(probabilities, PRIOR_SMOOTHING, 1.0)
    floored /= floored.sum(axis=1, keepdims=True)
    return {
        "n": len(labels),
        "accuracy": float(accuracy_score(labels, probabilities.argmax(axis=1))),
        "baseline_accuracy": float(accuracy_score(labels, majority.predict(np.zeros((len(labels), 1))))),
        "log_loss": float(log_loss(labels, floored, labels=classes)),
        "baseline_log_loss": float(log_loss(labels, prior, labels=classes)),
    }


def regression_metrics(predictions: np.ndarray, labels: np.ndarray, train_labels: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2; baseline = predicting the training mean. R^2 is NaN for constant labels."""
    no_features = np.zeros((len(train_labels), 1))
    baseline = DummyRegressor(strategy="mean").fit(no_features, train_labels).predict(np.zeros((len(labels), 1)))
    constant = bool(np.all(labels == labels[0]))
    return {
        "n": len(labels),
        "rmse": float(root_mean_squared_error(labels, predictions)),
        "baseline_rmse": float(root_mean_squared_error(labels, baseline)),
        "mae": float(mean_absolute_error(labels, predictions)),
        "baseline_mae": float(mean_absolute_error(labels, baseline)),
        "r2": float("nan") if constant else float(r2_score(labels, predictions)),
    }


def task_metrics(task: TaskSpec, predictions: pd.DataFrame, listings: pd.DataFrame, is_val: np.ndarray,
                 ) -> dict[str, Any]:
    """Validation metrics of one task beside its trivial baseline; ``primary`` says which number decides.

    A task that cannot be measured (fewer than ``MIN_MEASURED_LISTINGS`` labelled validation listings, no
    labelled training listing for the baseline) gets ``{"kind", "n", "note"}`` and no numbers; no value
    is ever NaN (an R^2 of constant labels is left out, with a note)."""
    labels = encode_labels(task, listings[task.column])
    observed = observed_mask(task, labels)
    val, train = observed & is_val, observed & ~is_val
    n_val, n_train = int(val.sum()), int(train.sum())
    if n_val == 0:
        return {"kind": task.kind, "n": 0, "note": "no labelled validation listings"}
    if n_val < MIN_MEASURED_LISTINGS:
        return {"kind": task.kind, "n": n_val, "note": f"not measured: only {n_val} labelled validation listing, "
                f"too few for a metric (it needs {MIN_MEASURED_LISTINGS})"}
    if n_train == 0:
        return {"kind": task.kind, "n": n_val, "note": "not measured: no labelled training listing to form the "
                "trivial baseline from"}
    if task.kind == "regression":
        metrics = regression_metrics(predictions[pred_column(task.name)].to_numpy()[val], labels[val], labels[train])
        if not math.isfinite(metrics["r2"]):
            del metrics["r2"]
            metrics["note"] = "r2 left out: the validation labels are all equal"
        metrics.update(kind="regression", primary="rmse", higher_is_better=False,
                       beats_baseline=metrics["rmse"] < metrics["baseline_rmse"])
        return _finite(metrics)
    if task.kind == "binary":
        p1 = predictions[prob_column(task.name)].to_numpy()[val]
        probabilities = np.stack([1 - p1, p1], axis=1)
        n_classes = 2
    else:
        probabilities = predictions[[class_prob_column(task.name, c) for c in task.classes]].to_numpy()[val]
        n_classes = len(task.classes)
    metrics = classification_metrics(probabilities, labels[val].astype(np.int64), labels[train].astype(np.int64),
                                     n_classes)
    metrics.update(kind=task.kind, primary="accuracy", higher_is_better=True,
                   beats_baseline=metrics["accuracy"] > metrics["baseline_accuracy"])
    return _finite(metrics)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without non-finite numbers (metrics.json holds no NaN); a task whose primary metric or
    baseline is not finite is not measured."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if not bad:
        return metrics
    primary = metrics["primary"]
    if primary in bad or f"baseline_{primary}" in bad:
        return {"kind": metrics["kind"], "n": metrics["n"], "note": f"not measured: {', '.join(bad)} not finite"}
    note = f"{', '.join(bad)} left out: not finite"
    return {k: v for k, v in metrics.items() if k not in bad} | \
        {"note": "; ".join(filter(None, (metrics.get("note"), note)))}


def predict_all(heads: MultiTaskHeads, tasks: tuple[TaskSpec, ...], listings: pd.DataFrame,
                photo_embeddings: np.ndarray, listing_index: np.ndarray, probe_embeddings: np.ndarray,
                config: PredictConfig, seed: int = 0, progress: bool = True,
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions table (listing_id + columns above) and validation metrics per task.

    ``probe_embeddings`` (L, D'): what the out-of-fold probes read, the run's embedding for new tasks
    (a probe stands for a task learned afresh from the embedding, as a user's own would be)."""
    predictions = chunked_head_predictions(heads, photo_embeddings, listing_index, len(listings))
    is_val = (listings["split"] == "val").to_numpy()
    oof_columns: dict[str, np.ndarray] = {}
    for task in tqdm(tasks, desc="out-of-fold probes", disable=not progress):
        labels = encode_labels(task, listings[task.column])
        oof_columns.update(out_of_fold_predictions(task, probe_embeddings, labels, config, seed))
    predictions = pd.concat([predictions, pd.DataFrame(oof_columns)], axis=1)
    predictions.insert(0, "listing_id", listings["listing_id"].to_numpy())
    metrics = {task.name: task_metrics(task, predictions, listings, is_val) for task in tasks}
    return predictions, metrics


def metrics_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per measured task: kind, primary metric, model value, baseline value, beats baseline, and a
    note where the validation split is too small for the numbers to mean much (or a number was left out).

    Tasks that could not be measured have no row (no number to show); ``table.attrs["not_measured"]``
    holds {task: why}, which ``small_split_warning`` reports."""
    rows, not_measured = [], {}
    for name, m in metrics.items():
        if "primary" not in m:
            not_measured[name] = m.get("note", "not measured")
            continue
        primary = m["primary"]
        small = f"only {m['n']} validation listings: too few to judge" if m["n"] < MIN_VALIDATION_LISTINGS else ""
        rows.append({"task": name, "kind": m["kind"], "metric": primary, "model": m[primary],
                     "baseline": m[f"baseline_{primary}"], "beats_baseline": m["beats_baseline"], "n_val": m["n"],
                     "note": "; ".join(filter(None, (small, m.get("note", ""))))})
    table = pd.DataFrame(rows, columns=METRICS_TABLE_COLUMNS)
    table.attrs["not_measured"] = not_measured
    return table


def small_split_warning(table: pd.DataFrame) -> str | None:
    """Plain sentences when some tasks' validation metrics rest on too few listings or some tasks could not
    be measured at all (``metrics_table``'s ``attrs["not_measured"]``), else None."""
    sentences = []
    small = table[table["n_val"] < MIN_VALIDATION_LISTINGS]
    if not small.empty:
        sentences.append(
            f"{len(small)} of {len(table)} tasks have fewer than {MIN_VALIDATION_LISTINGS} labelled validation "
            f"listings (as few as {int(small['n_val'].min())}): their validation metrics are noise, not evidence "
            "that the model works or fails. Label more listings to judge them.")
    not_measured = table.attrs.get("not_measured") or {}
    if not_measured:
        shown = "; ".join(f"{name}: {why}" for name, why in list(not_measured.items())[:MAX_TASKS_IN_WARNING])
        more = f"; and {len(not_measured) - MAX_TASKS_IN_WARNING} more" if len(not_measured) > MAX_TASKS_IN_WARNING \
            else ""
        sentences.append(f"{len(not_measured)} task(s) have no validation metric ({shown}{more}).")
    return " ".join(sentences) or None

