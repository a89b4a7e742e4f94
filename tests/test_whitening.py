"""The whitened retrieval space: the transform, its artifact, and every retrieval path going through it."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import file_checksum, read_manifest
from gallery_core.config import EmbedConfig
from gallery_core.errors import ConfigError
from gallery_core.evaluation.metrics import gallery_completion_ranks, hit_rate_at_k, split_galleries
from gallery_core.search.explain import explain_results, seed_photos
from gallery_core.search.photo_search import similar_listings
from gallery_core.search.whitening import (
    Whitening,
    fit_listing_whitening,
    fit_method,
    fit_sample,
    fit_whitening,
)
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


def _listings(n_listings: int = 60, photos: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Photos (n_listings * photos, 10) of listings told apart by dims 0-4 (small between-listing spread) under a
    loud nuisance on dims 5-9 that varies from photo to photo (a room type), and their listing ids."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_listings), photos)
    identity = rng.normal(size=(n_listings, 5))[groups] + 0.3 * rng.normal(size=(len(groups), 5))
    nuisance = 3.0 * rng.normal(size=(len(groups), 5))
    return np.concatenate([identity, nuisance], axis=1) + 2.0, groups


def test_listings_whitening_makes_one_listings_photos_vary_by_unit_variance_along_each_axis():
    x, groups = _listings()
    white = fit_listing_whitening(x, groups, dim=4, shrinkage=0.0)
    z = white.transform(x)
    means = np.stack([z[groups == g].mean(0) for g in np.unique(groups)])
    within = z - means[groups]
    np.testing.assert_allclose(within.T @ within / (len(z) - len(means)), np.eye(4), atol=1e-4)
    assert white.method_ == "listings" and np.all(np.diff(white.explained_variance_) <= 0)  # best ratio first
    # affine, as retrieval needs: a gallery's whitened mean is the mean of its whitened photos
    np.testing.assert_allclose(white.transform(x[:6].mean(0)), z[:6].mean(0), atol=1e-4)
    np.testing.assert_array_equal(fit_listing_whitening(x, groups, dim=4, shrinkage=0.0).components_,
                                  white.components_)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_listing_whitening(x, groups, shrinkage=2.0)


def test_both_fits_sum_their_covariance_a_block_at_a_time_as_in_one_pass(monkeypatch):
    """The (D, D) scatter is summed FIT_BLOCK_ROWS photos at a time (memory), giving the one-pass covariances."""
    from gallery_core.search import whitening

    x, groups = _listings()
    x = x.astype(np.float32)
    whole = {"pca": fit_whitening(x, dim=4), "listings": fit_listing_whitening(x, groups, dim=4, shrinkage=0.0)}
    monkeypatch.setattr(whitening, "FIT_BLOCK_ROWS", 7)  # blocks that cut listings in two
    for method, fitted in (("pca", fit_whitening(x, dim=4)),
                           ("listings", fit_listing_whitening(x, groups, dim=4, shrinkage=0.0))):
        np.testing.assert_allclose(fitted.components_, whole[method].components_, rtol=1e-4, atol=1e-5)
    centred = x.astype(np.float64) - x.mean(0, dtype=np.float64)
    np.testing.assert_allclose(whitening._scatter(x, lambda rows: x.mean(0, dtype=np.float64)) / (len(x) - 1),
                               np.cov(centred, rowvar=False), rtol=1e-9, atol=1e-12)


def test_listings_whitening_finds_a_listings_other_half_where_pca_whitening_is_led_by_the_nuisance():
    x, groups = _listings()
    test_x, test_groups = _listings(seed=1)  # other listings: the whitening is fitted on the first ones only
    n = len(np.unique(test_groups))
    in_query = split_galleries(test_groups, n, seed=0)
    recall = {}
    for name, white in (("pca", fit_whitening(x, dim=10)), ("listings", fit_listing_whitening(x, groups, dim=5))):
        ranks = gallery_completion_ranks(white.transform(test_x), test_groups, n, in_query)
        recall[name] = hit_rate_at_k(ranks, 1)
    assert recall["listings"] > recall["pca"] + 0.2, recall


def test_fit_method_falls_back_to_pca_without_listings_of_several_photos(caplog):
    x = np.random.default_rng(0).normal(size=(40, 6))
    white = fit_method(x, np.arange(40), "listings")  # one photo per listing: nothing tells their spread
    assert white.method_ == "pca" and "PCA-whitened instead" in caplog.text
    with pytest.raises(ValueError, match="unknown whitening"):
        fit_method(x, np.arange(40), "zca")


def test_the_fit_sample_takes_whole_listings_when_asked():
    groups = np.repeat(np.arange(500), 4)
    rows = fit_sample(np.arange(2000), seed=3, limit=101, groups=groups)
    assert len(rows) == 100 and np.all(np.bincount(groups[rows])[np.unique(groups[rows])] == 4)
    np.testing.assert_array_equal(rows, fit_sample(np.arange(2000), seed=3, limit=101, groups=groups))
    assert len(fit_sample(np.arange(2000), seed=3, limit=101)) == 101


def test_a_whitening_saved_before_the_method_was_recorded_loads_as_pca(tmp_path):
    np.savez(tmp_path / "old.npz", mean=np.zeros(3), components=np.eye(3), explained_variance=np.ones(3),
             n_fit=np.int64(10))
    assert Whitening.load(tmp_path / "old.npz").method_ == "pca"
    x, groups = _listings()
    fit_listing_whitening(x, groups, dim=3).save(tmp_path / "new.npz")
    assert Whitening.load(tmp_path / "new.npz").method_ == "listings"
    with pytest.raises(ConfigError, match="unknown whitening"):
        EmbedConfig(whitening="zca").validate()
