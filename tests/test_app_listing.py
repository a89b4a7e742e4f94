"""AppTest: the Listing page (opens on a listing, search, random, ?listing= deep links, recorded vs predicted,
photo evidence, unknown ids)."""

from __future__ import annotations

import re

import pandas as pd

from gallery_core.app import audit, evidence
from gallery_core.artifacts.run import Run

pytest_plugins = ["conftest_app"]

EFFECT = re.compile(r"^:(red|green|gray)\[\*\*([+-]\d\.\d+|no effect)\*\* (against|for|neither|only photo)\] · photo (\d+)$")


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


def test_without_an_id_the_page_opens_on_the_first_listing(open_page, tiny_listing_id):
    at = open_page("ui/pages/listing.py")
    assert not at.exception
    assert not at.info
    assert at.markdown[0].value.startswith("**One listing's photos")  # what the page is for, first
    assert at.subheader[0].value.startswith(f"{tiny_listing_id} · ")
    assert at.query_params["listing"] == tiny_listing_id


def test_the_random_button_opens_some_listing(open_page, app_artifacts):
    ids = set(pd.read_parquet(app_artifacts / "demo" / "listings.parquet")["listing_id"])
    at = open_page("ui/pages/listing.py")
    at.button(key="listing_random").click().run()
    assert not at.exception
    shown = at.subheader[0].value.split(" · ")[0]
    assert shown in ids and at.query_params["listing"] == shown


def test_searching_a_city_offers_the_matching_listings(open_page, app_artifacts):
    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    city = str(listings["city"].dropna().iloc[-1])
    expected = listings["listing_id"][listings["city"].astype(str).str.contains(city, case=False, regex=False)
                                      ].tolist()
    at = open_page("ui/pages/listing.py")
    at.text_input(key="listing_input").input(city).run()
    assert not at.exception
    matches = at.selectbox(key="listing_match")
    assert [option.split(" · ")[0] for option in matches.options] == expected  # "id · key attributes"
    assert all(city in option for option in matches.options)
    matches.set_value(expected[-1]).run()
    assert at.subheader[0].value.startswith(expected[-1])
    assert at.query_params["listing"] == expected[-1]


def test_the_listings_photo_evidence_is_ranked(open_page, app_artifacts, tiny_listing_id):
    at = open_page("ui/pages/listing.py", listing=tiny_listing_id)
    run = Run(app_artifacts / "demo")
    row = run.row_of_listing[tiny_listing_id]
    task_name = at.selectbox(key=f"listing_evidence_task_{tiny_listing_id}").value
    assert task_name == audit.audited_tasks(run.tasks, run.listings.iloc[row], run.predictions.iloc[row])[0]
    positions = [int(m.group(4)) for m in (EFFECT.match(md.value) for md in at.markdown) if m]
    expected = evidence.photo_evidence(run, run.task(task_name), tiny_listing_id).photos
    assert positions == expected["position"].tolist()


def test_an_unknown_listing_id_is_an_error_message(open_page):
    at = open_page("ui/pages/listing.py", listing="L999999")
    assert not at.exception
    assert "Unknown listing id `L999999`" in at.error[0].value
    assert at.text_input(key="listing_input")  # the search box is still there


def test_typing_an_id_opens_it_and_updates_the_url(open_page):
    at = open_page("ui/pages/listing.py")
    at.text_input(key="listing_input").input("L000003").run()
    assert not at.exception
    assert at.query_params["listing"] == "L000003"
    assert at.subheader[0].value.startswith("L000003")


def test_the_gallery_can_seed_a_retrieval(open_page, tiny_listing_id):
    at = open_page("ui/pages/listing.py", listing=tiny_listing_id)
    next(b for b in at.button if b.label == "Use this gallery as retrieval seeds").click().run()
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
