"""The whitened retrieval space: the transform, its artifact, and every retrieval path going through it."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import file_checksum, read_manifest
from gallery_core.search.explain import explain_results, seed_photos
from gallery_core.search.photo_search import similar_listings
from gallery_core.search.whitening import Whitening, fit_whitening
from gallery_core.vectors import l2_normalise


def test_whitened_training_data_has_identity_covariance_and_the_transform_is_affine():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)) * np.linspace(0.1, 10, 12) + 3.0
    white = fit_whitening(x, dim=8)
    z = white.transform(x)
    assert z.shape == (500, 8)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(8), atol=1e-3)
    # affine: the whitened mean of a gallery is the mean of its whitened photos
    np.testing.assert_allclose(white.transform(x[:7].mean(0)), z[:7].mean(0), atol=1e-4)
    again = fit_whitening(x, dim=8)
    np.testing.assert_array_equal(again.components_, white.components_)  # signs fixed: a refit is identical
    with pytest.raises(ValueError, match="at least 3"):
        fit_whitening(x[:2])
    with pytest.raises(ValueError, match="dims"):
        white.transform(np.zeros(5))


def test_the_artifact_round_trips_and_its_checksum_is_in_the_manifest(tiny_run, tmp_path):
    run = Run(tiny_run)
    assert run.whitening is not None and run.whitening.dim == run.listing_embeddings.shape[1]
    recorded = read_manifest(tiny_run)["files"]["retrieval_whitening.npz"]["checksum"]
    assert recorded == file_checksum(run.paths.whitening)
    run.whitening.save(tmp_path / "w.npz")
    loaded = Whitening.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(loaded.components_, run.whitening.components_)


def test_a_seed_gallery_of_a_listings_own_photos_ranks_it_first(tiny_run):
    run = Run(tiny_run)
    for row in (0, 5, 17):
        listing_id = run.listings["listing_id"].iloc[row]
        photos = run.listing_photos(listing_id)["photo_index"].tolist()
        top = run.retrieve(run.seed_vector(photos), k=3)
        assert top["listing_id"].iloc[0] == listing_id and top["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
        # uploads (raw encoder outputs) go through the same whitening as catalogue photos
        uploaded = np.asarray(run.photo_embeddings[photos])
        np.testing.assert_allclose(run.seed_vector(uploaded=uploaded), run.seed_vector(photos), atol=1e-6)


def test_explanations_add_up_to_the_whitened_score(tiny_run):
    run = Run(tiny_run)
    seeds = seed_photos(run, [1, 12, 25])
    results = run.retrieve(seeds.query, k=5)
    for explanation in explain_results(run, seeds, results):
        assert explanation.contributions.sum() == pytest.approx(explanation.score, abs=1e-6)
        assert explanation.ranked_by_exact_score


def test_photo_search_scores_cosines_in_the_retrieval_space(tiny_run):
    run = Run(tiny_run)
    query = np.asarray(run.photo_embeddings[4])
    found = similar_listings(run, query, k=1)
    assert found["listing_id"].iloc[0] == run.photos["listing_id"].iloc[4]
    assert found["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    whitened = l2_normalise(run.retrieval_vectors(np.asarray(run.photo_embeddings)))
    assert float((whitened @ whitened[4]).max()) == pytest.approx(found["score"].iloc[0], abs=1e-5)
