"""The Map page's WebGL scatter: a ``st.components.v2`` component drawing every listing with deck.gl.

Its JavaScript is ``ui/components/scatter/dist/scatter.js``, bundled from ``src/`` and deck.gl by
``make scatter`` and committed, so a clone needs no npm and the browser fetches nothing: Streamlit sends the
bundle inline with the element. Python sends binary columns (``gallery_core.app.scatter_payload``): the
coordinates once per run, a colour column once per colour option, a filter as a visibility mask, a
selection as a bit per listing. This session's record of what the browser holds (``<chart key>_sent``)
keeps every later payload down to the blobs it lacks; if the browser reports a blob missing (its module was
reloaded, a message lost), the record is dropped and everything needed goes again.

The component reports a box, lasso or clicked point as geometry (``map_selection``); ``take_events`` turns it
into listing ids in ``st.session_state[selection_key]``, as the plotly chart's callback did. A browser without
WebGL2 reports so, and the page draws the plotly figure instead (``no_webgl``).

Hover: the scatter announces the row under the cursor with a window event; a small bridge component in a
fragment of its own (``hover.js``) reports it, so a hover reruns only that fragment, and shows the photo
strip Python sends back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from gallery_core.app import explore, map_selection
from gallery_core.app.scatter_payload import MapPayload, bits_blob, encode_payload
from ui import loaders

HERE = Path(__file__).resolve().parent
COMPONENT_DIR = HERE / "components" / "scatter"
BUNDLE = COMPONENT_DIR / "dist" / "scatter.js"
COMPONENT_NAME = "gallery_core.map_scatter"
HOVER_NAME = "gallery_core.map_scatter_hover"
HOVER_PHOTOS = 4
HOVER_SIZE = 80

_scatter = st.components.v2.component(
    COMPONENT_NAME,
    html=(COMPONENT_DIR / "scatter.html").read_text(encoding="utf-8"),
    css=(COMPONENT_DIR / "scatter.css").read_text(encoding="utf-8"),
    js=BUNDLE.read_text(encoding="utf-8"),
)
_hover_bridge = st.components.v2.component(
    HOVER_NAME,
    html='<div class="hover-photos" hidden><img alt="photos of the hovered listing"><span></span><small></small></div>',
    # the plotly bridge's box, and its attribute line wrapped to the strip's width (HOVER_PHOTOS x HOVER_SIZE px)
    css=(HERE / "hover_photos.css").read_text(encoding="utf-8")
    + f".hover-photos small {{ display: block; max-width: {HOVER_PHOTOS * HOVER_SIZE}px; font-size: 11px; }}",
    js=(COMPONENT_DIR / "hover.js").read_text(encoding="utf-8"),
)


def _sent_key(chart_key: str) -> str:
    return f"{chart_key}_sent"


def _no_webgl_key(chart_key: str) -> str:
    return f"{chart_key}_no_webgl"


def no_webgl(chart_key: str) -> bool:
    """Whether the browser told the scatter it has no WebGL2 (the page then draws the plotly map)."""
    return bool(st.session_state.get(_no_webgl_key(chart_key)))


def _rows_key(chart_key: str) -> str:
    return f"{chart_key}_selected_rows"


def _handled_key(chart_key: str) -> str:
    return f"{chart_key}_handled"


def take_events(key: loaders.RunKey, filters: explore.Filters, chart_key: str, selection_key: str) -> None:
    """Act on what the scatter reported since the last run (call before reading ``selection_key``): a new
    selection (drawn on the map as it is drawn now: these filters) replaces the listing ids in
    ``st.session_state[selection_key]``; a report of missing blobs drops the record of what was sent; a
    browser without WebGL2 switches the page to the plotly map. Done in the script rather than in the
    component's callbacks so that it reads the same under AppTest, which sets state without callbacks."""
    state = st.session_state.get(chart_key) or {}
    handled = st.session_state.setdefault(_handled_key(chart_key), {})
    if state.get("webgl") == "none":
        st.session_state[_no_webgl_key(chart_key)] = True
    missing = state.get("missing")
    if missing is not None and missing != handled.get("missing"):
        handled["missing"] = missing
        st.session_state.pop(_sent_key(chart_key), None)  # this run sends every blob the map needs
    event = state.get("selection")
    if event is not None and event != handled.get("selection"):
        handled["selection"] = event
        visible = loaders.map_visibility(key, filters)[0]
        rows = map_selection.selected_rows(event, loaders.map_coordinates(key).array, visible)
        if rows is not None:
            ids = loaders.listing_ids(key)[rows].tolist()
            st.session_state[selection_key] = ids
            # the rows beside the very list they came with: neither the page nor the highlight looks an id up
            st.session_state[_rows_key(chart_key)] = (ids, ids, rows)


