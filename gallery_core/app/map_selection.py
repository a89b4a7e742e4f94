"""Which listings a selection on the Map page's WebGL scatter holds.

The scatter reports a selection as geometry in the map's coordinates, never as a list of points (a box
around half a million listings is four numbers): ``{"mode": "box", "box": [x0, y0, x1, y1]}``,
``{"mode": "lasso", "polygon": [[x, y], ...]}``, ``{"mode": "point", "row": i}`` or ``{"mode": "clear"}``.
The tests here are the ones the browser draws its highlight with (``ui/components/scatter/src/geometry.js``),
in the same float64 arithmetic on the same float32 coordinates, so both agree point for point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_POLYGON_VERTICES = 5_000  # a lasso drawn by hand has a few hundred; more is not a lasso


def points_in_box(xy: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Rows of ``xy`` ((N, 2)) inside the closed box (x0, y0, x1, y1), as a boolean mask."""
    x0, y0, x1, y1 = box
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Rows of ``xy`` inside ``polygon`` ((V, 2), implicitly closed) by the even-odd rule, as a boolean mask.

    An edge from (xi, yi) to (xj, yj) is crossed by the rightward ray of the points with min(yi, yj) <= y <
    max(yi, yj); with the candidates (those inside the polygon's bounding box) sorted by y, those are one slice
    of them, found by bisection, so each edge costs its own band of points rather than every candidate (a lasso
    of hundreds of vertices around half a million points: hundreds of passes over all of them otherwise)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    candidates = np.flatnonzero(points_in_box(xy, (*polygon.min(axis=0), *polygon.max(axis=0))))
    order = np.argsort(xy[candidates, 1], kind="stable")
    candidates = candidates[order]
    px, py = xy[candidates, 0].astype(np.float64), xy[candidates, 1].astype(np.float64)
    inside = np.zeros(len(candidates), dtype=bool)
    for i in range(len(polygon)):
        (xi, yi), (xj, yj) = polygon[i], polygon[i - 1]
        if yj == yi:
            continue  # a horizontal edge is never crossed
        lo, hi = np.searchsorted(py, [min(yi, yj), max(yi, yj)], side="left")
        # the same expression, in the same order, as geometry.js (float64 both sides)
        inside[lo:hi] ^= px[lo:hi] < (xj - xi) * (py[lo:hi] - yi) / (yj - yi) + xi
    mask = np.zeros(len(xy), dtype=bool)
    mask[candidates[inside]] = True
    return mask


def _finite(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, list | tuple) or len(values) != n:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def selected_rows(event: Mapping[str, Any] | None, xy: np.ndarray, visible: np.ndarray | None) -> np.ndarray | None:
    """The rows (ascending) a scatter selection event holds among the ``visible`` ones (None: all visible);
    an empty array for "clear"; None for anything that is not a well-formed selection (ignored, as a
    browser could send anything)."""
    if not isinstance(event, Mapping):
        return None
    mode = event.get("mode")
    if mode == "clear":
        return np.zeros(0, dtype=np.int64)
    if mode == "point":
        row = event.get("row")
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(xy):
            return None
        if visible is not None and not visible[row]:
            return np.zeros(0, dtype=np.int64)
        return np.array([row], dtype=np.int64)
    if mode == "box":
        box = _finite(event.get("box"), 4)
        if box is None:
            return None
        mask = points_in_box(xy, (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])))
    elif mode == "lasso":
        polygon = event.get("polygon")
        if not isinstance(polygon, list | tuple) or not 3 <= len(polygon) <= MAX_POLYGON_VERTICES:
            return None
        vertices = [_finite(p, 2) for p in polygon]
        if any(v is None for v in vertices):
            return None
        mask = points_in_polygon(xy, np.array(vertices))
    else:
        return None
    if visible is not None:
        mask &= visible
    return np.flatnonzero(mask)
