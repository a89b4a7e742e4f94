"""Listing: one listing's gallery and, for every task, the recorded value beside the model's prediction.

Addressable by URL: ``/listing?listing=L000123``."""

import pandas as pd
import streamlit as st

from gallery_core.app import audit, explore
from gallery_core.app.thumbnails import LARGE_THUMBNAIL
from ui import loaders
from ui.navigation import page
from ui.seed_tray import add_catalogue_photos
from ui.widgets import require_run, table_height, thumbnail_grid

INPUT_KEY = "listing_input"
QUERY_SEEN_KEY = "listing_query_seen"
SUGGESTIONS = 5
HIGHLIGHT = "background-color: #ffd8d8"

run, key = require_run()
listings = run.listings
st.title("Listing")

# The URL's ?listing= fills the input when the page opens or the URL changes (links from other pages);
# typing an id updates the URL.
requested = st.query_params.get("listing")
if INPUT_KEY not in st.session_state or (requested is not None and requested != st.session_state.get(QUERY_SEEN_KEY)):
    st.session_state[INPUT_KEY] = requested or ""
    st.session_state[QUERY_SEEN_KEY] = requested


def follow_input() -> None:
    value = st.session_state[INPUT_KEY].strip()
    st.query_params["listing"] = value
    st.session_state[QUERY_SEEN_KEY] = value


example_id = listings["listing_id"].iloc[0]
st.text_input("Listing id", key=INPUT_KEY, on_change=follow_input, placeholder=f"e.g. {example_id}")
listing_id = st.session_state.get(INPUT_KEY, "").strip()
if not listing_id:
    st.info("Enter a listing id, or open a listing from the Map, Retrieve or Audit page.")
    st.stop()
if listing_id not in run.row_of_listing:
    st.error(f"Unknown listing id `{listing_id}`: run `{run.name}` has no such listing "
             f"(its ids look like `{example_id}`).")
    close = listings["listing_id"][loaders.search_mask(key, listing_id[-4:])].head(SUGGESTIONS).tolist()
    if close:
        st.caption("Listings with similar ids: " + ", ".join(f"`{c}`" for c in close))
    st.stop()

listing = listings.iloc[run.row_of_listing[listing_id]]
gallery = run.listing_photos(listing_id)
split = listing.get("split", "")
st.subheader(f"{listing_id} · {len(gallery)} photos")
if split == "train":
    st.caption("A training listing: the model saw its labels, so its predictions are optimistic here; the "
               "out-of-fold column comes from probes that never saw them.")
elif split == "val":
    st.caption("A validation listing: the model never trained on its labels.")
thumbnail_grid(run.root, gallery["path"].tolist(), size=LARGE_THUMBNAIL, width=180)


if st.button("Use this gallery as retrieval seeds", on_click=add_catalogue_photos, icon=":material/image_search:",
             args=(str(run.root), gallery["photo_index"].tolist())):
    st.switch_page(page("Retrieve").script)

comparison = audit.listing_comparison(run.tasks, listing, run.predictions.iloc[run.row_of_listing[listing_id]],
                                      loaders.regression_stds(key))
n_recorded = int((comparison["recorded"] != "—").sum())
st.subheader("Recorded attributes and the model's predictions")
st.markdown(f"The model disagrees with **{int(comparison['disagrees'].sum())}** of the {n_recorded} recorded "
            "attributes (highlighted).")
styled = comparison.style.apply(lambda row: [HIGHLIGHT if row["disagrees"] else ""] * len(row), axis=1)
st.dataframe(styled, hide_index=True, width="stretch", height=table_height(len(comparison)))

task_columns = {t.column for t in run.tasks}
other = [c for c in explore.attribute_columns(listings) if c not in task_columns]
if other:
    with st.expander("Other attributes (not training tasks)"):
        st.dataframe(pd.DataFrame({"attribute": other, "value": [explore.format_value(listing[c]) for c in other]}),
                     hide_index=True, width="stretch")