def current_selection(key: loaders.RunKey, chart_key: str, selection_key: str) -> tuple[list[str], np.ndarray]:
    """The listings of ``st.session_state[selection_key]`` that the run holds, and their rows, in its order.

    The rows of a list ``take_events`` stored are known; a list set elsewhere (the plotly map's callback, a
    test) is looked up once in a vectorised pass and remembered beside it. Never through the run's id -> row
    dict: at a million listings building it takes over a second, and checking 400k ids against it 0.1 s."""
    selected = st.session_state.get(selection_key) or []
    known = st.session_state.get(_rows_key(chart_key))
    if known is not None and known[0] is selected:
        return known[1], known[2]
    rows = loaders.listing_rows(key, list(selected))
    ids = loaders.listing_ids(key)[rows].tolist()
    st.session_state[_rows_key(chart_key)] = (selected, ids, rows)
    return ids, rows


def _noop() -> None:
    """An ``on_<state>_change`` callback is how a v2 component declares a state name."""


def map_payload(key: loaders.RunKey, option: explore.ColourOption, filters: explore.Filters,
                selected_rows: np.ndarray, height: int) -> MapPayload:
    """What the scatter draws: the run's coordinates, the option's colour column, the filters' mask and the
    selected listings (their rows) among those drawn; ``height``: of the plot, in pixels."""
    visible, mask_blob, _ = loaders.map_visibility(key, filters)
    rows = selected_rows if visible is None else selected_rows[visible[selected_rows]]
    selection = None
    if len(rows):
        bits = np.zeros(len(loaders.load_run(key).listings), dtype=bool)
        bits[rows] = True
        selection = bits_blob(bits)
    return MapPayload(loaders.map_coordinates(key), loaders.map_colour_column(key, option.source, option.name),
                      mask_blob, selection, int(len(rows)), extra={"height": height})


def scatter_map(key: loaders.RunKey, option: explore.ColourOption, filters: explore.Filters, chart_key: str,
                selected_rows: np.ndarray, height: int) -> None:
    """Mount the scatter of every listing passing ``filters``, coloured by ``option``, the listings at
    ``selected_rows`` highlighted (``current_selection``); a selection made on it is taken by ``take_events``."""
    payload = map_payload(key, option, filters, selected_rows, height)
    sent = st.session_state.get(_sent_key(chart_key))
    if not sent or sent["coords"] != payload.coordinates.key:
        sent = {"coords": payload.coordinates.key, "keys": set()}
    data, keys = encode_payload(payload, sent["keys"])
    sent["keys"].update(keys)
    st.session_state[_sent_key(chart_key)] = sent
    # the states it reports (read by take_events); a v2 component declares each by a callback
    _scatter(key=chart_key, data=data, on_selection_change=_noop, on_missing_change=_noop, on_webgl_change=_noop)


def hover_data(key: loaders.RunKey, row: object, filters: explore.Filters) -> dict[str, object] | None:
    """What the hover bridge shows for a hovered row: its listing id, key attributes and a strip of its first
    photos; None for anything that is not a row drawn on the map (not an int, out of range, filtered out)."""
    if not isinstance(row, int) or isinstance(row, bool):
        return None
    run = loaders.load_run(key)
    visible = loaders.map_visibility(key, filters)[0]
    if not 0 <= row < len(run.listings) or (visible is not None and not visible[row]):
        return None
    listing = run.listings.iloc[row]
    listing_id = str(listing["listing_id"])
    text = explore.attribute_lines(run.listings.iloc[[row]], explore.key_attribute_columns(run.tasks, run.listings),
                                   separator=" · ")[0]
    return {"row": row, "listing_id": listing_id, "text": text,
            "image": loaders.gallery_strip_uri(key, listing_id, HOVER_PHOTOS, HOVER_SIZE, row)}


@st.fragment
def _hover_fragment(key: loaders.RunKey, filters: explore.Filters, bridge_key: str) -> None:
    # A hover reruns only this fragment: the map and the rest of the page are not rebuilt or resent.
    state = st.session_state.get(bridge_key) or {}
    shown = hover_data(key, state.get("row"), filters) or {}
    _hover_bridge(key=bridge_key, data=shown, height=0, on_row_change=_noop)


def scatter_hover(key: loaders.RunKey, chart_key: str, filters: explore.Filters) -> None:
    """Mount the hover bridge of the scatter whose key is ``chart_key`` (drawn with ``filters``)."""
    _hover_fragment(key, filters, f"{chart_key}_scatter_hover")
