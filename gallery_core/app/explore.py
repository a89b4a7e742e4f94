"""Exploring a run's listings: what to colour the map by, attribute filters, search.

Everything here works on the run's tables (``listings``, ``predictions``) and plain arrays, so the app's
pages only pick options and render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from gallery_core.data.tasks import TaskSpec, class_labels, encode_labels, observed_mask
from gallery_core.names import class_prob_column, pred_column, prob_column

# Columns of listings.parquet that describe the run's bookkeeping, not the listing.
BOOKKEEPING_COLUMNS = ("listing_id", "n_photos", "first_photo")
MAX_CATEGORICAL_LEVELS = 12  # numeric columns with at most this many distinct values are categories
MAX_LEGEND_LEVELS = 20  # further categories are drawn as "(other)"
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"
# The map draws every listing; up to this many it also sends each point's key attributes for its hover
# label (~100 bytes a point), beyond it only the id and the colour value (see figures.map_figure).
MAX_DETAILED_HOVER_POINTS = 100_000
RIGHT, WRONG = "right", "wrong"

ColourSource = Literal["attribute", "prediction", "error", "correct"]
SOURCE_LABELS = {"attribute": "Attribute", "prediction": "Prediction", "error": "Prediction error",
                 "correct": "Prediction right/wrong"}
Filters = Mapping[str, Sequence[Any] | tuple[float, float]]


def attribute_columns(listings: pd.DataFrame) -> list[str]:
    """The listing attributes (recorded columns, hold-out columns and the train/val split)."""
    return [c for c in listings.columns if c not in BOOKKEEPING_COLUMNS]


def key_attribute_columns(tasks: Sequence[TaskSpec], listings: pd.DataFrame, limit: int = 6) -> list[str]:
    """A few informative columns to show beside a listing: multiclass tasks first, then regression, binary."""
    order = {"multiclass": 0, "regression": 1, "binary": 2}
    ranked = sorted(tasks, key=lambda t: order[t.kind])
    return [t.column for t in ranked if t.column in listings.columns][:limit]


def is_categorical(values: pd.Series) -> bool:
    """Text, booleans, and numbers with few distinct values are categories; other numbers are continuous."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return values.nunique(dropna=True) <= MAX_CATEGORICAL_LEVELS


def category_labels(values: pd.Series, max_levels: int = MAX_LEGEND_LEVELS) -> pd.Series:
    """Values as strings for a legend: the most frequent ``max_levels`` kept, the rest "(other)",
    missing values "(missing)"; 3.0 and "3" are both "3"."""
    labels = class_labels(values).astype(object)
    counts = labels.value_counts()
    kept = set(counts.index[:max_levels])
    out = labels.where(labels.isin(kept), OTHER_LABEL)
    return out.where(labels.notna(), MISSING_LABEL).astype(str)


def format_value(value: Any) -> str:
    """One attribute value as short text (NaN -> "(missing)", 3.0 -> "3", 0.1234567 -> "0.123")."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING_LABEL
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{value:.3g}"
    return str(value)


def attribute_lines(listings: pd.DataFrame, columns: Sequence[str], separator: str = "<br>") -> np.ndarray:
    """Per listing, "column: value" for each column joined by ``separator`` (an object array of str)."""
    joined = np.full(len(listings), "", dtype=object)
    for i, column in enumerate(columns):
        joined = joined + (separator if i else "") + f"{column}: " + listings[column].map(format_value).to_numpy(dtype=object)
    return joined


# --- colouring the map ---

@dataclass(frozen=True)
class ColourOption:
    source: ColourSource
    name: str  # a listing column (attribute) or a task name (prediction, error)

    @property
    def label(self) -> str:
        """As offered in a list of options: "Prediction error: price"."""
        return f"{SOURCE_LABELS[self.source]}: {self.name}"

    @property
    def short_label(self) -> str:
        """As a legend title or hover line: "price", "predicted price", "error of price", "sea_view predicted"."""
        if self.source == "correct":
            return f"{self.name} predicted"
        return {"attribute": "", "prediction": "predicted ", "error": "error of "}[self.source] + self.name


def colour_options(listings: pd.DataFrame, tasks: Sequence[TaskSpec]) -> list[ColourOption]:
    """Every attribute, every task's prediction and every task's prediction error."""
    return ([ColourOption("attribute", c) for c in attribute_columns(listings)]
            + [ColourOption("prediction", t.name) for t in tasks]
            + [ColourOption("error", t.name) for t in tasks])


def correctness_options(tasks: Sequence[TaskSpec]) -> list[ColourOption]:
    """Whether each classification task's prediction is right (the map offers these after ``colour_options``)."""
    return [ColourOption("correct", t.name) for t in tasks if t.kind != "regression"]


