"""Do a listing's photos agree with its recorded attributes?

Two views:

* ``suspicion_table``: for one task, every labelled listing ranked by how strongly its photos
  contradict the recorded value, from the out-of-fold probes (a probe that never saw the listing's
  label): classification 1 - P(recorded); regression |recorded - oof| / std of the oof residuals.
* ``listing_comparison``: for one listing, every task's recorded value beside the trained model's
  prediction, with disagreements flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from gallery_core.app.explore import format_value
from gallery_core.data.tasks import TaskSpec, class_labels, encode_labels, observed_mask
from gallery_core.names import (
    class_prob_column,
    oof_p_recorded_column,
    oof_pred_column,
    pred_column,
    prob_column,
)

# A regression prediction disagrees when it is this many residual stds from the recorded value.
REGRESSION_DISAGREEMENT_STDS = 2.0
TOP_CLASSES_SHOWN = 3
# Above these, a listing counts as suspicious: P(recorded) < 0.2, or 2 residual stds away.
CLASSIFICATION_SUSPICION_THRESHOLD = 0.8
REGRESSION_SUSPICION_THRESHOLD = 2.0


def suspicion_threshold(task: TaskSpec) -> float:
    return REGRESSION_SUSPICION_THRESHOLD if task.kind == "regression" else CLASSIFICATION_SUSPICION_THRESHOLD


def residual_std(task: TaskSpec, listings: pd.DataFrame, predictions: pd.DataFrame, column: str) -> float:
    """Standard deviation of (recorded - ``predictions[column]``) over the listings with a recorded value."""
    labels = encode_labels(task, listings[task.column])
    predicted = pd.to_numeric(predictions[column], errors="coerce").to_numpy(float)
    usable = observed_mask(task, labels) & ~np.isnan(predicted)
    if usable.sum() < 2:
        return float("nan")
    return float(np.std(labels[usable] - predicted[usable]))


def suspicion_table(task: TaskSpec, listings: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Labelled listings, most suspicious first: listing_id, split, recorded, photos_say, suspicion.

    ``photos_say`` is the out-of-fold prediction (P(1) for binary, a class for multiclass, a value for
    regression); for classification ``p_recorded`` is the out-of-fold probability of the recorded value.
    """
    labels = encode_labels(task, listings[task.column])
    observed = observed_mask(task, labels)
    oof = predictions[oof_pred_column(task.name)]
    table = pd.DataFrame({"listing_id": listings["listing_id"].to_numpy(),
                          "split": listings["split"].to_numpy() if "split" in listings else "",
                          "recorded": class_labels(listings[task.column]).to_numpy()
                          if task.kind != "regression" else listings[task.column].to_numpy(float),
                          "photos_say": oof.to_numpy()})
    if task.kind == "regression":
        std = residual_std(task, listings, predictions, oof_pred_column(task.name))
        scale = std if std > 0 else 1.0
        table["suspicion"] = np.abs(labels - pd.to_numeric(oof, errors="coerce").to_numpy(float)) / scale
    else:
        table["p_recorded"] = predictions[oof_p_recorded_column(task.name)].to_numpy(float)
        table["suspicion"] = 1.0 - table["p_recorded"]
    table = table[observed & table["suspicion"].notna().to_numpy()]
    table = table.sort_values("suspicion", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _top_classes(task: TaskSpec, prediction_row: pd.Series) -> str:
    assert task.classes is not None
    probabilities = sorted(((float(prediction_row[class_prob_column(task.name, c)]), c) for c in task.classes), reverse=True)
    return ", ".join(f"{c} {p:.2f}" for p, c in probabilities[:TOP_CLASSES_SHOWN])


def listing_comparison(tasks: Sequence[TaskSpec], listing: pd.Series, prediction_row: pd.Series,
                       regression_stds: dict[str, float]) -> pd.DataFrame:
    """One row per task: recorded value, the model's prediction (probabilities for classes), the
    out-of-fold check and whether the prediction disagrees with the recorded value.

    ``regression_stds``: residual std of each regression task's predictions (see ``residual_std``).
    """
    rows = []
    for task in tasks:
        recorded_raw = listing[task.column]
        recorded_code = encode_labels(task, pd.Series([recorded_raw]))[0]
        is_recorded = bool(observed_mask(task, np.array([recorded_code]))[0])
        row = {"task": task.name, "kind": task.kind, "recorded": format_value(recorded_raw) if is_recorded else "—"}
        if task.kind == "binary":
            p1 = float(prediction_row[prob_column(task.name)])
            row["predicted"] = str(int(p1 >= 0.5))
            row["probabilities"] = f"P(1) = {p1:.2f}"
            disagrees = is_recorded and int(p1 >= 0.5) != int(recorded_code)
        elif task.kind == "multiclass":
            row["predicted"] = str(prediction_row[pred_column(task.name)])
            row["probabilities"] = _top_classes(task, prediction_row)
            disagrees = is_recorded and row["predicted"] != class_labels(pd.Series([recorded_raw]))[0]
        else:
            predicted = float(prediction_row[pred_column(task.name)])
            row["predicted"] = format_value(predicted)
            std = regression_stds.get(task.name, float("nan"))
            row["probabilities"] = f"± {std:.3g} (residual std)" if np.isfinite(std) else ""
            disagrees = bool(is_recorded and np.isfinite(std) and std > 0
                             and abs(predicted - float(recorded_code)) > REGRESSION_DISAGREEMENT_STDS * std)
        row["out-of-fold check"] = _out_of_fold_text(task, prediction_row) if is_recorded else ""
        row["disagrees"] = bool(disagrees)
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "kind", "recorded", "predicted", "probabilities",
                                       "out-of-fold check", "disagrees"])


