"""The predict step's pieces: metrics against trivial baselines, and out-of-fold probes for the audit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gallery_core.config import MIN_VALIDATION_LISTINGS, PredictConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.names import (
    class_prob_column,
    oof_p_recorded_column,
    oof_pred_column,
    pred_column,
    prob_column,
)
from gallery_core.pipeline.predict import (
    classification_metrics,
    metrics_table,
    out_of_fold_predictions,
    regression_metrics,
    small_split_warning,
    task_metrics,
)

BINARY = TaskSpec("pool", "pool", "binary")
KIND = TaskSpec("kind", "kind", "multiclass", classes=("hotel", "villa", "hostel"))
PRICE = TaskSpec("price", "price", "regression")


def test_classification_metrics_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    m = classification_metrics(probabilities, labels, train_labels=np.array([0, 0, 0, 1]), n_classes=2)
    assert m["n"] == 3
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["baseline_accuracy"] == pytest.approx(1 / 3)  # the training majority is class 0
    assert m["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3)
    assert m["baseline_log_loss"] == pytest.approx(-(math.log(0.75) + 2 * math.log(0.25)) / 3, rel=1e-5)


def test_a_class_unseen_in_training_costs_a_finite_log_loss():
    m = classification_metrics(np.array([[1.0, 0.0, 0.0]]), np.array([2]), np.array([0, 1]), n_classes=3)
    assert m["accuracy"] == 0 and math.isfinite(m["log_loss"]) and math.isfinite(m["baseline_log_loss"])


def test_regression_metrics_by_hand_and_constant_labels():
    m = regression_metrics(np.array([1.0, 2.0, 5.0]), np.array([1.0, 3.0, 5.0]), train_labels=np.array([2.0, 4.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["baseline_rmse"] == pytest.approx(math.sqrt((4 + 0 + 4) / 3))  # always the training mean, 3
    assert m["r2"] == pytest.approx(1 - 1 / 8)
    assert math.isnan(regression_metrics(np.array([1.0, 2.0]), np.array([3.0, 3.0]), np.array([1.0]))["r2"])


def _probe_data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings where the first dimension decides a binary label and the class of a 3-class one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    binary = (x[:, 0] > 0).astype(np.float32)
    classes = np.digitize(x[:, 0], [-0.5, 0.5]).astype(np.int64)
    return x, binary, classes


def test_out_of_fold_prediction_never_sees_the_listings_own_label():
    x, binary, _ = _probe_data()
    config = PredictConfig(oof_folds=5)
    before = out_of_fold_predictions(BINARY, x, binary, config)
    flipped = binary.copy()
    flipped[7] = 1 - flipped[7]
    after = out_of_fold_predictions(BINARY, x, flipped, config)
    # The listing's own probe never saw its label: its P(1) is unchanged, its P(recorded) is the complement.
    assert after[oof_pred_column("pool")][7] == pytest.approx(before[oof_pred_column("pool")][7])
    p_before, p_after = before[oof_p_recorded_column("pool")][7], after[oof_p_recorded_column("pool")][7]
    assert p_after == pytest.approx(1 - p_before)
    # ... and the probes learn the signal: most listings get P(recorded) > 0.5.
    assert (before[oof_p_recorded_column("pool")] > 0.5).mean() > 0.8


def test_out_of_fold_missing_labels_are_nan_and_multiclass_gives_class_names():
    x, _, classes = _probe_data()
    classes[[3, 4]] = -1  # missing
    out = out_of_fold_predictions(KIND, x, classes, PredictConfig(oof_folds=3))
    pred, p_recorded = out[oof_pred_column("kind")], out[oof_p_recorded_column("kind")]
    assert pred[3] is None and np.isnan(p_recorded[3])
    assert set(pred[np.arange(len(pred)) > 4]) <= set(KIND.classes)
    assert np.nanmin(p_recorded) >= 0 and np.nanmax(p_recorded) <= 1


def test_a_fold_with_one_class_predicts_it_with_certainty():
    x = np.random.default_rng(1).normal(size=(6, 3))
    labels = np.array([0, 0, 0, 0, 0, 1], dtype=np.float32)  # 3 folds: two of them train on class 0 only
    p_recorded = out_of_fold_predictions(BINARY, x, labels, PredictConfig(oof_folds=3))[oof_p_recorded_column("pool")]
    assert np.isfinite(p_recorded).all()
    assert p_recorded[5] == 0.0  # the fold holding the only positive trained on negatives alone


def test_out_of_fold_regression():
    x, _, _ = _probe_data()
    y = (3 * x[:, 0] + 1).astype(np.float32)
    pred = out_of_fold_predictions(PRICE, x, y, PredictConfig(oof_folds=4))[oof_pred_column("price")]
    assert np.corrcoef(pred, y)[0, 1] > 0.95


def _predictions_and_listings(n_val: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    n = 40
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 2, n).astype(float)
    kind = rng.choice(KIND.classes, n)
    price = rng.normal(100, 10, n)
    listings = pd.DataFrame({"listing_id": [f"l{i}" for i in range(n)], "pool": pool, "kind": kind,
                             "price": price})
    predictions = pd.DataFrame({
        prob_column("pool"): np.where(pool == 1, 0.9, 0.1),  # right every time
        pred_column("price"): np.full(n, 100.0),
        **{class_prob_column("kind", c): np.where(kind == c, 0.1, 0.45) for c in KIND.classes},  # always wrong
    })
    is_val = np.arange(n) < n_val
    return predictions, listings, is_val


def test_task_metrics_judge_against_the_trivial_baseline():
    predictions, listings, is_val = _predictions_and_listings(n_val=20)
    pool = task_metrics(BINARY, predictions, listings, is_val)
    assert pool["accuracy"] == 1.0 and pool["beats_baseline"] and pool["primary"] == "accuracy"
    kind = task_metrics(KIND, predictions, listings, is_val)
    assert kind["accuracy"] == 0.0 and not kind["beats_baseline"]
    price = task_metrics(PRICE, predictions, listings, is_val)
    assert price["primary"] == "rmse" and not price["higher_is_better"]
    assert task_metrics(BINARY, predictions, listings, np.zeros(len(listings), bool))["n"] == 0


def test_small_validation_splits_are_flagged_and_big_ones_are_not():
    predictions, listings, is_val = _predictions_and_listings(n_val=5)
    metrics = {t.name: task_metrics(t, predictions, listings, is_val) for t in (BINARY, KIND, PRICE)}
    table = metrics_table(metrics)
    assert list(table["task"]) == ["pool", "kind", "price"] and (table["n_val"] == 5).all()
    assert table["note"].str.contains("too few").all()
    assert f"fewer than {MIN_VALIDATION_LISTINGS}" in small_split_warning(table)
    big = table.assign(n_val=MIN_VALIDATION_LISTINGS)
    assert small_split_warning(big) is None
