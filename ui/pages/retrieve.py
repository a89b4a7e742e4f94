"""Retrieve: build a seed gallery from catalogue photos, uploads or another page's selection; see the
listings whose galleries are most similar to it, and why each one came up."""

import math
from pathlib import Path

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
from gallery_core.search.explain import N_PAIRS, explain_results, seed_photos
from gallery_core.search.photo_search import similar_listings, similar_photos
from gallery_core.search.seed_gallery import (
    MAX_SEED_PHOTOS,
    SeedLimitError,
    UploadedSeed,
    random_listing_photos,
)
from ui import loaders
from ui.seed_tray import add_catalogue_photos, get_tray, pop_problems, report_problems
from ui.widgets import (
    SEED_PHOTOS_KEY,
    attribute_filters,
    key_attributes_text,
    listing_link,
    require_run,
    selection_actions,
    thumbnail_grid,
)

LISTINGS_PER_PAGE = 4
PHOTOS_PER_ROW = 8
STRIP_PHOTOS = 3
SHARE_SEEDS = 4  # seed photos shown with their share of a result's score; the rest summed in one line
PAIR_WIDTH = 120  # a (seed, listing photo) pair on screen: three side by side in the middle column
SHARE_WIDTH = 56  # a seed photo beside its share of the score: four in a row
UPLOAD_ROUND_KEY = "retrieve_upload_round"

run, key = require_run()
tray = get_tray(str(run.root))
listings, photos = run.listings, run.photos
key_columns = explore.key_attribute_columns(run.tasks, listings, limit=4)
run_root = str(run.root)

handed_over = st.session_state.pop(SEED_PHOTOS_KEY, None)  # "use these photos as seeds" on another page
if handed_over is not None:
    report_problems(tray.replace_with_paths(handed_over, photos))


def add_random_listing() -> None:
    add_catalogue_photos(run_root, random_listing_photos(listings, np.random.default_rng()))


def seed_thumbnail(position: int) -> bytes:
    """The thumbnail of seed photo ``position`` (the tray's numbering: catalogue photos, then uploads)."""
    if position < len(tray.photo_indices):
        return loaders.thumbnail(photos["path"].iloc[tray.photo_indices[position]], SMALL_THUMBNAIL, run_root)
    return list(tray.uploads.values())[position - len(tray.photo_indices)].thumbnail


st.title("Retrieve")
st.caption("Find the listings whose photos look most like a set of seed photos, and see why each one matched: "
           "start by adding seed photos below, or try a random listing's photos.")
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
        st.info(f"Empty. Add photos of catalogue listings or upload your own below (at most {MAX_SEED_PHOTOS}), "
                "or start from an example.")
        st.button("Try with a random listing's photos", key="retrieve_random", on_click=add_random_listing,
                  icon=":material/casino:")
    else:
        items = [("photo", index) for index in tray.photo_indices] + [("upload", digest) for digest in tray.uploads]
        for start in range(0, len(items), PHOTOS_PER_ROW):
            for number, column, (kind, item) in zip(range(start + 1, start + PHOTOS_PER_ROW + 1),
                                                    st.columns(PHOTOS_PER_ROW), items[start:start + PHOTOS_PER_ROW],
                                                    strict=False):
                if kind == "photo":
                    photo = photos.iloc[item]
                    column.image(loaders.thumbnail_uri(photo["path"], SMALL_THUMBNAIL, run_root),
                                 caption=f"{number}. {photo['listing_id']}", width="stretch")
                    column.button("Remove", key=f"remove_photo_{item}", on_click=tray.remove_photo, args=(item,),
                                  width="stretch")
                else:
                    column.image(data_uri(tray.uploads[item].thumbnail), caption=f"{number}. {tray.uploads[item].name}",
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
        seeds = seed_photos(run, tray.photo_indices, tray.upload_embeddings(), tray.upload_names())
        candidates = explore.filter_mask(listings, filters) if filters else None
        excluded = photos["listing_id"].iloc[tray.photo_indices].unique().tolist() if exclude_seed_listings else []
        results = run.retrieve(seeds.query, k=int(k), candidates=candidates, exclude=excluded)
        if results.empty:
            st.warning("No listing matches these filters.")
        else:
            st.caption(f"Score: the cosine similarity of the seed gallery's mean embedding and the listing's. Under "
                       f"each result, the {N_PAIRS} best-matching pairs (seed photo ↔ the listing's photo, by photo "
                       "similarity) and each seed photo's contribution to the score (they add up to it; the "
                       "percentage is its share).")
        for result, explanation in zip(results.itertuples(), explain_results(run, seeds, results), strict=True):
            with st.container(border=True):
                card, pairs_column, shares_column = st.columns([3, 5, 3])
                with card:
                    listing = listings.iloc[run.row_of_listing[result.listing_id]]
                    st.image(loaders.gallery_strip_uri(key, result.listing_id, STRIP_PHOTOS, SMALL_THUMBNAIL),
                             width="stretch")
                    listing_link(result.listing_id, label=f"{result.rank}. {result.listing_id}")
                    st.caption(f"score {result.score:.3f} · {key_attributes_text(listing, key_columns)}")
                with pairs_column:
                    st.image([loaders.photo_pair_uri(seed_thumbnail(pair.seed), photos["path"].iloc[pair.photo_index],
                                                     SMALL_THUMBNAIL, run_root) for pair in explanation.pairs],
                             caption=[f"seed {pair.seed + 1} ↔ {Path(photos['path'].iloc[pair.photo_index]).name} · "
                                      f"{pair.similarity:.3f}" for pair in explanation.pairs],
                             width=PAIR_WIDTH)
                with shares_column:
                    top, rest = explanation.top_seeds(SHARE_SEEDS)
                    shares = explanation.shares()
                    st.image([data_uri(seed_thumbnail(int(i))) for i in top],
                             caption=[f"seed {i + 1}: {explanation.contributions[i]:+.3f}"
                                      + ("" if np.isnan(shares[i]) else f" ({shares[i]:.0%})") for i in top],
                             width=SHARE_WIDTH)
                    if len(explanation.contributions) > len(top):
                        st.caption(f"{len(explanation.contributions) - len(top)} more seed photos: {rest:+.3f}")
                    if not explanation.ranked_by_exact_score:
                        st.caption(f"The ranking's score {explanation.ranking_score:.3f} is approximate; explained "
                                   f"here: the exact score {explanation.score:.3f}.")
        if not results.empty:
            st.markdown("**Act on these results**")
            selection_actions(run, results["listing_id"].tolist(), key="retrieve", extra=results[["listing_id", "score",
                                                                                                 "rank"]])

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
