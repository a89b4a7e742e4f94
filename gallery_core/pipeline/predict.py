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
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
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


@torch.no_grad()
def head_predictions(heads: MultiTaskHeads, gallery_embeddings: np.ndarray) -> pd.DataFrame:
    """Every head's prediction for (L, D) gallery embeddings (the unnormalised photo mean)."""
    heads.eval()
    device = next(heads.parameters()).device
    x = torch.from_numpy(gallery_embeddings).to(device)
    columns: dict[str, Any] = {}
    for name, head in heads.heads.items():
        task = head.task
        out = head.predict(x).float().cpu().numpy()
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


def out_of_fold_predictions(task: TaskSpec, embeddings: np.ndarray, labels: np.ndarray,
                            config: PredictConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """k-fold probes (logistic / ridge) on frozen embeddings; NaN where there is no recorded label."""
    n = len(labels)
    observed = np.flatnonzero(observed_mask(task, labels))
    oof_pred = np.full(n, np.nan) if task.kind != "multiclass" else np.full(n, None, dtype=object)
    p_recorded = np.full(n, np.nan)
    folds = KFold(n_splits=min(config.oof_folds, len(observed)), shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(observed):
        fit_idx, held_idx = observed[fit_rows], observed[held_rows]
        x_fit, y_fit = embeddings[fit_idx], labels[fit_idx]
        if task.kind == "regression":
            probe = Ridge(alpha=1.0).fit(x_fit, y_fit)
            oof_pred[held_idx] = probe.predict(embeddings[held_idx])
            continue
        y_fit = y_fit.astype(np.int64)
        present = np.unique(y_fit)
        if len(present) < 2:  # a fold with one class: predict it with certainty
            proba = np.zeros((len(held_idx), task.output_dim if task.kind == "multiclass" else 2))
            proba[:, present[0]] = 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.filterwarnings("ignore", message="The number of unique classes")
                probe = LogisticRegression(C=1.0, max_iter=300).fit(x_fit, y_fit)
            proba = np.zeros((len(held_idx), task.output_dim if task.kind == "multiclass" else 2))
            proba[:, probe.classes_] = probe.predict_proba(embeddings[held_idx])
        recorded = labels[held_idx].astype(np.int64)
        p_recorded[held_idx] = proba[np.arange(len(held_idx)), recorded]
        if task.kind == "binary":
            oof_pred[held_idx] = proba[:, 1]
        else:
            oof_pred[held_idx] = np.array(task.classes, dtype=object)[proba.argmax(axis=1)]
    out = {oof_pred_column(task.name): oof_pred}
    if task.kind != "regression":
        out[oof_p_recorded_column(task.name)] = p_recorded
    return out


# --- metrics against trivial baselines ---

def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, train_labels: np.ndarray,
                           n_classes: int) -> dict[str, float]:
    """probabilities (N, C), labels (N,) int; baseline = the training set's majority class / class prior."""
    eps = 1e-7
    prior = np.bincount(train_labels, minlength=n_classes).astype(float)
    prior = (prior + eps) / (prior + eps).sum()
    majority = int(prior.argmax())
    p_true = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1.0)
    return {
        "n": len(labels),
        "accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
        "baseline_accuracy": float((labels == majority).mean()),
        "log_loss": float(-np.log(p_true).mean()),
        "baseline_log_loss": float(-np.log(prior[labels]).mean()),
    }


def regression_metrics(predictions: np.ndarray, labels: np.ndarray, train_labels: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2; baseline = predicting the training mean."""
    mean = float(train_labels.mean())
    residual = predictions - labels
    ss_tot = float(((labels - labels.mean()) ** 2).sum())
    return {
        "n": len(labels),
        "rmse": float(np.sqrt((residual ** 2).mean())),
        "baseline_rmse": float(np.sqrt(((labels - mean) ** 2).mean())),
        "mae": float(np.abs(residual).mean()),
        "baseline_mae": float(np.abs(labels - mean).mean()),
        "r2": float(1 - (residual ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
    }


def task_metrics(task: TaskSpec, predictions: pd.DataFrame, listings: pd.DataFrame, is_val: np.ndarray,
                 ) -> dict[str, Any]:
    """Validation metrics of one task beside its trivial baseline; ``primary`` says which number decides."""
    labels = encode_labels(task, listings[task.column])
    observed = observed_mask(task, labels)
    val, train = observed & is_val, observed & ~is_val
    if val.sum() == 0:
        return {"kind": task.kind, "n": 0, "note": "no labelled validation listings"}
    if task.kind == "regression":
        metrics = regression_metrics(predictions[pred_column(task.name)].to_numpy()[val], labels[val], labels[train])
        metrics.update(kind="regression", primary="rmse", higher_is_better=False,
                       beats_baseline=metrics["rmse"] < metrics["baseline_rmse"])
        return metrics
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
    return metrics


def predict_all(heads: MultiTaskHeads, tasks: tuple[TaskSpec, ...], listings: pd.DataFrame,
                photo_embeddings: np.ndarray, listing_index: np.ndarray, probe_embeddings: np.ndarray,
                config: PredictConfig, seed: int = 0, progress: bool = True,
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions table (listing_id + columns above) and validation metrics per task.

    ``probe_embeddings`` (L, D'): what the out-of-fold probes read, the run's embedding for new tasks
    (a probe stands for a task learned afresh from the embedding, as a user's own would be)."""
    pooled = gallery_embeddings(photo_embeddings, listing_index, len(listings))
    predictions = head_predictions(heads, pooled)
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
    """One row per task: kind, primary metric, model value, baseline value, beats baseline, and a note
    where the validation split is too small for the numbers to mean much."""
    rows = []
    for name, m in metrics.items():
        if "primary" not in m:
            continue
        primary = m["primary"]
        note = (f"only {m['n']} validation listings: too few to judge" if m["n"] < MIN_VALIDATION_LISTINGS else "")
        rows.append({"task": name, "kind": m["kind"], "metric": primary, "model": m[primary],
                     "baseline": m[f"baseline_{primary}"], "beats_baseline": m["beats_baseline"], "n_val": m["n"],
                     "note": note})
    return pd.DataFrame(rows)


def small_split_warning(table: pd.DataFrame) -> str | None:
    """A plain sentence when some tasks' validation metrics rest on too few listings, else None."""
    small = table[table["n_val"] < MIN_VALIDATION_LISTINGS]
    if small.empty:
        return None
    return (f"{len(small)} of {len(table)} tasks have fewer than {MIN_VALIDATION_LISTINGS} labelled validation "
            f"listings (as few as {int(small['n_val'].min())}): their validation metrics are noise, not evidence "
            "that the model works or fails. Label more listings to judge them.")

