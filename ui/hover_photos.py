"""Hovering a map point shows that listing's photos next to the cursor.

Plotly's hover label holds only text, and ``st.plotly_chart`` reports no hover events to Python, so a small
``st.components.v2`` component (the "hover bridge", JS in ``hover_photos.js`` beside this file) does both
halves in the browser. Its JS runs in the app page: it finds the chart's plotly graph div by the chart's
key (Streamlit puts ``st-key-<key>`` on a keyed element's container), listens to plotly's
``plotly_hover`` / ``plotly_unhover``, and after a short debounce reports the hovered point's
``customdata`` (its listing id) as the component's state ``listing_id``. That state change reruns only
the fragment holding the bridge; Python answers with the listing's photo strip as a ``data:`` URI in the
bridge's data, and the JS shows it in a floating box near the cursor while that listing is still the one
hovered.

The chart itself stays outside the fragment on purpose: ``st.plotly_chart`` serialises its whole figure to
JSON on every call (the ForwardMsg cache only saves sending it again), which at 500k points would cost each
hover more than everything else; and its selection must rerun the whole page, whose selection list sits
below the map.

Plotly itself emits no hover inside the area of a box or lasso selection (its selection outline takes the
pointer there), so neither its label nor the photos appear there; outside it, both do.

State (``setStateValue``) rather than a trigger value: the hovered listing is a state (it stays the hovered
one until the cursor leaves it), AppTest can set it through ``st.session_state``, and a full rerun while
the cursor rests on a point keeps its photos.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gallery_core.app import explore
from ui import loaders

HERE = Path(__file__).resolve().parent
COMPONENT_NAME = "gallery_core.map_hover_photos"
STATE = "listing_id"  # the component's state (hover_photos.js sets it): the hovered point's id
HOVER_PHOTOS = 4  # a small strip: the first few photos, not the whole gallery
HOVER_SIZE = 80  # px per thumbnail

# Registered once, at import; the JS and CSS are read from our own files and sent inline (a file path is
# only accepted for components of an installed package with an asset_dir).
_bridge = st.components.v2.component(
    COMPONENT_NAME,
    html='<div class="hover-photos" hidden><img alt="photos of the hovered listing"><span></span></div>',
    css=(HERE / "hover_photos.css").read_text(encoding="utf-8"),
    js=(HERE / "hover_photos.js").read_text(encoding="utf-8"),
)


def hover_data(key: loaders.RunKey, listing_id: object, filters: explore.Filters) -> dict[str, str] | None:
    """What the bridge shows for a hovered id: the id and a strip of the listing's first photos as a
    ``data:`` URI; None for anything that is not a point of the map as drawn (no id, an id the run does
    not hold, or a listing the filters leave out, as after a filter change while the old id is still the
    bridge's state)."""
    if not isinstance(listing_id, str):
        return None
    run = loaders.load_run(key)
    row = run.row_of_listing.get(listing_id)
    if row is None or not explore.filter_mask(run.listings.iloc[[row]], filters)[0]:
        return None
    return {"listing_id": listing_id, "image": loaders.gallery_strip_uri(key, listing_id, HOVER_PHOTOS, HOVER_SIZE)}


def _declare_state() -> None:
    """No-op: an ``on_<state>_change`` callback is how a v2 component declares a state name."""


@st.fragment
def _bridge_fragment(key: loaders.RunKey, chart_key: str, filters: explore.Filters, bridge_key: str) -> None:
    # A hover reruns only this fragment: the figure and the rest of the page are not rebuilt or resent.
    state = st.session_state.get(bridge_key) or {}
    shown = hover_data(key, state.get(STATE), filters) or {}
    _bridge(key=bridge_key, data={"chart_key": chart_key, **shown}, height=0, on_listing_id_change=_declare_state)


def hover_photos(key: loaders.RunKey, chart_key: str, filters: explore.Filters) -> None:
    """Mount the hover bridge for the plotly chart whose key is ``chart_key``; its points' ``customdata``
    must be listing ids. ``filters`` are the ones the chart was drawn with."""
    _bridge_fragment(key, chart_key, filters, f"{chart_key}_hover")
