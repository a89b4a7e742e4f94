"""Plotly figures of a run: the 2-D map, training curves, validation metrics against baselines.

Plain functions from tables to ``go.Figure``; the app only displays them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from gallery_core.app.explore import MISSING_LABEL, OTHER_LABEL, MapColour

MAP_HEIGHT = 620
GREY = "#bbbbbb"
PALETTE = qualitative.Plotly + qualitative.Dark24


def _marker_size(n_points: int) -> int:
    return 7 if n_points <= 2_000 else 5 if n_points <= 20_000 else 3 if n_points <= 200_000 else 2


def map_figure(x: np.ndarray, y: np.ndarray, listing_ids: Sequence[str], colour: MapColour,
               hover_text: np.ndarray | None = None) -> go.Figure:
    """WebGL scatter of every listing given; each point's customdata is its listing id (for selections).

    ``colour``: the points' colours (``explore.MapColour``): a legend entry per category (missing ones
    grey) or a colour bar. ``hover_text``: further hover lines per point ("a: 1<br>b: 2"); without it the
    hover label is built in the browser from the id and the colour value, so a point costs no text.

    Sized for up to ~1M points: coordinates and colour values are float32 arrays, which plotly sends as
    base64 typed arrays ("bdata", ~5.3 bytes per value), so a point costs ~16 bytes plus its id as JSON
    text (see ``map_payload_bytes``). Per-point strings are joined with vectorised object-array additions.
    """
    ids = np.asarray(listing_ids, dtype=object)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)  # (N,), (N,)
    text = None
    if hover_text is not None:
        text = ("<b>" + ids + "</b><br>" + colour.label + ": " + np.asarray(colour.text, dtype=object)
                + "<br>" + np.asarray(hover_text, dtype=object))
    size = _marker_size(len(x))

    def trace(rows: np.ndarray, name: str, marker: dict, value: str, **extra) -> go.Scattergl:
        # ``value``: how the browser writes the colour value when the points carry no hover text
        template = "%{text}<extra></extra>" if text is not None else \
            "<b>%{customdata}</b><br>" + colour.label + ": " + value + "<extra></extra>"
        return go.Scattergl(x=x[rows], y=y[rows], mode="markers", name=name, customdata=ids[rows],
                            text=None if text is None else text[rows], hovertemplate=template,
                            marker={"size": size, **marker}, unselected={"marker": {"opacity": 0.25}},
                            selected={"marker": {"opacity": 1.0}}, **extra)

    fig = go.Figure()
    if colour.categorical:
        labels = colour.categories
        for i, level in enumerate(legend_levels(pd.Series(labels).value_counts().index)):
            grey = level in GREY_LEVELS
            fig.add_trace(trace(np.flatnonzero(labels == level), level,
                                {"color": GREY if grey else PALETTE[i % len(PALETTE)]}, level))
    else:
        numbers = np.asarray(colour.numbers, dtype=np.float32)  # (N,)
        known = ~np.isnan(numbers)
        if (~known).any():
            fig.add_trace(trace(np.flatnonzero(~known), MISSING_LABEL, {"color": GREY}, MISSING_LABEL))
        rows = np.flatnonzero(known)
        fig.add_trace(trace(rows, colour.label, {"color": numbers[rows], "colorscale": "Viridis", "showscale": True,
                                                 "colorbar": {"title": {"text": colour.label}}},
                            "%{marker.color:.4g}", showlegend=False))
    fig.update_layout(height=MAP_HEIGHT, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="select",
                      legend={"itemsizing": "constant", "title": {"text": colour.label}}, uirevision="map")
    fig.update_xaxes(showticklabels=False, title_text="UMAP 1", zeroline=False)
    fig.update_yaxes(showticklabels=False, title_text="UMAP 2", zeroline=False, scaleanchor="x", scaleratio=1)
    return fig


def map_payload_bytes(fig: go.Figure) -> int:
    """Bytes of the figure as JSON, as ``st.plotly_chart`` sends it to the browser (plotly's own encoder,
    numpy arrays as base64 typed arrays); compare with Streamlit's ``server.maxMessageSize`` (200 MB)."""
    return len(fig.to_json(validate=False).encode())


