"""Listing: one listing's gallery, every task's recorded value beside the model's prediction, and which photos
argue against a recorded value. Opens on a listing (the URL's, the last one viewed, else the first).

Addressable by URL: ``/listing?listing=L000123``."""

import numpy as np
import pandas as pd
import streamlit as st

from gallery_core.app import audit, explore
from gallery_core.app.thumbnails import LARGE_THUMBNAIL
from ui import loaders
from ui.navigation import page
from ui.seed_tray import add_catalogue_photos
from ui.widgets import key_attributes_text, photo_evidence_view, require_run, table_height, thumbnail_grid

INPUT_KEY = "listing_input"  # the search box; an exact id opens that listing
MATCH_KEY = "listing_match"
CURRENT_KEY = "listing_current"
QUERY_SEEN_KEY = "listing_query_seen"
SUGGESTIONS = 5
MATCHES_SHOWN = 200
HIGHLIGHT = "background-color: #ffd8d8"

run, key = require_run()
listings = run.listings
key_columns = explore.key_attribute_columns(run.tasks, listings, limit=3)
st.title("Listing")
st.markdown("**One listing's photos, its recorded attributes beside the model's predictions, and which photos "
            "contradict a recorded value.** Search by id or a text attribute (city, property type…), or open a "
            "random listing.")


def open_listing(listing_id: str) -> None:
    """Show this listing and put it in the URL (so the page can be shared or reloaded)."""
    st.session_state[CURRENT_KEY] = listing_id
    st.session_state[QUERY_SEEN_KEY] = listing_id
    st.query_params["listing"] = listing_id


def follow_search() -> None:
    query = st.session_state[INPUT_KEY].strip()
    if query in run.row_of_listing:
        open_listing(query)


def follow_match() -> None:
    if st.session_state.get(MATCH_KEY):
        open_listing(st.session_state[MATCH_KEY])


def open_random() -> None:
    open_listing(str(listings["listing_id"].iloc[np.random.default_rng().integers(len(listings))]))


# The URL's ?listing= wins when the page opens or the URL changes (links from other pages); otherwise the
# listing viewed last in this session, else the first listing: the page never opens empty.
requested = st.query_params.get("listing")
if requested is not None and requested != st.session_state.get(QUERY_SEEN_KEY):
    st.session_state[CURRENT_KEY] = requested.strip()
    st.session_state[QUERY_SEEN_KEY] = requested
if not st.session_state.get(CURRENT_KEY):
    open_listing(str(listings["listing_id"].iloc[0]))
listing_id = st.session_state[CURRENT_KEY]

example_id = listings["listing_id"].iloc[0]
search_column, random_column = st.columns([4, 1], vertical_alignment="bottom")
search_column.text_input("Search listings", key=INPUT_KEY, on_change=follow_search,
                         placeholder=f"an id like {example_id}, or a city, a property type…")
random_column.button("Random listing", on_click=open_random, icon=":material/shuffle:", key="listing_random")
query = st.session_state.get(INPUT_KEY, "").strip()
if query and query not in run.row_of_listing:
    matches = listings[loaders.search_mask(key, query)]
    if matches.empty:
        st.caption(f"No listing matches `{query}`.")
    else:
        shown = matches.head(MATCHES_SHOWN)
        labels = {row["listing_id"]: f"{row['listing_id']} · {key_attributes_text(row, key_columns)}"
                  for _, row in shown.iterrows()}
        st.selectbox(f"{len(matches):,} listings match `{query}`" + (f" (the first {MATCHES_SHOWN} here)"
                     if len(matches) > MATCHES_SHOWN else ""), list(labels), index=None, key=MATCH_KEY,
                     format_func=labels.get, on_change=follow_match, placeholder="Choose one to open it")

if listing_id not in run.row_of_listing:
    st.error(f"Unknown listing id `{listing_id}`: run `{run.name}` has no such listing "
             f"(its ids look like `{example_id}`).")
    close = listings["listing_id"][loaders.search_mask(key, listing_id[-4:])].head(SUGGESTIONS).tolist()
    if close:
        st.caption("Listings with similar ids: " + ", ".join(f"`{c}`" for c in close))
    st.stop()

listing = listings.iloc[run.row_of_listing[listing_id]]
prediction_row = run.predictions.iloc[run.row_of_listing[listing_id]]
gallery = run.listing_photos(listing_id)
split = listing.get("split", "")
st.subheader(f"{listing_id} · {len(gallery)} photos")
st.caption(key_attributes_text(listing, key_columns))
if split == "train":
    st.caption("A training listing: the model saw its labels, so its predictions are optimistic here; the "
               "out-of-fold column comes from probes that never saw them.")
elif split == "val":
    st.caption("A validation listing: the model never trained on its labels.")
thumbnail_grid(run.root, gallery["path"].tolist(), size=LARGE_THUMBNAIL, width=180)


if st.button("Use this gallery as retrieval seeds", on_click=add_catalogue_photos, icon=":material/image_search:",
             args=(str(run.root), gallery["photo_index"].tolist())):
    st.switch_page(page("Retrieve").script)

comparison = audit.listing_comparison(run.tasks, listing, prediction_row, loaders.regression_stds(key))
n_recorded = int((comparison["recorded"] != "—").sum())
st.subheader("Recorded attributes and the model's predictions")
st.markdown(f"The model disagrees with **{int(comparison['disagrees'].sum())}** of the {n_recorded} recorded "
            "attributes (highlighted).")
styled = comparison.style.apply(lambda row: [HIGHLIGHT if row["disagrees"] else ""] * len(row), axis=1)
st.dataframe(styled, hide_index=True, width="stretch", height=table_height(len(comparison)))

audited = audit.audited_tasks(run.tasks, listing, prediction_row)
if audited:
    st.subheader("Which photos argue against a recorded value?")
    evidence_task = st.selectbox("Attribute", audited, key=f"listing_evidence_task_{listing_id}",
                                 help="First: the recorded value the out-of-fold probe doubts most.")
    photo_evidence_view(run, key, evidence_task, listing_id)

task_columns = {t.column for t in run.tasks}
other = [c for c in explore.attribute_columns(listings) if c not in task_columns]
if other:
    with st.expander("Other attributes (not training tasks)"):
        st.dataframe(pd.DataFrame({"attribute": other, "value": [explore.format_value(listing[c]) for c in other]}),
                     hide_index=True, width="stretch")
