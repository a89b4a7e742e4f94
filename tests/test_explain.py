"""Why a listing was retrieved: seed contributions add up to the ranking's score, the best photo pairs are
the true photo cosines, and ``retrieve --explain`` prints the same."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from gallery_core.artifacts.run import Run
from gallery_core.cli import main
from gallery_core.errors import UsageError
from gallery_core.search.explain import Explanation, explain_results, explanation_text, seed_photos
from gallery_core.search.seed_gallery import MAX_SEED_PHOTOS, SeedGallery, random_listing_photos


@pytest.fixture(scope="module")
def run(tiny_run) -> Run:
    return Run(tiny_run)


def photo_cosine(run: Run, seed_embedding: np.ndarray, photo_index: int) -> float:
    a = np.asarray(seed_embedding, dtype=np.float64)
    b = np.asarray(run.retrieval_vectors(run.photo_embeddings[photo_index]), dtype=np.float64)  # the retrieval space
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def gallery(run: Run, listing_id: str) -> list[int]:
    return run.listing_photos(listing_id)["photo_index"].tolist()


def test_seed_photos_make_the_query_the_ranking_uses(run):
    uploaded = np.random.default_rng(0).normal(size=(2, run.photo_embeddings.shape[1])).astype(np.float32)
    seeds = seed_photos(run, [3, 7, 11], uploaded, ["a.jpg", "b.png"])
    np.testing.assert_array_equal(seeds.query, run.seed_vector([3, 7, 11], uploaded))
    assert seeds.labels[:3] == run.photos["path"].iloc[[3, 7, 11]].tolist()
    assert seeds.labels[3:] == ["a.jpg", "b.png"]


@pytest.mark.parametrize("photo_indices", [[0], [0, 1, 2], [5, 40, 77, 120, 200]])
def test_contributions_sum_to_the_ranking_score(run, photo_indices):
    seeds = seed_photos(run, photo_indices)
    results = run.retrieve(run.seed_vector(photo_indices), k=10)
    explanations = explain_results(run, seeds, results)
    assert [e.listing_id for e in explanations] == results["listing_id"].tolist()
    for explanation, score in zip(explanations, results["score"], strict=True):
        assert explanation.contributions.shape == (len(photo_indices),)
        assert explanation.contributions.sum() == pytest.approx(score, abs=1e-6)
        assert explanation.score == pytest.approx(score, abs=1e-6)
        assert explanation.ranked_by_exact_score
        assert np.nansum(explanation.shares()) == pytest.approx(1.0, abs=1e-6)


def test_contributions_sum_to_the_score_through_annoy_with_uploads(run):
    """The same when the ranking goes through the Annoy index (forced here) and the seeds include uploads."""
    run = Run(run.root)
    run.__dict__["config"] = replace(run.config, index=replace(run.config.index, exact_below=0))
    uploaded = np.random.default_rng(1).normal(size=(3, run.photo_embeddings.shape[1])).astype(np.float32)
    seeds = seed_photos(run, [10, 20], uploaded, ["u1", "u2", "u3"])
    results = run.retrieve(seeds.query, k=8)
    for explanation, score in zip(explain_results(run, seeds, results), results["score"], strict=True):
        assert explanation.contributions.sum() == pytest.approx(score, abs=1e-6)


def test_pairs_are_the_best_photo_cosines_sorted(run):
    photo_indices = [0, 30, 60]
    seeds = seed_photos(run, photo_indices)
    results = run.retrieve(seeds.query, k=6)
    for explanation in explain_results(run, seeds, results, n_pairs=4):
        listing_photos = gallery(run, explanation.listing_id)
        assert len(explanation.pairs) == min(4, len(photo_indices) * len(listing_photos))
        similarities = [p.similarity for p in explanation.pairs]
        assert similarities == sorted(similarities, reverse=True)
        for pair in explanation.pairs:
            assert pair.photo_index in listing_photos
            assert pair.similarity == pytest.approx(photo_cosine(run, seeds.embeddings[pair.seed], pair.photo_index),
                                                    abs=1e-6)
        every_pair = sorted((photo_cosine(run, s, p) for s in seeds.embeddings for p in listing_photos), reverse=True)
        np.testing.assert_allclose(similarities, every_pair[:len(similarities)], atol=1e-6)


def test_a_listing_whose_photos_are_the_seeds_explains_with_similarity_one(run):
    listing_id = run.listings["listing_id"].iloc[4]
    own = gallery(run, listing_id)
    # uploads that are copies of the listing's photos: the listing comes first, each pair a photo and its copy
    seeds = seed_photos(run, uploaded=np.asarray(run.photo_embeddings[own]), upload_labels=[f"copy{i}" for i in own])
    results = run.retrieve(seeds.query, k=3)
    assert results["listing_id"].iloc[0] == listing_id
    explanation = explain_results(run, seeds, results, n_pairs=len(own))[0]
    assert explanation.score == pytest.approx(1.0, abs=1e-5)
    assert [p.similarity for p in explanation.pairs] == pytest.approx([1.0] * len(own), abs=1e-5)
    assert sorted((own[p.seed], p.photo_index) for p in explanation.pairs) == [(i, i) for i in own]


def test_json_form_and_approximate_scores_say_so(run):
    seeds = seed_photos(run, [0, 1])
    results = run.retrieve(seeds.query, k=2)
    paths = run.photos["path"].to_numpy()
    explanation = explain_results(run, seeds, results)[0]
    data = explanation.to_dict(seeds, paths)
    assert [c["seed"] for c in data["seed_contributions"]] == seeds.labels
    assert "note" not in data
    approximate = replace(explanation, ranking_score=explanation.score - 0.01)
    assert "approximate" in approximate.to_dict(seeds, paths)["note"]
    assert any(line.startswith("note:") for line in explanation_text(approximate, seeds, paths))


def test_a_zero_score_has_no_shares():
    explanation = Explanation("L1", 0.0, np.array([0.2, -0.2]), [])
    assert np.isnan(explanation.shares()).all()


def test_an_unknown_listing_is_a_usage_error(run):
    seeds = seed_photos(run, [0])
    with pytest.raises(UsageError, match="unknown listing 'nope'"):
        explain_results(run, seeds, run.retrieve(seeds.query, k=1).assign(listing_id="nope"))


def test_cli_json_explain(tiny_run, capsys):
    run = Run(tiny_run)
    listing_id = run.listings["listing_id"].iloc[2]
    seed_files = run.listing_photos(listing_id)["path"].tolist()[:2]
    assert main(["retrieve", "--artifacts", str(tiny_run), "--photos", *seed_files, "-k", "4", "--json",
                 "--explain"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert len(output["results"]) == 4
    for result in output["results"]:
        explanation = result["explanation"]
        assert [c["seed"] for c in explanation["seed_contributions"]] == seed_files
        assert sum(c["contribution"] for c in explanation["seed_contributions"]) == pytest.approx(result["score"],
                                                                                                  abs=1e-6)
        own_photos = run.listing_photos(result["listing_id"])["path"].tolist()
        similarities = [p["similarity"] for p in explanation["pairs"]]
        assert similarities == sorted(similarities, reverse=True) and len(similarities) == 3
        assert all(p["seed"] in seed_files and p["photo"] in own_photos for p in explanation["pairs"])
    # the seed photos' own listing: its best pair is a seed photo and itself
    top = next(r for r in output["results"] if r["listing_id"] == listing_id)
    assert top["explanation"]["pairs"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert top["explanation"]["pairs"][0]["photo"] == top["explanation"]["pairs"][0]["seed"]

    assert main(["retrieve", "--artifacts", str(tiny_run), "--photos", *seed_files, "-k", "2", "--explain"]) == 0
    text = capsys.readouterr().out
    assert text.count("seeds: ") == 2 and text.count("pairs: ") == 2
    assert main(["retrieve", "--artifacts", str(tiny_run), "--photos", *seed_files, "-k", "2", "--json"]) == 0
    assert "explanation" not in json.loads(capsys.readouterr().out)["results"][0]


def test_a_handed_over_seed_gallery_replaces_the_tray(run):
    """The seeds another page hands over (photo paths): this run's photos in order, others reported."""
    tray = SeedGallery(str(run.root), photo_indices=[5])
    paths = run.photos["path"].tolist()
    problems = tray.replace_with_paths([paths[9], "/not/a/photo.jpg", paths[2], paths[9]], run.photos)
    assert tray.photo_indices == [9, 2] and not tray.uploads
    assert problems == ["1 photo(s) are not in this run's catalogue and were left out, e.g. /not/a/photo.jpg"]
    problems = tray.replace_with_paths(paths[:MAX_SEED_PHOTOS + 3], run.photos)
    assert tray.photo_indices == list(range(MAX_SEED_PHOTOS))
    assert problems == [f"a seed gallery holds at most {MAX_SEED_PHOTOS} photos: the first {MAX_SEED_PHOTOS} of "
                        f"{MAX_SEED_PHOTOS + 3} were taken"]


def test_a_random_listing_gives_its_whole_gallery(run):
    picked = random_listing_photos(run.listings, np.random.default_rng(3))
    assert run.photos["listing_id"].iloc[picked].nunique() == 1
    assert picked == gallery(run, run.photos["listing_id"].iloc[picked[0]])
