"""AppTest: the Retrieve page (seed tray from catalogue photos, uploads, another page's selection or a random
listing; results with their explanations; bad uploads)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gallery_core.artifacts.run import Run
from gallery_core.search.explain import N_PAIRS, explain_results, seed_photos
from gallery_core.search.seed_gallery import MAX_SEED_PHOTOS, SeedGallery

pytest_plugins = ["conftest_app"]


def result_ids(at) -> list[str]:
    """Listing ids of the result cards, in rank order ("3. L000012" links)."""
    ids = []
    for link in at.get("page_link"):
        match = re.fullmatch(r"(\d+)\. (\S+)", link.value)
        if match:
            ids.append(match.group(2))
    return ids


def tray_size(at) -> int:
    heading = next(h.value for h in at.subheader if h.value.startswith("Seed gallery"))
    return int(re.search(r"(\d+) photo", heading).group(1))


def png_bytes(size: int = 40, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_empty_tray_invites_photos(open_page):
    at = open_page("ui/pages/retrieve.py")
    assert not at.exception
    assert tray_size(at) == 0
    assert "Empty." in at.info[0].value
    assert result_ids(at) == []
    assert at.button[0].key == "retrieve_random"  # an example to start from, first
    assert at.button[1].label.startswith("Add all")
    assert "start by adding seed photos" in at.caption[0].value  # what the page is for and what to do first


def test_a_random_listings_photos_start_a_search(open_page, app_artifacts):
    run = Run(app_artifacts / "demo")
    at = open_page("ui/pages/retrieve.py")
    at.button(key="retrieve_random").click().run()
    assert not at.exception
    tray = at.session_state["seed_tray"]
    assert len(tray.photo_indices) == tray_size(at) > 0
    assert run.photos["listing_id"].iloc[tray.photo_indices].nunique() == 1  # one listing's gallery
    assert len(result_ids(at)) == 12


def test_clicking_a_catalogue_photo_retrieves_similar_listings(open_page, app_artifacts):
    run = Run(app_artifacts / "demo")
    seed = run.seed_vector(photo_indices=[0])
    own_listing = run.photos["listing_id"].iloc[0]
    at = open_page("ui/pages/retrieve.py")
    at.button(key="add_photo_0").click().run()
    assert not at.exception
    assert tray_size(at) == 1
    assert at.button(key="add_photo_0").disabled
    # by default the listing the seed photo comes from is left out
    assert result_ids(at) == run.retrieve(seed, k=12, exclude=[own_listing])["listing_id"].tolist()
    at.checkbox(key="retrieve_exclude").uncheck().run()
    assert result_ids(at) == run.retrieve(seed, k=12)["listing_id"].tolist()
    at.slider(key="retrieve_k").set_value(5).run()
    assert len(result_ids(at)) == 5


def test_whole_galleries_and_result_filters(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    at = open_page("ui/pages/retrieve.py")
    first = listings["listing_id"].iloc[0]
    at.button(key=f"add_listing_{first}").click().run()
    assert tray_size(at) == int(listings["n_photos"].iloc[0])
    kept_type = listings["property_type"].value_counts().index[0]
    at.multiselect(key="retrieve_filter_columns").set_value(["property_type"]).run()
    at.multiselect(key="retrieve_filter_property_type").set_value([kept_type]).run()
    assert not at.exception
    ids = result_ids(at)
    assert ids and set(listings.set_index("listing_id").loc[ids, "property_type"]) == {kept_type}


def test_a_full_tray_says_so(open_page, app_artifacts):
    at = open_page("ui/pages/retrieve.py")
    at.session_state["seed_tray"] = SeedGallery(str(app_artifacts / "demo"), photo_indices=list(range(MAX_SEED_PHOTOS)))
    at.text_input(key="retrieve_search").set_value("L000030").run()
    at.button(key="add_listing_L000030").click().run()
    assert not at.exception
    assert f"at most {MAX_SEED_PHOTOS} photos" in at.error[0].value
    assert tray_size(at) == MAX_SEED_PHOTOS


def test_search_narrows_the_listings_to_browse(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    at = open_page("ui/pages/retrieve.py")
    at.text_input(key="retrieve_search").set_value(listings["listing_id"].iloc[3]).run()
    assert not at.exception
    assert "1 listings match." in [c.value for c in at.caption]
    browse_buttons = [b.key for b in at.button if b.key.startswith("add_listing_")]
    assert browse_buttons == [f"add_listing_{listings['listing_id'].iloc[3]}"]


def test_the_tray_survives_a_page_switch(open_page):
    at = open_page("ui/pages/retrieve.py")
    at.button(key="add_photo_0").click().run()
    at.switch_page("ui/pages/map.py").run()
    at.switch_page("ui/pages/retrieve.py").run()
    assert tray_size(at) == 1
    at.button(key="retrieve_clear").click().run()
    assert tray_size(at) == 0


def test_an_uploaded_photo_is_embedded_and_used_as_a_seed(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = open_page("ui/pages/retrieve.py")
    at.file_uploader[0].set_value([("mine.jpg", Path(photos["path"].iloc[0]).read_bytes(), "image/jpeg"),
                                   ("drawing.png", png_bytes(), "image/png")]).run()
    assert not at.exception
    assert not at.error
    assert tray_size(at) == 2
    assert {c for img in at.image for c in img.captions} >= {"1. mine.jpg", "2. drawing.png"}
    assert len(result_ids(at)) == 12
    assert at.file_uploader[0].value == []  # the uploader is emptied once its photos are in the tray


def test_bad_uploads_are_refused_with_clear_messages(open_page):
    at = open_page("ui/pages/retrieve.py")
    gif = io.BytesIO()
    Image.new("RGB", (20, 20)).save(gif, format="GIF")
    at.file_uploader[0].set_value([
        ("notes.jpg", b"these are not pixels", "image/jpeg"),
        ("anim.png", gif.getvalue(), "image/png"),
        ("huge.jpg", b"\xff\xd8\xff" + bytes(10 * 1024 * 1024), "image/jpeg"),
        ("broken.png", png_bytes()[:60], "image/png"),
    ]).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert len(messages) == 4
    assert "notes.jpg: only JPEG and PNG photos are accepted" in messages[0]
    assert "anim.png: only JPEG and PNG photos are accepted, but it is a GIF file" in messages[1]
    assert "huge.jpg: 10.0 MB is too big; the limit is 10.0 MB" in messages[2]
    assert "broken.png: looks like a PNG but cannot be decoded" in messages[3]
    assert tray_size(at) == 0


def test_visual_search_with_one_photo(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = open_page("ui/pages/retrieve.py")
    query = photos.iloc[5]
    at.file_uploader[1].set_value([("query.jpg", Path(query["path"]).read_bytes(), "image/jpeg")]).run()
    assert not at.exception and not at.error
    grid = next(img for img in at.image if len(img.captions) == 8)
    # the catalogue photo itself is the most similar photo, from its own listing
    assert grid.captions[0].startswith(f"{query['listing_id']} · 1.000")
    listing_links = [link.value for link in at.get("page_link") if "similarity" in link.value]
    assert len(listing_links) == 8 and listing_links[0].startswith(f"1. {query['listing_id']}")


def test_visual_search_refuses_a_bad_photo(open_page):
    at = open_page("ui/pages/retrieve.py")
    at.file_uploader[1].set_value([("notes.jpg", b"not a photo", "image/jpeg")]).run()
    assert not at.exception
    assert any("notes.jpg: only JPEG and PNG photos are accepted" in e.value for e in at.error)


def shown_explanations(at) -> tuple[list[list[str]], list[list[str]], list[float], list[float]]:
    """Per result card, in rank order: the pair captions, the seed-share captions, the score shown, and the
    "N more seed photos" remainder (0 when every seed photo is shown)."""
    pairs = [img.captions for img in at.image if img.captions and "↔" in img.captions[0]]
    shares = [img.captions for img in at.image if img.captions and re.match(r"seed \d+: ", img.captions[0])]
    scores = [float(m.group(1)) for c in at.caption if (m := re.match(r"score (-?\d+\.\d+) ·", c.value))]
    rests = [float(m.group(1)) for c in at.caption if (m := re.match(r"\d+ more seed photos: ([+-]\d+\.\d+)", c.value))]
    return pairs, shares, scores, rests


@pytest.mark.parametrize("photo_indices", [[0, 1, 2], [0, 1, 2, 50, 51, 100]])
def test_every_result_is_explained_consistently_with_its_score(open_page, app_artifacts, photo_indices):
    run = Run(app_artifacts / "demo")
    at = open_page("ui/pages/retrieve.py")
    at.session_state["seed_tray"] = SeedGallery(str(app_artifacts / "demo"), photo_indices=list(photo_indices))
    at.run()
    at.checkbox(key="retrieve_exclude").uncheck().run()
    assert not at.exception
    ids = result_ids(at)
    pairs, shares, scores, rests = shown_explanations(at)
    assert len(ids) == len(pairs) == len(shares) == len(scores) == 12
    assert len(rests) == (0 if len(photo_indices) <= 4 else len(ids))  # seeds beyond the 4 largest: one line
    rests = rests or [0.0] * len(ids)

    seeds = seed_photos(run, photo_indices)
    results = run.retrieve(seeds.query, k=12)
    assert ids == results["listing_id"].tolist()
    for explanation, pair_captions, share_captions, score, rest in zip(
            explain_results(run, seeds, results), pairs, shares, scores, rests, strict=True):
        assert score == pytest.approx(explanation.score, abs=5e-4)
        # the contributions shown (largest first) and the remainder add up to the score shown
        shown = [float(re.match(r"seed \d+: ([+-]\d+\.\d+)", c).group(1)) for c in share_captions]
        assert shown == sorted(shown, reverse=True)
        assert sum(shown) + rest == pytest.approx(score, abs=5e-4 * (len(shown) + 2))
        # the pairs are the explanation's: which seed, which photo of the listing, their similarity
        assert len(pair_captions) == N_PAIRS
        for caption, pair in zip(pair_captions, explanation.pairs, strict=True):
            listing_photo = Path(run.photos["path"].iloc[pair.photo_index])
            assert caption == f"seed {pair.seed + 1} ↔ {listing_photo.name} · {pair.similarity:.3f}"
        similarities = [float(c.rsplit("· ", 1)[1]) for c in pair_captions]
        assert similarities == sorted(similarities, reverse=True)


def test_a_seed_gallery_handed_over_in_session_state(open_page, app_artifacts):
    run = Run(app_artifacts / "demo")
    listing_id = run.listings["listing_id"].iloc[7]
    handed = run.listing_photos(listing_id)
    at = open_page("ui/pages/retrieve.py")
    at.button(key="add_photo_0").click().run()  # a tray already in use is replaced, not added to
    at.session_state["seed_photo_paths"] = [*handed["path"], "/elsewhere/not-in-the-run.jpg"]
    at.run()
    assert not at.exception
    assert at.session_state["seed_tray"].photo_indices == handed["photo_index"].tolist()
    assert "seed_photo_paths" not in at.session_state  # taken once: removing a seed later is not undone
    assert any("1 photo(s) are not in this run's catalogue" in e.value for e in at.error)
    ids = result_ids(at)
    assert len(ids) == 12 and listing_id not in ids  # the seeds' own listing is left out by default
    pairs, shares, _, _ = shown_explanations(at)
    assert len(pairs) == len(shares) == 12
    at.checkbox(key="retrieve_exclude").uncheck().run()
    assert result_ids(at)[0] == listing_id
    top_pairs = shown_explanations(at)[0][0]
    assert all(c.endswith("· 1.000") for c in top_pairs)  # its own photos: each pair a photo and itself


def test_uploaded_seeds_are_explained_too(open_page, app_artifacts):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = open_page("ui/pages/retrieve.py")
    at.button(key="add_photo_3").click().run()
    at.file_uploader[0].set_value([("mine.jpg", Path(photos["path"].iloc[0]).read_bytes(), "image/jpeg")]).run()
    assert not at.exception
    pairs, shares, scores, _ = shown_explanations(at)
    assert len(pairs) == len(shares) == len(scores) == 12
    labels = {re.match(r"seed (\d+):", c).group(1) for captions in shares for c in captions}
    assert labels == {"1", "2"}  # the catalogue photo and the upload, numbered as in the tray
    assert np.isfinite(scores).all()


def test_the_results_offer_the_selection_actions(open_page, app_artifacts):
    run = Run(app_artifacts / "demo")
    at = open_page("ui/pages/retrieve.py")
    at.button(key="add_photo_0").click().run()
    ids = result_ids(at)
    assert [b.key for b in at.get("download_button")] == ["retrieve_selection_csv"]
    # "use these photos as seeds": the results' photos become the seed gallery, on this same page
    at.button(key="retrieve_selection_seeds").click().run()
    assert not at.exception
    tray = at.session_state["seed_tray"]
    assert set(run.photos["listing_id"].iloc[tray.photo_indices]) == set(ids)
    assert tray_size(at) == len(tray.photo_indices) > len(ids)
