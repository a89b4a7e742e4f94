"""AppTest: the Retrieve page (seed tray from catalogue photos and uploads, results, bad uploads)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from PIL import Image

from gallery_core.artifacts.run import Run
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
    assert len(at.button) > 0 and at.button[0].label.startswith("Add all")


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
    assert at.button[0].key == f"add_listing_{listings['listing_id'].iloc[3]}"


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
    assert {c for img in at.image for c in img.captions} >= {"mine.jpg", "drawing.png"}
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
