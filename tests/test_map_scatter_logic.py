"""The WebGL scatter's Python side without Streamlit: the framed binary payload (gallery_core.app.scatter_payload)
and the selection geometry (gallery_core.app.map_selection)."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_core.app import explore, figures, map_selection
from gallery_core.app.scatter_payload import (
    Blob,
    MapPayload,
    bits_blob,
    colour_column,
    coordinates_blob,
    decode_payload,
    encode_payload,
)


def payload(n: int = 1000, seed: int = 0) -> MapPayload:
    rng = np.random.default_rng(seed)
    numbers = rng.random(n)
    numbers[::7] = np.nan
    colour = explore.MapColour("price", np.full(n, "", dtype=object), numbers=numbers)
    return MapPayload(coordinates_blob(rng.normal(size=n), rng.normal(size=n)), colour_column(colour),
                      bits_blob(rng.random(n) < 0.5), None, 0)


def test_a_payload_round_trips_and_skips_what_the_browser_holds():
    p = payload()
    data, sent = encode_payload(p)
    header, blobs = decode_payload(data)
    assert sent == [p.coordinates.key, p.colour.blob.key, p.mask.key]
    for blob in p.blobs():
        np.testing.assert_array_equal(blobs[blob.key], blob.array.reshape(-1))
        assert header["blobs"][[b.key for b in p.blobs()].index(blob.key)]["offset"] % 8 == 0
    assert header["n"] == 1000 and header["coords"] == p.coordinates.key and header["mask"] == p.mask.key
    # what the browser holds is named, not sent: ~16 bytes a point the first time, a header afterwards
    again, sent_again = encode_payload(p, held=sent)
    assert sent_again == [] and len(again) < 2_000 < 12 * 1000 < len(data)
    assert decode_payload(again)[0]["colour"]["key"] == p.colour.blob.key


def test_blob_keys_follow_content_and_type():
    a = np.arange(10, dtype=np.float32)
    assert Blob.of(a).key == Blob.of(a.copy()).key != Blob.of(a + 1).key
    assert Blob.of(a.view(np.uint32)).key != Blob.of(a).key
    with pytest.raises(ValueError):
        Blob.of(np.arange(3, dtype=np.int64))


def test_bits_are_numpys_packbits():
    mask = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    np.testing.assert_array_equal(bits_blob(mask).array, [0b10000001, 0b10000000])


def test_a_categorical_colour_keeps_the_plotly_maps_legend_and_palette():
    labels = np.array(["10", "2", "(missing)", "2", "(other)", "b"], dtype=object)
    column = colour_column(explore.MapColour("size", labels, categories=labels))
    legend = column.spec["legend"]
    assert [e["label"] for e in legend] == figures.legend_levels(set(labels)) == ["2", "10", "b", "(other)", "(missing)"]
    assert [e["count"] for e in legend] == [2, 1, 1, 1, 1]
    assert legend[-1]["colour"] == legend[-2]["colour"] == column.spec["missing_colour"]
    assert legend[0]["colour"] != legend[1]["colour"]
    np.testing.assert_array_equal(np.array([e["label"] for e in legend])[column.blob.array], labels)


def test_a_number_colour_sends_float32_with_its_range_and_missing_count():
    numbers = np.array([1.0, np.nan, 3.5, -2.0])
    column = colour_column(explore.MapColour("price", np.full(4, "", dtype=object), numbers=numbers))
    assert column.blob.array.dtype == np.float32 and column.spec["domain"] == [-2.0, 3.5]
    assert column.spec["missing"] == 1 and column.spec["kind"] == "number"


def reference_inside(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The even-odd rule one point at a time, in plain Python floats (as the browser's loop does)."""
    out = []
    for px, py in xy.astype(float):
        inside = False
        for i in range(len(polygon)):
            (xi, yi), (xj, yj) = polygon[i], polygon[i - 1]
            if (yi > py) != (yj > py) and px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                inside = not inside
        out.append(inside)
    return np.array(out)


def test_a_lasso_selects_what_the_browsers_loop_selects():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(5000, 2)).astype(np.float32)
    angles = np.sort(rng.random(40)) * 2 * np.pi
    radii = rng.uniform(0.3, 2.0, 40)  # a star-shaped, concave polygon
    polygon = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    inside = map_selection.points_in_polygon(xy, polygon)
    np.testing.assert_array_equal(inside, reference_inside(xy, polygon))
    assert 0 < inside.sum() < len(xy)


def test_a_lasso_through_points_on_its_vertices_rows_selects_what_the_browser_does():
    """Points on the y of a vertex, and horizontal edges: where the bands of points an edge crosses begin and end."""
    xy = np.stack(np.meshgrid(np.arange(12.0), np.arange(12.0)), axis=-1).reshape(-1, 2).astype(np.float32)
    polygon = np.array([[1, 1], [9, 1], [9, 4], [5, 4], [5, 7], [10, 7], [10, 10], [1, 10], [3, 5.5]], dtype=float)
    inside = map_selection.points_in_polygon(xy, polygon)
    np.testing.assert_array_equal(inside, reference_inside(xy, polygon))
    assert 0 < inside.sum() < len(xy)


def test_selected_rows_for_each_kind_of_event():
    xy = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=np.float32)
    visible = np.array([True, True, False, True])
    rows = map_selection.selected_rows
    assert rows({"mode": "box", "box": [3, 3, 0.5, 0.5]}, xy, None).tolist() == [1, 2, 3]  # corners in any order
    assert rows({"mode": "box", "box": [0.5, 0.5, 3, 3]}, xy, visible).tolist() == [1, 3]  # hidden ones never
    assert rows({"mode": "lasso", "polygon": [[-1, -1], [4, -1], [-1, 4]]}, xy, None).tolist() == [0, 1]
    assert rows({"mode": "point", "row": 3}, xy, visible).tolist() == [3]
    assert rows({"mode": "point", "row": 2}, xy, visible).tolist() == []
    assert rows({"mode": "clear"}, xy, None).tolist() == []
    for bad in (None, "box", {}, {"mode": "box", "box": [0, 0, 1]}, {"mode": "box", "box": [0, 0, 1, float("nan")]},
                {"mode": "lasso", "polygon": [[0, 0], [1, 1]]}, {"mode": "lasso", "polygon": [[0, 0], [1, "a"], [2, 2]]},
                {"mode": "point", "row": 4}, {"mode": "point", "row": True}, {"mode": "wave"}):
        assert rows(bad, xy, None) is None, bad