def map_point_count(fig: go.Figure) -> int:
    """How many points the figure's traces draw."""
    return sum(len(trace.x) for trace in fig.data)


GREY_LEVELS = (OTHER_LABEL, MISSING_LABEL)


def legend_levels(labels: Iterable[str]) -> list[str]:
    """A categorical map's legend order (the Map page's plotly figure and its WebGL scatter share it): the
    categories in natural order ("2" before "10"), then "(other)" and "(missing)", which are drawn grey."""
    present = list(labels)
    levels = sorted((lv for lv in present if lv not in GREY_LEVELS), key=_natural_key)
    return levels + [lv for lv in GREY_LEVELS if lv in present]


def _natural_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


# --- training history ---

def history_frame(history: Sequence[dict[str, Any]], field: str) -> pd.DataFrame:
    """Long table (epoch, task, value) of a per-task field of the training log, e.g. "task_weights"."""
    rows = [{"epoch": entry["epoch"], "task": task, "value": value}
            for entry in history for task, value in entry.get(field, {}).items()]
    return pd.DataFrame(rows, columns=["epoch", "task", "value"])


def history_series(history: Sequence[dict[str, Any]]) -> list[str]:
    """Names of everything with a per-task loss or weight in the log (tasks and any extra objectives)."""
    names: dict[str, None] = {}
    for entry in history:
        for field in ("train_task_losses", "val_task_losses", "task_weights"):
            names.update(dict.fromkeys(entry.get(field, {})))
    return list(names)


def total_loss_figure(history: Sequence[dict[str, Any]]) -> go.Figure:
    epochs = [entry["epoch"] for entry in history]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=[e.get("train_loss") for e in history], mode="lines+markers",
                             name="training loss"))
    fig.add_trace(go.Scatter(x=epochs, y=[e.get("val_objective") for e in history], mode="lines+markers",
                             name="validation objective"))
    fig.update_layout(title="Total loss", xaxis_title="epoch", yaxis_title="loss", height=360,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return _whole_epochs(fig, len(epochs))


def _whole_epochs(fig: go.Figure, n_epochs: int) -> go.Figure:
    """Epoch ticks at whole numbers."""
    fig.update_xaxes(tick0=1, dtick=max(1, round(n_epochs / 10)))
    return fig


def per_task_figure(history: Sequence[dict[str, Any]], field: str, title: str, tasks: Sequence[str] | None = None,
                    log_y: bool = True) -> go.Figure:
    """One line per task of a per-task field ("train_task_losses", "val_task_losses", "task_weights")."""
    frame = history_frame(history, field)
    if tasks is not None:
        frame = frame[frame["task"].isin(tasks)]
    if log_y:
        frame = frame[frame["value"] > 0]
    fig = go.Figure()
    for i, (task, rows) in enumerate(frame.groupby("task", sort=False)):
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows["value"], mode="lines+markers", name=task,
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    fig.update_layout(title=title, height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis_title="epoch",
                      yaxis_title=field.replace("_", " "), yaxis_type="log" if log_y else "linear",
                      legend_title_text="task")
    return _whole_epochs(fig, len(history))


# --- validation metrics ---

def classification_metrics_figure(table: pd.DataFrame) -> go.Figure:
    """Accuracy of each classification task beside its majority-class baseline."""
    rows = table[table["kind"] != "regression"]
    fig = go.Figure([go.Bar(name="model", x=rows["task"], y=rows["model"]),
                     go.Bar(name="majority-class baseline", x=rows["task"], y=rows["baseline"], marker_color=GREY)])
    fig.update_layout(barmode="group", title="Validation accuracy (higher is better)", yaxis_range=[0, 1],
                      height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def regression_metrics_figure(table: pd.DataFrame) -> go.Figure:
    """RMSE of each regression task divided by the RMSE of predicting the training mean (< 1 beats it)."""
    rows = table[table["kind"] == "regression"]
    ratio = rows["model"] / rows["baseline"].where(rows["baseline"] > 0)
    fig = go.Figure([go.Bar(name="model RMSE / baseline RMSE", x=rows["task"], y=ratio)])
    fig.add_hline(y=1.0, line_dash="dash", line_color="grey", annotation_text="mean-prediction baseline")
    fig.update_layout(title="Validation RMSE relative to the baseline (lower is better)", height=380,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
