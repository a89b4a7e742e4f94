"""Single-photo visual search (function and CLI, end to end on tiny_run) and the robustness metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gallery_core.artifacts.run import Run
from gallery_core.cli import main
from gallery_core.evaluation.metrics import gallery_completion_ranks, split_galleries
from gallery_core.evaluation.robustness import completion_ranks, query_photo_rows, robustness_metrics
from gallery_core.search.photo_search import similar_listings, similar_photos


@pytest.fixture(scope="module")
def run(tiny_run) -> Run:
    return Run(tiny_run)


def test_a_catalogue_photo_finds_itself_and_its_listing(run):
    photo = 5
    query = np.asarray(run.photo_embeddings[photo])
    photos = similar_photos(run, query, k=4)
    assert list(photos.columns) == ["photo_index", "listing_id", "path", "score", "rank"]
    assert photos["photo_index"].iloc[0] == photo and photos["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert photos["rank"].tolist() == [1, 2, 3, 4] and photos["score"].is_monotonic_decreasing
    assert photo not in similar_photos(run, query, k=4, exclude_photos=[photo])["photo_index"].tolist()

    listings = similar_listings(run, query, k=3)
    own = run.photos["listing_id"].iloc[photo]
    assert listings["listing_id"].iloc[0] == own and listings["best_photo"].iloc[0] == photo
    assert own not in similar_listings(run, query, k=3, exclude_listings=[own])["listing_id"].tolist()
    for row in listings.itertuples():  # each listing's best photo is one of its own
        assert run.photos["listing_id"].iloc[row.best_photo] == row.listing_id
    with pytest.raises(ValueError, match="k must be"):
        similar_photos(run, query, k=0)


def test_search_photo_cli_end_to_end(run, tiny_run, capsys):
    path = run.photos["path"].iloc[7]
    assert main(["search-photo", "--artifacts", str(tiny_run), "--photo", path, "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["search"].startswith("exact") and out["k"] == 3
    assert len(out["photos"]) == 3 and len(out["listings"]) == 3
    assert out["photos"][0]["path"] == path and out["photos"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert out["listings"][0]["listing_id"] == run.photos["listing_id"].iloc[7]
    assert "property_type" in out["listings"][0]

    assert main(["search-photo", "--artifacts", str(tiny_run), "--photo", path, "-k", "2"]) == 0
    text = capsys.readouterr().out
    assert "top 2 photos" in text and "top 2 listings" in text

    missing = tiny_run / "nope.jpg"
    assert main(["search-photo", "--artifacts", str(tiny_run), "--photo", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: ") and "No such file" in err and "Traceback" not in err


def test_completion_ranks_match_the_evaluation_and_identity_corruption_changes_nothing(run):
    embeddings = np.asarray(run.photo_embeddings)
    listing_index = run.photos["listing_index"].to_numpy()
    n = len(run.listings)
    in_query = split_galleries(listing_index, n, seed=0)
    queries = np.flatnonzero(np.bincount(listing_index[in_query], minlength=n) > 0)
    reference = gallery_completion_ranks(embeddings, listing_index, n, in_query, queries)

    rows = query_photo_rows(listing_index, in_query, queries)
    result = robustness_metrics(embeddings, listing_index, n, in_query, queries, {"same": embeddings[rows].copy()},
                                {"city": run.listings["city"].to_numpy(dtype=object)}, ks=(1, 5), precision_k=5)
    clean, same = result["conditions"]["clean"], result["conditions"]["same"]
    assert clean["recall_at_5"] == pytest.approx(float((reference <= 5).mean()))
    assert clean["mean_reciprocal_rank"] == pytest.approx(float((1.0 / reference).mean()))
    assert same["recall_at_1"] == clean["recall_at_1"] and same["attribute_precision_at_5"] == \
        clean["attribute_precision_at_5"]
    assert same["photo_search"]["photo_recall_at_1"] == 1.0  # an unchanged photo finds itself first

    own = np.arange(3)
    vectors = np.eye(4, dtype=np.float32)[:3]
    whole = np.eye(4, dtype=np.float32)
    assert completion_ranks(vectors, vectors, whole, own).tolist() == [1, 1, 1]
