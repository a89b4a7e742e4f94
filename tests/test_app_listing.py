"""AppTest: the Listing page (addressable by ?listing=, recorded vs predicted, unknown ids)."""

from __future__ import annotations

import pandas as pd

pytest_plugins = ["conftest_app"]


def test_a_listing_shows_its_gallery_and_every_task(open_page, app_artifacts, tiny_listing_id, n_tasks):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    at = open_page("ui/pages/listing.py", listing=tiny_listing_id)
    assert not at.exception
    n_photos = int(listings.loc[listings["listing_id"] == tiny_listing_id, "n_photos"].item())
    assert at.subheader[0].value == f"{tiny_listing_id} · {n_photos} photos"
    assert len(at.image[0].value) == n_photos
    comparison = at.dataframe[0].value
    assert len(comparison) == n_tasks
    assert {"recorded", "predicted", "probabilities", "out-of-fold check", "disagrees"} <= set(comparison.columns)
    disagreements = int(comparison["disagrees"].sum())
    assert f"disagrees with **{disagreements}** of the" in " ".join(m.value for m in at.markdown)
    multiclass = comparison[comparison["kind"] == "multiclass"]
    assert multiclass["probabilities"].str.count(r"\d\.\d\d").eq(3).all()  # top-3 class probabilities


def test_an_unknown_listing_id_is_an_error_message(open_page):
    at = open_page("ui/pages/listing.py", listing="L999999")
    assert not at.exception
    assert "Unknown listing id `L999999`" in at.error[0].value


def test_without_an_id_the_page_asks_for_one(open_page):
    at = open_page("ui/pages/listing.py")
    assert not at.exception
    assert "Enter a listing id" in at.info[0].value


def test_typing_an_id_opens_it_and_updates_the_url(open_page):
    at = open_page("ui/pages/listing.py")
    at.text_input(key="listing_input").input("L000003").run()
    assert not at.exception
    assert at.query_params["listing"] == "L000003"
    assert at.subheader[0].value.startswith("L000003")


def test_the_gallery_can_seed_a_retrieval(open_page, tiny_listing_id):
    at = open_page("ui/pages/listing.py", listing=tiny_listing_id)
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "Retrieve"
    assert "Most similar listings" in [h.value for h in at.subheader]


def test_the_same_listing_link_opens_again_after_leaving_the_page(open_page, tiny_listing_id):
    at = open_page("ui/pages/listing.py", listing=tiny_listing_id)
    at.switch_page("ui/pages/audit.py").run()
    at.query_params["listing"] = tiny_listing_id
    at.switch_page("ui/pages/listing.py").run()
    assert not at.exception
    assert at.subheader[0].value.startswith(tiny_listing_id)
