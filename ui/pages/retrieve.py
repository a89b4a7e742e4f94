"""Retrieve: build a seed gallery from catalogue photos and uploads; see the listings whose galleries
are most similar to it."""

import math

import numpy as np
import streamlit as st

from gallery_core.app import explore
from gallery_core.app.thumbnails import SMALL_THUMBNAIL, data_uri, make_thumbnail
from gallery_core.data.decode import PhotoError
from gallery_core.data.uploads import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_COUNT,
    UploadError,
    check_upload,
    check_uploads,
    format_bytes,
)
from gallery_core.search.photo_search import similar_listings, similar_photos
from gallery_core.search.seed_gallery import MAX_SEED_PHOTOS, SeedLimitError, UploadedSeed
from ui import loaders
from ui.seed_tray import add_catalogue_photos, get_tray, pop_problems, report_problems
from ui.widgets import attribute_filters, key_attributes_text, listing_link, require_run, thumbnail_grid

LISTINGS_PER_PAGE = 4
PHOTOS_PER_ROW = 8
RESULTS_PER_ROW = 4
STRIP_PHOTOS = 3
UPLOAD_ROUND_KEY = "retrieve_upload_round"

run, key = require_run()
tray = get_tray(str(run.root))
listings, photos = run.listings, run.photos
key_columns = explore.key_attribute_columns(run.tasks, listings, limit=4)
run_root = str(run.root)


st.title("Retrieve")
st.caption("Pick photos of catalogue listings and/or upload photos: together they form a seed gallery, and the "
           "listings whose galleries are most similar to it come first.")
tray_area = st.container()
results_area = st.container()

st.divider()
st.subheader("Add seed photos")
browse_tab, upload_tab = st.tabs(["Browse the catalogue", "Upload photos"])

with browse_tab:
    query = st.text_input("Search listings", key="retrieve_search",
                          placeholder="a listing id or an attribute value, e.g. villa")
    matches = np.flatnonzero(loaders.search_mask(key, query))
    n_pages = max(1, math.ceil(len(matches) / LISTINGS_PER_PAGE))
    page = st.number_input(f"Page (of {n_pages:,})", min_value=1, max_value=n_pages, value=1,
                           key=f"retrieve_page_{query}")
    st.caption(f"{len(matches):,} listings match.")
    for row in matches[(page - 1) * LISTINGS_PER_PAGE:page * LISTINGS_PER_PAGE]:
        listing = listings.iloc[row]
        gallery = run.listing_photos(listing["listing_id"])
        heading, add_all = st.columns([4, 1])
        heading.markdown(f"**{listing['listing_id']}** · {key_attributes_text(listing, key_columns)}")
        add_all.button(f"Add all {len(gallery)}", key=f"add_listing_{listing['listing_id']}", on_click=add_catalogue_photos,
                       args=(run_root, gallery["photo_index"].tolist()))
        for start in range(0, len(gallery), PHOTOS_PER_ROW):
            for column, photo in zip(st.columns(PHOTOS_PER_ROW), gallery.iloc[start:start + PHOTOS_PER_ROW].itertuples(),
                                     strict=False):
                in_tray = photo.photo_index in tray.photo_indices
                column.image(loaders.thumbnail_uri(photo.path, SMALL_THUMBNAIL, run_root), width="stretch")
                column.button("In tray" if in_tray else "Add", key=f"add_photo_{photo.photo_index}", disabled=in_tray,
                              on_click=add_catalogue_photos, args=(run_root, [photo.photo_index]), width="stretch")

with upload_tab:
    round_no = st.session_state.setdefault(UPLOAD_ROUND_KEY, 0)
    files = st.file_uploader(f"Your photos: JPEG or PNG, up to {format_bytes(MAX_UPLOAD_BYTES)} each, at most "
                             f"{MAX_UPLOAD_COUNT} at a time", accept_multiple_files=True, key=f"seed_upload_{round_no}")
    if files:
        accepted, errors = check_uploads([(f.name, f.getvalue()) for f in files])
        if accepted:
            try:
                with st.spinner("Embedding the photos with the trained encoder…"):
                    embeddings = run.embed_uploads([upload.data for upload in accepted])
                for upload, embedding in zip(accepted, embeddings, strict=True):
                    tray.add_upload(upload.digest, UploadedSeed(upload.name, make_thumbnail(upload.data, SMALL_THUMBNAIL),
                                                                embedding))
            except (PhotoError, SeedLimitError) as err:
                errors.append(str(err))
        report_problems(errors)
        st.session_state[UPLOAD_ROUND_KEY] = round_no + 1  # a fresh, empty uploader
        st.rerun()

