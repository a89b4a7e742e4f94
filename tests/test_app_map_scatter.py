"""AppTest: the Map page's WebGL scatter (ui/scatter_map.py): the binary columns it sends (coordinates once per
run, a colour change only the colour column, a filter only a mask), selections reported as geometry and turned
into listing ids, the hover bridge, a browser reporting missing blobs, and the plotly map without WebGL2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from gallery_core.app import explore, map_selection
from gallery_core.app.scatter_payload import decode_payload
from ui import scatter_map

pytest_plugins = ["conftest_app"]

CHART_KEY = "map_chart"
HOVER_KEY = "map_chart_scatter_hover"


def scatter(at) -> tuple[dict, dict[str, np.ndarray]]:
    """The scatter's header and the blobs this run sent."""
    (element,) = [c for c in at.get("bidi_component") if c.proto.component_name == scatter_map.COMPONENT_NAME]
    return decode_payload(element.proto.bytes)


def hover_bridge(at) -> dict:
    (element,) = [c for c in at.get("bidi_component") if c.proto.component_name == scatter_map.HOVER_NAME]
    return json.loads(element.proto.json)


def report(at, **state) -> None:
    """What the scatter's JS reports (setStateValue), then the rerun it causes."""
    at.session_state[CHART_KEY] = {**at.session_state.get(CHART_KEY, {}), **state}
    at.run()
    assert not at.exception


def listings_of(app_artifacts) -> pd.DataFrame:
    return pd.read_parquet(app_artifacts / "demo" / "listings.parquet")


def test_first_render_sends_every_coordinate_and_the_colour_as_binary(open_page, app_artifacts):
    at = open_page("ui/pages/map.py")
    assert not at.exception
    assert not at.get("plotly_chart")
    header, blobs = scatter(at)
    umap = pd.read_parquet(app_artifacts / "demo" / "umap.parquet")
    assert header["n"] == 40 and set(blobs) == {header["coords"], header["colour"]["key"]}
    xy = blobs[header["coords"]].reshape(-1, 2)
    np.testing.assert_array_equal(xy, umap[["x", "y"]].to_numpy(np.float32))
    assert header["mask"] is None and header["selection"] is None
    # the default colour: a category per listing, the legend's counts covering every listing
    codes = blobs[header["colour"]["key"]]
    assert codes.dtype == np.uint8 and len(codes) == 40
    legend = header["colour"]["legend"]
    assert sum(entry["count"] for entry in legend) == 40
    labels = np.array([entry["label"] for entry in legend])[codes]
    expected = explore.category_labels(listings_of(app_artifacts)["world_region"]).to_numpy()
    assert (labels == expected).all()
    assert all(entry["colour"] == header["colour"]["missing_colour"] for entry in legend if entry["label"] == "(missing)")
    assert "Drawing all 40 matching listings" in " ".join(c.value for c in at.caption)


def test_a_colour_change_sends_only_the_new_colour_column(open_page, app_artifacts):
    at = open_page("ui/pages/map.py")
    first, _ = scatter(at)
    at.selectbox(key="map_colour").set_value("Attribute: price").run()
    assert not at.exception
    header, blobs = scatter(at)
    assert header["coords"] == first["coords"]
    assert set(blobs) == {header["colour"]["key"]}  # no coordinates: the browser holds them
    values = blobs[header["colour"]["key"]]
    prices = listings_of(app_artifacts)["price"].to_numpy(float)
    assert values.dtype == np.float32 and header["colour"]["kind"] == "number"
    np.testing.assert_array_equal(np.isnan(values), np.isnan(prices))
    np.testing.assert_allclose(values[~np.isnan(values)], prices[~np.isnan(prices)], rtol=1e-6)
    assert header["colour"]["missing"] == int(np.isnan(prices).sum())
    # back to the first colour: the browser holds that column too, so nothing but the header goes
    at.selectbox(key="map_colour").set_value("Attribute: world_region").run()
    header, blobs = scatter(at)
    assert header["colour"]["key"] == first["colour"]["key"] and blobs == {}