def prediction_values(task: TaskSpec, predictions: pd.DataFrame) -> pd.Series:
    """The model's prediction: P(1) for binary, the class for multiclass, the value for regression."""
    column = prob_column(task.name) if task.kind == "binary" else pred_column(task.name)
    return predictions[column].rename(f"predicted {task.name}")


def prediction_error(task: TaskSpec, listings: pd.DataFrame, predictions: pd.DataFrame) -> pd.Series:
    """How far the model's prediction is from the recorded value (NaN where nothing is recorded).

    Classification: 1 - P(recorded class) from the trained head; regression: |prediction - recorded|.
    """
    labels = encode_labels(task, listings[task.column])
    observed = observed_mask(task, labels)
    error = np.full(len(listings), np.nan)
    if task.kind == "regression":
        error[observed] = np.abs(predictions[pred_column(task.name)].to_numpy(float)[observed] - labels[observed])
    elif task.kind == "binary":
        p1 = predictions[prob_column(task.name)].to_numpy(float)
        p_recorded = np.where(labels == 1, p1, 1 - p1)
        error[observed] = 1 - p_recorded[observed]
    else:
        assert task.classes is not None
        probabilities = predictions[[class_prob_column(task.name, c) for c in task.classes]].to_numpy(float)
        rows = np.flatnonzero(observed)
        error[rows] = 1 - probabilities[rows, labels[rows]]
    return pd.Series(error, index=listings.index, name=f"error of {task.name}")


def prediction_correct(task: TaskSpec, listings: pd.DataFrame, predictions: pd.DataFrame) -> pd.Series:
    """Classification: "right" where the predicted class (P(1) >= 0.5 for binary) is the recorded one, else
    "wrong"; missing where nothing is recorded."""
    if task.kind == "regression":
        raise ValueError(f"task {task.name!r} is a regression: right/wrong needs classes")
    labels = encode_labels(task, listings[task.column])
    observed = observed_mask(task, labels)
    if task.kind == "binary":
        predicted = (predictions[prob_column(task.name)].to_numpy(float) >= 0.5).astype(int)
    else:
        assert task.classes is not None
        predicted = encode_labels(task, predictions[pred_column(task.name)])
    verdict = np.where(predicted == labels, RIGHT, WRONG).astype(object)
    verdict[~observed] = None
    return pd.Series(verdict, index=listings.index, name=f"{task.name} predicted")


def colour_values(option: ColourOption, listings: pd.DataFrame, predictions: pd.DataFrame,
                  tasks: Sequence[TaskSpec]) -> pd.Series:
    """The values a map colour option shows, one per listing."""
    if option.source == "attribute":
        return listings[option.name]
    task = next(t for t in tasks if t.name == option.name)
    if option.source == "prediction":
        return prediction_values(task, predictions)
    if option.source == "correct":
        return prediction_correct(task, listings, predictions)
    return prediction_error(task, listings, predictions)


