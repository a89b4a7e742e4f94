"""AppTest: the Map page (colouring, filters, downsampling, selected galleries)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd

pytest_plugins = ["conftest_app"]


def map_points(at) -> list[dict]:
    """The scatter traces of the page's plotly chart."""
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["data"]


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or {"dtype", "bdata"} (base64 typed array)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def n_points(traces: list[dict]) -> int:
    return sum(len(values(trace["x"])) for trace in traces)


def test_map_draws_every_listing_with_its_id(open_page, app_artifacts):
    at = open_page("ui/pages/map.py")
    assert not at.exception
    traces = map_points(at)
    assert {trace["type"] for trace in traces} == {"scattergl"}
    assert n_points(traces) == 40
    ids = {listing_id for trace in traces for listing_id in trace["customdata"]}
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    assert ids == set(listings["listing_id"])
    assert at.selectbox(key="map_colour").value == "Attribute: world_region"
    legend = {trace["name"] for trace in traces}
    assert legend <= set(listings["world_region"].dropna()) | {"(missing)"}


def test_colouring_by_a_prediction_error_uses_a_colour_scale(open_page):
    at = open_page("ui/pages/map.py")
    at.selectbox(key="map_colour").set_value("Prediction error: price").run()
    assert not at.exception
    traces = map_points(at)
    scaled = [t for t in traces if t["marker"].get("showscale")]
    assert len(scaled) == 1 and values(scaled[0]["marker"]["color"]).dtype.kind == "f"
    assert n_points(traces) == 40


def test_filters_keep_only_matching_listings(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    kept_type = listings["property_type"].value_counts().index[0]
    at = open_page("ui/pages/map.py")
    at.multiselect(key="map_filter_columns").set_value(["property_type"]).run()
    at.multiselect(key="map_filter_property_type").set_value([kept_type]).run()
    assert not at.exception
    traces = map_points(at)
    assert n_points(traces) == int((listings["property_type"] == kept_type).sum())
    assert f"{n_points(traces)} of 40 listings shown" in " ".join(c.value for c in at.caption)


def test_beyond_the_point_limit_the_map_draws_a_sample_and_says_so(open_page):
    at = open_page("ui/pages/map.py")
    at.number_input(key="map_max_points").set_value(15).run()
    assert not at.exception
    assert n_points(map_points(at)) == 15
    assert "random sample of 15 of the 40 matching listings" in at.info[0].value


def test_selected_listings_show_their_galleries(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = open_page("ui/pages/map.py")
    assert "Nothing selected yet" in " ".join(c.value for c in at.caption)
    selected = ["L000002", "L000005"]
    at.session_state["map_selection"] = selected  # what the chart's selection callback stores
    at.run()
    assert not at.exception
    assert at.subheader[0].value == "Selected listings: 2"
    assert [link.value for link in at.get("page_link")] == [f"Listing {i}" for i in selected]
    assert [len(gallery.value) for gallery in at.image] == [int((photos["listing_id"] == i).sum()) for i in selected]