with tray_area:
    for message in pop_problems():
        st.error(message)
    st.subheader(f"Seed gallery: {len(tray)} photo(s)")
    if tray.is_empty:
        st.info(f"Empty. Add photos of catalogue listings or upload your own below (at most {MAX_SEED_PHOTOS}).")
    else:
        items = [("photo", index) for index in tray.photo_indices] + [("upload", digest) for digest in tray.uploads]
        for start in range(0, len(items), PHOTOS_PER_ROW):
            for column, (kind, item) in zip(st.columns(PHOTOS_PER_ROW), items[start:start + PHOTOS_PER_ROW], strict=False):
                if kind == "photo":
                    photo = photos.iloc[item]
                    column.image(loaders.thumbnail_uri(photo["path"], SMALL_THUMBNAIL, run_root),
                                 caption=photo["listing_id"], width="stretch")
                    column.button("Remove", key=f"remove_photo_{item}", on_click=tray.remove_photo, args=(item,),
                                  width="stretch")
                else:
                    column.image(data_uri(tray.uploads[item].thumbnail), caption=tray.uploads[item].name,
                                 width="stretch")
                    column.button("Remove", key=f"remove_upload_{item}", on_click=tray.remove_upload, args=(item,),
                                  width="stretch")
        st.button("Clear the seed gallery", on_click=tray.clear, key="retrieve_clear")

with results_area:
    if not tray.is_empty:
        st.subheader("Most similar listings")
        left, right = st.columns(2)
        k = left.slider("How many listings", 1, 50, 12, key="retrieve_k")
        exclude_seed_listings = right.checkbox("Leave out the listings the seed photos come from", value=True,
                                               key="retrieve_exclude")
        with st.expander("Filter the results by attributes"):
            filters = attribute_filters(key, explore.attribute_columns(listings), "retrieve")
        seed = run.seed_vector(photo_indices=tray.photo_indices, uploaded=tray.upload_embeddings())
        candidates = explore.filter_mask(listings, filters) if filters else None
        excluded = photos["listing_id"].iloc[tray.photo_indices].unique().tolist() if exclude_seed_listings else []
        results = run.retrieve(seed, k=int(k), candidates=candidates, exclude=excluded)
        if results.empty:
            st.warning("No listing matches these filters.")
        for start in range(0, len(results), RESULTS_PER_ROW):
            for column, result in zip(st.columns(RESULTS_PER_ROW), results.iloc[start:start + RESULTS_PER_ROW].itertuples(),
                                      strict=False):
                with column:
                    listing = listings.iloc[run.row_of_listing[result.listing_id]]
                    st.image(loaders.gallery_strip_uri(key, result.listing_id, STRIP_PHOTOS, SMALL_THUMBNAIL),
                             width="stretch")
                    listing_link(result.listing_id, label=f"{result.rank}. {result.listing_id}")
                    st.caption(f"similarity {result.score:.3f} · {key_attributes_text(listing, key_columns)}")
        if not results.empty:
            table = results.merge(listings[["listing_id", *key_columns]], on="listing_id", how="left")
            st.download_button("Download the results as CSV", table.to_csv(index=False), key="retrieve_download",
                               file_name=f"{run.name}-retrieval.csv", mime="text/csv")

st.divider()
st.subheader("Visual search: one photo")
st.caption("The most similar catalogue photos to a single photo, and the listings with the best-matching photo "
           "(exact search over every photo embedding).")
query_file = st.file_uploader(f"A query photo: JPEG or PNG, up to {format_bytes(MAX_UPLOAD_BYTES)}",
                              key="visual_search_upload")
if query_file is not None:
    try:
        query = check_upload(query_file.name, query_file.getvalue())
        with st.spinner("Embedding the photo..."):
            query_embedding = run.embed_uploads([query.data])[0]
    except (UploadError, PhotoError) as err:
        st.error(str(err))
    else:
        n_similar = int(st.slider("How many photos and listings", 4, 24, 8, key="visual_search_k"))
        similar = similar_photos(run, query_embedding, n_similar)
        st.image(data_uri(make_thumbnail(query.data, SMALL_THUMBNAIL)), caption="query", width=SMALL_THUMBNAIL)
        thumbnail_grid(run.root, similar["path"].tolist(),
                       captions=[f"{r.listing_id} · {r.score:.3f}" for r in similar.itertuples()])
        st.markdown("**Listings with the best-matching photo**")
        for result in similar_listings(run, query_embedding, n_similar).itertuples():
            listing_link(result.listing_id, label=f"{result.rank}. {result.listing_id} · similarity {result.score:.3f}")