@dataclass(frozen=True)
class MapColour:
    """What the map needs to colour its points, prepared once per option for every listing.

    ``categories``: legend label per point (categorical colours), else ``numbers``: value per point
    (a colour scale, NaN = missing); ``text``: the value as shown on hover.
    """

    label: str
    text: np.ndarray
    categories: np.ndarray | None = None
    numbers: np.ndarray | None = None

    @property
    def categorical(self) -> bool:
        return self.categories is not None

    def subset(self, rows: np.ndarray) -> MapColour:
        return MapColour(self.label, self.text[rows],
                         None if self.categories is None else self.categories[rows],
                         None if self.numbers is None else self.numbers[rows])


def map_colour(option: ColourOption, listings: pd.DataFrame, predictions: pd.DataFrame,
               tasks: Sequence[TaskSpec], with_text: bool = True) -> MapColour:
    """Colours of every listing for an option: categories for text and few-valued columns, a colour
    scale for other numbers (prediction errors always). ``with_text=False`` leaves ``text`` empty: the WebGL
    scatter shows no per-point text, and formatting it costs a Python call per listing (seconds at 1M)."""
    values = colour_values(option, listings, predictions, tasks)
    text = values.map(format_value).to_numpy(dtype=object) if with_text else np.empty(0, dtype=object)
    if option.source != "error" and is_categorical(values):
        return MapColour(option.short_label, text, categories=category_labels(values).to_numpy(dtype=object))
    return MapColour(option.short_label, text, numbers=pd.to_numeric(values, errors="coerce").to_numpy(float))


# --- filters, search, sampling ---

def column_summary(values: pd.Series, max_options: int = 500) -> dict[str, Any]:
    """What a filter widget needs: {"kind": "categorical", "options": [...]} or
    {"kind": "numeric", "min": .., "max": ..}."""
    if is_categorical(values):
        labels = class_labels(values).dropna()
        options = labels.value_counts().index[:max_options]
        return {"kind": "categorical", "options": sorted(options, key=str)}
    numeric = pd.to_numeric(values, errors="coerce")
    return {"kind": "numeric", "min": float(numeric.min()), "max": float(numeric.max())}


def filter_mask(listings: pd.DataFrame, filters: Filters) -> np.ndarray:
    """Boolean mask of listings that pass every filter.

    A filter is a list of accepted values (compared as text, so 1.0 matches "1") or a (low, high)
    range for a numeric column; an empty list means no restriction. Missing values never pass a filter.
    """
    mask = np.ones(len(listings), dtype=bool)
    for column, accepted in filters.items():
        if column not in listings.columns:
            raise KeyError(f"cannot filter on {column!r}: not a listing column")
        values = listings[column]
        if isinstance(accepted, tuple) and len(accepted) == 2 and not is_categorical(values):
            low, high = accepted
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(float)
            with np.errstate(invalid="ignore"):
                mask &= (numeric >= low) & (numeric <= high)
        elif len(accepted):
            wanted = {str(v) for v in accepted}
            mask &= class_labels(values).isin(wanted).to_numpy()
    return mask


def search_listings(listings: pd.DataFrame, query: str, columns: Sequence[str] | None = None) -> np.ndarray:
    """Listings whose id or any text attribute contains ``query`` (case-insensitive); all if blank."""
    query = query.strip()
    if not query:
        return np.ones(len(listings), dtype=bool)
    columns = list(columns) if columns is not None else ["listing_id", *attribute_columns(listings)]
    mask = np.zeros(len(listings), dtype=bool)
    for column in columns:
        values = listings[column]
        if pd.api.types.is_numeric_dtype(values) and not is_categorical(values):
            continue
        mask |= class_labels(values).str.contains(query, case=False, regex=False, na=False).to_numpy()
    return mask


def selected_listing_ids(selection: Mapping[str, Any] | None) -> list[str]:
    """Listing ids of the points in a plotly selection event (each point's customdata[0] is its id)."""
    if not selection:
        return []
    ids: list[str] = []
    for point in selection.get("points", []):
        custom = point.get("customdata")
        if isinstance(custom, list | tuple) and custom:
            ids.append(str(custom[0]))
        elif isinstance(custom, str):
            ids.append(custom)
    return list(dict.fromkeys(ids))
