"""Map: the UMAP projection of every listing, coloured by an attribute, a prediction or its error, drawn by the
WebGL scatter (``ui.scatter_map``; the plotly figure where the browser has no WebGL2); hovering a point shows
a strip of that listing's first photos next to the cursor; the last selected listing's photos stay beside the
map; a box or lasso selection can be downloaded, written as a catalogue or used as seed photos."""

import streamlit as st

from gallery_core.app import explore
from gallery_core.app.figures import MAP_HEIGHT
from ui import loaders
from ui.hover_photos import hover_photos
from ui.scatter_map import current_selection, no_webgl, scatter_hover, scatter_map, take_events
from ui.widgets import (
    attribute_filters,
    key_attributes_text,
    listing_link,
    require_run,
    selection_actions,
    thumbnail_grid,
)

SELECTION_KEY = "map_selection"
CHART_KEY = "map_chart"
GALLERIES_SHOWN = 12
STRIP_PHOTOS = 6
STRIP_SIZE = 96


def remember_selection() -> None:
    """Keep the selected listing ids in the session (they outlive the chart's own state)."""
    event = st.session_state.get(CHART_KEY) or {}
    st.session_state[SELECTION_KEY] = explore.selected_listing_ids(event.get("selection"))


run, key = require_run()
listings = run.listings
st.title("Map")
st.caption("Listings placed by the similarity of their photo galleries: similar galleries lie close. "
           "Pick what to colour by, then hover a point to see its photos, or draw a box or lasso to act on a group.")

options = explore.colour_options(listings, run.tasks) + explore.correctness_options(run.tasks)
labels = [option.label for option in options]
default_column = explore.key_attribute_columns(run.tasks, listings, limit=1)
default_label = explore.ColourOption("attribute", default_column[0]).label if default_column else labels[0]
colour_label = st.selectbox("Colour by", labels, index=labels.index(default_label), key="map_colour",
                            help="Any attribute, the model's prediction of a task, how far that prediction is from "
                                 "the recorded value (1 - p(recorded) for classes, |predicted - recorded| for "
                                 "numbers), or whether a class prediction is right.")
with st.expander("Filters"):
    filters = attribute_filters(key, explore.attribute_columns(listings), "map")

option = options[labels.index(colour_label)]
take_events(key, filters, CHART_KEY, SELECTION_KEY)  # a selection drawn on the scatter, before it is read
webgl = not no_webgl(CHART_KEY)
n_drawn = loaders.map_visibility(key, filters)[2] if webgl else 0
figure = None
if not webgl:  # the browser said it has no WebGL2: today's plotly figure instead of the scatter
    figure, n_drawn = loaders.map_figure(key, option.source, option.name, filters)
if n_drawn == 0:
    st.warning("No listing matches these filters.")
    st.stop()
hover = ("hover a point to see its photos and key attributes" if webgl or n_drawn <= explore.MAX_DETAILED_HOVER_POINTS
         else "hover a point to see its photos, id and colour value (select it for its attributes)")
st.caption(f"Drawing all {n_drawn:,} matching listings, one point each ({len(listings):,} in the run); {hover}.")
if not webgl:
    st.info("This browser has no WebGL2, so the map is drawn with plotly, which is slower with many listings.")

# the selected ids the run holds and their rows: the page reads listings by row, never looks an id up
selected, selected_rows = current_selection(key, CHART_KEY, SELECTION_KEY)
chart, side = st.columns([3, 1])
with chart:
    if webgl:
        scatter_map(key, option, filters, CHART_KEY, selected_rows, MAP_HEIGHT)
    else:
        st.plotly_chart(figure, key=CHART_KEY, on_select=remember_selection, selection_mode=("box", "lasso", "points"),
                        config={"scrollZoom": True, "displaylogo": False})
with side:
    if not selected:
        st.caption("Select points to keep a listing's photos here: a box or lasso, or a click on a point.")
    else:
        focus, focus_row = selected[-1], int(selected_rows[-1])  # the clicked point, or the last of a box/lasso
        listing_link(focus)
        st.caption(key_attributes_text(listings.iloc[focus_row], explore.key_attribute_columns(run.tasks, listings)))
        st.image(loaders.gallery_strip_uri(key, focus, STRIP_PHOTOS, STRIP_SIZE, focus_row))
    # last in the column: the bridges draw nothing in the layout
    if webgl:
        scatter_hover(key, CHART_KEY, filters)
    else:
        hover_photos(key, CHART_KEY, filters)

st.subheader(f"Selected listings: {len(selected):,}")
if not selected:
    st.caption("Nothing selected yet: use the box or lasso tool of the map, or click a point. "
               "The selection stays highlighted on the map; the other listings stay drawn.")
else:
    selection_actions(run, selected, key="map")
    hover_columns = explore.key_attribute_columns(run.tasks, listings)
    if len(selected) > GALLERIES_SHOWN:
        st.caption(f"Showing the galleries of the first {GALLERIES_SHOWN} of {len(selected):,} selected listings.")
    for listing_id, row in zip(selected[:GALLERIES_SHOWN], selected_rows[:GALLERIES_SHOWN].tolist(), strict=True):
        listing = listings.iloc[row]
        info, gallery = st.columns([1, 3])
        with info:
            listing_link(listing_id)
            st.caption(key_attributes_text(listing, hover_columns))
        with gallery:
            thumbnail_grid(run.root, loaders.listing_photo_paths(key, listing_id, row))