def test_a_prediction_error_is_a_number_column(open_page):
    at = open_page("ui/pages/map.py")
    at.selectbox(key="map_colour").set_value("Prediction error: price").run()
    header, blobs = scatter(at)
    assert header["colour"]["kind"] == "number" and blobs[header["colour"]["key"]].dtype == np.float32
    assert header["colour"]["label"] == "error of price"


def test_a_filter_sends_only_a_visibility_mask(open_page, app_artifacts):
    listings = listings_of(app_artifacts)
    kept_type = listings["property_type"].value_counts().index[0]
    at = open_page("ui/pages/map.py")
    at.multiselect(key="map_filter_columns").set_value(["property_type"]).run()
    at.multiselect(key="map_filter_property_type").set_value([kept_type]).run()
    assert not at.exception
    header, blobs = scatter(at)
    assert set(blobs) == {header["mask"]}
    visible = np.unpackbits(blobs[header["mask"]])[:40].astype(bool)
    np.testing.assert_array_equal(visible, (listings["property_type"] == kept_type).to_numpy())
    assert f"Drawing all {int(visible.sum())} matching listings" in " ".join(c.value for c in at.caption)


def test_a_box_drawn_on_the_map_selects_its_listings_and_highlights_them(open_page, app_artifacts):
    umap = pd.read_parquet(app_artifacts / "demo" / "umap.parquet")
    x0, y0 = umap["x"].median(), umap["y"].median()
    box = [float(x0), float(y0), float(umap["x"].max()), float(umap["y"].max())]
    inside = (umap["x"] >= box[0]) & (umap["y"] >= box[1])
    at = open_page("ui/pages/map.py")
    report(at, selection={"mode": "box", "box": box, "nonce": 1})
    expected = umap.loc[inside, "listing_id"].tolist()
    assert at.session_state["map_selection"] == expected and expected
    assert at.subheader[0].value == f"Selected listings: {len(expected)}"
    header, blobs = scatter(at)
    assert set(blobs) == {header["selection"]} and header["selected"] == len(expected)
    np.testing.assert_array_equal(np.unpackbits(blobs[header["selection"]])[:40].astype(bool), inside.to_numpy())
    # the same event again (a rerun for something else) does not select anew
    at.session_state["map_selection"] = expected[:1]
    at.run()
    assert at.session_state["map_selection"] == expected[:1]
    assert scatter(at)[0]["selected"] == 1  # a selection set elsewhere is highlighted by its ids


def test_a_selection_rerun_sends_only_its_bits_and_later_reruns_nothing(open_page):
    at = open_page("ui/pages/map.py")
    at.selectbox(key="map_colour").set_value("Attribute: price").run()
    report(at, selection={"mode": "box", "box": [-1e9, -1e9, 1e9, 1e9], "nonce": 1})
    header, blobs = scatter(at)
    # neither coordinates nor a colour column again: one bit per listing, the selection
    assert set(blobs) == {header["selection"]} and blobs[header["selection"]].nbytes == 5  # 40 listings
    at.run()  # a rerun for anything else while the selection is held
    assert scatter(at) == (header | {"blobs": []}, {})


def test_the_page_never_looks_a_selected_id_up_in_the_runs_table(open_page, monkeypatch):
    """At a million listings the run's id -> row dict takes seconds to build: the map reads what it shows
    (the clicked listing, the galleries, the hover strip) by the rows its selection and hover come with."""
    from gallery_core.artifacts.run import Run

    def refused(run, *args):
        raise AssertionError("the Map page looked an id up in Run.row_of_listing")

    monkeypatch.setattr(Run, "row_of_listing", property(refused))
    monkeypatch.setattr(Run, "listing_photos", refused)
    at = open_page("ui/pages/map.py")
    report(at, selection={"mode": "box", "box": [-1e9, -1e9, 1e9, 1e9], "nonce": 1})
    assert at.subheader[0].value == "Selected listings: 40" and len(at.get("page_link")) == 13
    report(at, selection={"mode": "point", "row": 7, "nonce": 2})
    at.session_state[HOVER_KEY] = {"row": 9}
    at.run()
    assert not at.exception and hover_bridge(at)["row"] == 9