def _out_of_fold_text(task: TaskSpec, prediction_row: pd.Series) -> str:
    """What the photos-only probe (which never saw this listing's label) says."""
    if task.kind == "regression":
        value = prediction_row.get(oof_pred_column(task.name), np.nan)
        return "" if pd.isna(value) else f"predicts {float(value):.3g}"
    p_recorded = prediction_row.get(oof_p_recorded_column(task.name), np.nan)
    return "" if pd.isna(p_recorded) else f"P(recorded) = {float(p_recorded):.2f}"


SELECTION_PREFIX = "audit_"


def suggested_value(task: TaskSpec, recorded: object, photos_say: object) -> str:
    """The value the out-of-fold probe suggests instead of the recorded one (``suspicion_table``'s columns),
    as text for a correction; "" when it agrees with the recorded value or says nothing."""
    if pd.isna(photos_say):
        return ""
    if task.kind == "regression":
        return np.format_float_positional(round(float(photos_say), 2), trim="-")  # 248.55, never 2.5e+02
    suggestion = str(int(float(photos_say) >= 0.5)) if task.kind == "binary" else str(photos_say)
    return "" if suggestion == str(recorded) else suggestion


def selection_extra(suspects: pd.DataFrame) -> pd.DataFrame:
    """The audit's columns of ``suspicion_table`` rows (and a ``decision`` column if present) for a selection's
    CSV: listing_id and ``audit_rank``, ``audit_recorded``, ``audit_photos_say``, ``audit_suspicion``, ..."""
    columns = [c for c in ("rank", "recorded", "photos_say", "p_recorded", "suspicion", "decision") if c in suspects]
    return suspects[["listing_id", *columns]].rename(columns={c: SELECTION_PREFIX + c for c in columns})


def audited_tasks(tasks: Sequence[TaskSpec], listing: pd.Series, prediction_row: pd.Series) -> list[str]:
    """The tasks with a recorded value for this listing (the ones photo evidence can be asked about): the
    classification tasks by out-of-fold P(recorded), most doubted first, then the regression tasks."""
    doubt = []
    for order, task in enumerate(tasks):
        code = encode_labels(task, pd.Series([listing[task.column]]))[0]
        if not observed_mask(task, np.array([code]))[0]:
            continue
        p_recorded = (prediction_row.get(oof_p_recorded_column(task.name), np.nan)
                      if task.kind != "regression" else np.nan)
        doubt.append((pd.isna(p_recorded), 0.0 if pd.isna(p_recorded) else float(p_recorded), order, task.name))
    return [name for *_, name in sorted(doubt)]
