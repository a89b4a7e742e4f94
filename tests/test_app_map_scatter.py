"""AppTest: the Map page's WebGL scatter (ui/scatter_map.py): the binary columns it sends (coordinates once,
a colour change only the colour column, a filter only a mask), selections reported as geometry turned into
listing ids, the hover bridge, and the plotly fallback without WebGL2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from gallery_core.app.scatter_payload import decode_payload
from ui import scatter_map

pytest_plugins = ["conftest_app"]

CHART_KEY = "map_chart"


def scatter(at):
    """The scatter's header and the blobs this run sent."""
    (element,) = [c for c in at.get("bidi_component") if c.proto.component_name == scatter_map.COMPONENT_NAME]
    return decode_payload(element.proto.bytes)


def test_first_render_sends_coordinates_and_colour_as_binary(open_page, app_artifacts):
    at = open_page("ui/pages/map.py")
    assert not at.exception
    header, blobs = scatter(at)
    umap = pd.read_parquet(app_artifacts / "demo" / "umap.parquet")
    assert header["n"] == 40 and set(blobs) == {header["coords"], header["colour"]["key"]}
    xy = blobs[header["coords"]].reshape(-1, 2)
    np.testing.assert_array_equal(xy[:, 0], umap["x"].to_numpy(np.float32))
    assert header["mask"] is None and header["selection"] is None
    assert json.dumps(header)  # the header is JSON; the columns are not