def test_a_selection_set_elsewhere_keeps_the_runs_ids_in_their_order(open_page, app_artifacts):
    ids = listings_of(app_artifacts)["listing_id"]
    at = open_page("ui/pages/map.py")
    at.session_state["map_selection"] = [ids[7], "not-a-listing", ids[2]]  # e.g. the plotly map's callback
    at.run()
    assert not at.exception
    assert at.subheader[0].value == "Selected listings: 2"
    assert [link.value for link in at.get("page_link")] == [f"Listing {ids[2]}", f"Listing {ids[7]}", f"Listing {ids[2]}"]
    header, blobs = scatter(at)
    assert np.flatnonzero(np.unpackbits(blobs[header["selection"]])[:40]).tolist() == [2, 7]


def test_a_lasso_and_a_clicked_point_select_and_clear_empties(open_page, app_artifacts):
    umap = pd.read_parquet(app_artifacts / "demo" / "umap.parquet")
    at = open_page("ui/pages/map.py")
    (x0, y0), (x1, y1) = umap[["x", "y"]].min().tolist(), umap[["x", "y"]].max().tolist()
    triangle = [[x0 - 1, y0 - 1], [x1 + 1, y0 - 1], [x0 - 1, y1 + 1]]  # JSON numbers, as the browser sends
    report(at, selection={"mode": "lasso", "polygon": triangle, "nonce": 2})
    inside = map_selection.points_in_polygon(umap[["x", "y"]].to_numpy(np.float32), np.array(triangle))
    assert 0 < inside.sum() < 40
    assert at.session_state["map_selection"] == umap.loc[inside, "listing_id"].tolist()
    report(at, selection={"mode": "point", "row": 5, "nonce": 3})
    assert at.session_state["map_selection"] == [umap.iloc[5]["listing_id"]]
    report(at, selection={"mode": "clear", "nonce": 4})
    assert at.session_state["map_selection"] == []
    header, _ = scatter(at)
    assert header["selection"] is None and header["selected"] == 0
    report(at, selection={"mode": "lasso", "polygon": "not a polygon", "nonce": 5})  # ignored
    assert at.session_state["map_selection"] == []


def test_a_selection_keeps_every_point_and_feeds_the_actions(open_page):
    at = open_page("ui/pages/map.py")
    report(at, selection={"mode": "box", "box": [-1e9, -1e9, 1e9, 1e9], "nonce": 1})
    assert at.subheader[0].value == "Selected listings: 40"
    assert at.get("download_button")[0].proto.label == "Download 40 listings as CSV"
    header, _ = scatter(at)
    assert header["n"] == 40 and header["mask"] is None  # highlighted, not filtered down


def test_a_browser_missing_blobs_gets_them_all_again(open_page):
    at = open_page("ui/pages/map.py")
    at.run()
    assert scatter(at)[1] == {}  # a rerun: the browser holds everything
    report(at, missing={"keys": ["x"], "nonce": 7})
    header, blobs = scatter(at)
    assert set(blobs) == {header["coords"], header["colour"]["key"]}


def test_the_hover_bridge_shows_a_rows_listing(open_page, app_artifacts):
    listings = listings_of(app_artifacts)
    at = open_page("ui/pages/map.py")
    assert hover_bridge(at) == {}
    at.session_state[HOVER_KEY] = {"row": 5}  # what hover.js reports
    at.run()
    data = hover_bridge(at)
    assert data["row"] == 5 and data["listing_id"] == listings.iloc[5]["listing_id"]
    assert data["image"].startswith("data:image/jpeg") and "property_type: " in data["text"]
    for reported in (-1, 40, "5", None, True):
        at.session_state[HOVER_KEY] = {"row": reported}
        at.run()
        assert hover_bridge(at) == {}


def test_without_webgl2_the_page_draws_the_plotly_map(open_page):
    at = open_page("ui/pages/map.py")
    report(at, webgl="none")
    assert at.get("plotly_chart") and not [c for c in at.get("bidi_component")
                                           if c.proto.component_name == scatter_map.COMPONENT_NAME]
    assert "no WebGL2" in at.info[0].value
