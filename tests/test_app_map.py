"""AppTest: the Map page's plotly map, which a browser without WebGL2 gets instead of the WebGL scatter
(tests/test_app_map_scatter.py): colouring, filters, every listing drawn, selections and their actions, the
hover bridge's photos for a hovered point; and the figure's payload at 200k listings (no server)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
from PIL import Image

from gallery_core.app import explore, figures
from gallery_core.names import pred_column
from ui import hover_photos, loaders
from ui.widgets import SEED_PHOTOS_KEY

pytest_plugins = ["conftest_app"]


def plotly_map(open_page):
    """The Map page in a browser whose scatter reported no WebGL2: the plotly figure."""
    at = open_page("ui/pages/map.py")
    at.session_state["map_chart"] = {"webgl": "none"}  # what the scatter's JS reports
    at.run()
    return at


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
    at = plotly_map(open_page)
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
    at = plotly_map(open_page)
    at.selectbox(key="map_colour").set_value("Prediction error: price").run()
    assert not at.exception
    traces = map_points(at)
    scaled = [t for t in traces if t["marker"].get("showscale")]
    assert len(scaled) == 1 and values(scaled[0]["marker"]["color"]).dtype.kind == "f"
    assert n_points(traces) == 40


def test_filters_keep_only_matching_listings(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    kept_type = listings["property_type"].value_counts().index[0]
    at = plotly_map(open_page)
    at.multiselect(key="map_filter_columns").set_value(["property_type"]).run()
    at.multiselect(key="map_filter_property_type").set_value([kept_type]).run()
    assert not at.exception
    traces = map_points(at)
    assert n_points(traces) == int((listings["property_type"] == kept_type).sum())
    assert f"Drawing all {n_points(traces)} matching listings" in " ".join(c.value for c in at.caption)


def test_colouring_by_a_numeric_attribute_uses_a_continuous_scale(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    at = plotly_map(open_page)
    at.selectbox(key="map_colour").set_value("Attribute: price").run()
    assert not at.exception
    traces = map_points(at)
    (scaled,) = [t for t in traces if t["marker"].get("showscale")]
    colours = values(scaled["marker"]["color"])
    assert colours.dtype == np.float32 and scaled["marker"]["colorscale"]
    np.testing.assert_allclose(np.sort(colours), np.sort(listings["price"].dropna().to_numpy()), rtol=1e-6)
    assert n_points(traces) == 40


def test_colouring_by_right_or_wrong_predictions_gives_categories(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    predictions = pd.read_parquet(app_artifacts / "demo" / "predictions.parquet")
    recorded, predicted = listings["property_type"], predictions[pred_column("property_type")]
    at = plotly_map(open_page)
    at.selectbox(key="map_colour").set_value("Prediction right/wrong: property_type").run()
    assert not at.exception
    traces = {t["name"]: len(values(t["x"])) for t in map_points(at)}
    assert set(traces) <= {"right", "wrong", "(missing)"} and sum(traces.values()) == 40
    assert traces.get("right", 0) == int((recorded == predicted).sum())
    assert traces.get("(missing)", 0) == int(recorded.isna().sum())


def test_the_map_says_it_draws_every_matching_listing(open_page):
    at = plotly_map(open_page)
    assert "Drawing all 40 matching listings" in " ".join(c.value for c in at.caption)


def test_a_selection_keeps_every_point_and_feeds_the_actions(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = plotly_map(open_page)
    assert "Nothing selected yet" in " ".join(c.value for c in at.caption)
    selected = ["L000002", "L000005"]
    at.session_state["map_selection"] = selected  # what the chart's selection callback stores
    at.run()
    assert not at.exception
    assert n_points(map_points(at)) == 40  # highlighted on the map, not filtered down to the selection
    assert at.subheader[0].value == "Selected listings: 2"
    assert at.get("download_button")[0].proto.label == "Download 2 listings as CSV"
    links = [link.value for link in at.get("page_link")]
    assert links == [f"Listing {selected[-1]}"] + [f"Listing {i}" for i in selected]  # beside the map, then below
    galleries = at.image[1:]  # the first is the clicked listing's photo strip beside the map
    assert [len(g.value) for g in galleries] == [int((photos["listing_id"] == i).sum()) for i in selected]

    at.button(key="map_selection_seeds").click().run()
    assert not at.exception
    assert at.title[0].value == "Retrieve"
    if SEED_PHOTOS_KEY in at.session_state:  # handed over, not yet taken
        seeds = photos.set_index("path").loc[at.session_state[SEED_PHOTOS_KEY], "listing_id"]
    else:  # the Retrieve page took them into its seed gallery
        seeds = photos.set_index("photo_index").loc[at.session_state["seed_tray"].photo_indices, "listing_id"]
    assert set(seeds) == set(selected)


def test_a_map_of_200k_listings_is_a_few_megabytes():
    """Every point drawn, coordinates and colours as typed arrays: ~30 bytes a point with an 8-character
    id (so ~30 MB at 1M listings, against Streamlit's 200 MB message cap)."""
    n = 200_000
    rng = np.random.default_rng(0)
    ids = np.array([f"L{i:07d}" for i in range(n)], dtype=object)
    prices = explore.MapColour("price", np.full(n, "", dtype=object), numbers=rng.random(n) * 100)
    fig = figures.map_figure(rng.normal(size=n), rng.normal(size=n), ids, prices)
    assert figures.map_point_count(fig) == n
    payload = figures.map_payload_bytes(fig)
    assert payload < 7_000_000, payload
    assert '"bdata"' in fig.to_json()
    # beyond explore.MAX_DETAILED_HOVER_POINTS no per-point text: the browser writes the id and value
    assert fig.data[0].text is None and "%{customdata}" in fig.data[0].hovertemplate


HOVER_KEY = "map_chart_hover"  # the hover bridge's key: the chart's key + "_hover"


def hover_bridge(at) -> tuple[dict, object]:
    """The data the page gave the hover bridge, and its proto."""
    (bridge,) = at.get("bidi_component")
    assert bridge.proto.component_name == hover_photos.COMPONENT_NAME
    return json.loads(bridge.proto.json), bridge.proto


def strip_width(data_uri: str) -> int:
    header, encoded = data_uri.split(",", 1)
    assert header == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        assert image.height == hover_photos.HOVER_SIZE
        return image.width


def test_the_map_mounts_the_hover_bridge_on_its_chart(open_page):
    at = plotly_map(open_page)
    assert not at.exception
    data, proto = hover_bridge(at)
    assert data == {"chart_key": "map_chart"}  # nothing hovered yet: no photos
    assert "plotly_hover" in proto.js_content and ".hover-photos" in proto.css_content
    assert "hover a point to see its photos" in " ".join(c.value for c in at.caption)


def test_a_hovered_point_gets_its_listings_photo_strip(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = plotly_map(open_page)
    listing_id = "L000005"
    at.session_state[HOVER_KEY] = {"listing_id": listing_id}  # what the bridge's JS reports on a hover
    at.run()
    assert not at.exception
    data, _ = hover_bridge(at)
    assert data["listing_id"] == listing_id and data["chart_key"] == "map_chart"
    n_photos = min(int((photos["listing_id"] == listing_id).sum()), hover_photos.HOVER_PHOTOS)
    assert strip_width(data["image"]) == n_photos * hover_photos.HOVER_SIZE
    # the rest of the page is as before: every point drawn, nothing selected
    assert n_points(map_points(at)) == 40
    assert at.subheader[0].value == "Selected listings: 0"

    at.session_state[HOVER_KEY] = {"listing_id": "L000002"}  # the next point
    at.run()
    assert hover_bridge(at)[0]["listing_id"] == "L000002"


def test_an_unknown_or_filtered_out_hovered_id_is_ignored(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    at = plotly_map(open_page)
    at.session_state[HOVER_KEY] = {"listing_id": "NOT-A-LISTING"}
    at.run()
    assert not at.exception
    assert hover_bridge(at)[0] == {"chart_key": "map_chart"}

    # a listing the filters leave off the map (its id can outlive a filter change as the bridge's state)
    hidden = listings.iloc[0]
    kept_type = next(t for t in listings["property_type"].dropna().unique() if t != hidden["property_type"])
    at.multiselect(key="map_filter_columns").set_value(["property_type"]).run()
    at.multiselect(key="map_filter_property_type").set_value([kept_type]).run()
    at.session_state[HOVER_KEY] = {"listing_id": hidden["listing_id"]}
    at.run()
    assert not at.exception
    assert hover_bridge(at)[0] == {"chart_key": "map_chart"}


def test_hover_data_for_what_the_browser_may_report(app_artifacts):
    """Only a listing id of the run gives photos; whatever else the JS could send (no point, a number, a list)
    gives nothing, without an error."""
    key = loaders.run_key(app_artifacts / "demo")
    for reported in (None, 5, ["L000002"], {"id": "L000002"}, "", "NOT-A-LISTING"):
        assert hover_photos.hover_data(key, reported, {}) is None
    shown = hover_photos.hover_data(key, "L000002", {})
    assert shown is not None and shown["listing_id"] == "L000002" and shown["image"].startswith("data:image/jpeg")
