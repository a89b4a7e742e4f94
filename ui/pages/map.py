"""Map: the UMAP projection of the listings, coloured by an attribute, prediction or prediction error;
a box or lasso selection shows the selected listings' galleries."""

import streamlit as st

from gallery_core.app import explore
from ui import loaders
from ui.widgets import attribute_filters, key_attributes_text, listing_link, require_run, thumbnail_grid

SELECTION_KEY = "map_selection"
CHART_KEY = "map_chart"
GALLERIES_SHOWN = 12


def remember_selection() -> None:
    """Keep the selected listing ids in the session (they outlive the chart's own state)."""
    event = st.session_state.get(CHART_KEY) or {}
    st.session_state[SELECTION_KEY] = explore.selected_listing_ids(event.get("selection"))


run, key = require_run()
listings = run.listings
st.title("Map")
st.caption("Listings placed by the similarity of their photo galleries (UMAP of the gallery embeddings). "
           "Draw a box or lasso to see the selected listings' photos.")

options = explore.colour_options(listings, run.tasks)
labels = [option.label for option in options]
default_column = explore.key_attribute_columns(run.tasks, listings, limit=1)
default_label = explore.ColourOption("attribute", default_column[0]).label if default_column else labels[0]
left, right = st.columns([3, 1])
colour_label = left.selectbox("Colour by", labels, index=labels.index(default_label), key="map_colour")
max_points = right.number_input("Most points drawn", min_value=10, max_value=500_000,
                                value=explore.DEFAULT_MAX_MAP_POINTS, step=5_000, key="map_max_points",
                                help="Beyond this many listings the map draws a fixed random sample, "
                                     "so the page stays responsive in the browser.")
with st.expander("Filters"):
    filters = attribute_filters(key, explore.attribute_columns(listings), "map")

option = options[labels.index(colour_label)]
figure, n_matching, n_shown = loaders.map_figure(key, option.source, option.name, filters, int(max_points))
if n_matching == 0:
    st.warning("No listing matches these filters.")
    st.stop()
if n_shown < n_matching:
    st.info(f"Showing a random sample of {n_shown:,} of the {n_matching:,} matching listings (the map sends at "
            f"most {int(max_points):,} points to the browser; raise the limit above to draw more).")
else:
    st.caption(f"{n_matching:,} of {len(listings):,} listings shown.")

hover_columns = explore.key_attribute_columns(run.tasks, listings)
st.plotly_chart(figure, key=CHART_KEY, on_select=remember_selection, selection_mode=("box", "lasso", "points"),
                config={"scrollZoom": True, "displaylogo": False})

selected = [i for i in st.session_state.get(SELECTION_KEY, []) if i in run.row_of_listing]
st.subheader(f"Selected listings: {len(selected)}")
if not selected:
    st.caption("Nothing selected yet: use the box or lasso tool of the map (or click a point).")
else:
    if len(selected) > GALLERIES_SHOWN:
        st.caption(f"Showing the galleries of the first {GALLERIES_SHOWN} of {len(selected)} selected listings.")
    for listing_id in selected[:GALLERIES_SHOWN]:
        listing = listings.iloc[run.row_of_listing[listing_id]]
        info, gallery = st.columns([1, 3])
        with info:
            listing_link(listing_id)
            st.caption(key_attributes_text(listing, hover_columns))
        with gallery:
            thumbnail_grid(run.root, run.listing_photos(listing_id)["path"].tolist())
