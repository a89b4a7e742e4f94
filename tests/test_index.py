"""Annoy index: self-retrieval, determinism, agreement with exact search; seed-photo retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_core.artifacts.run import Run
from gallery_core.config import IndexConfig
from gallery_core.search.index import (
    angular_to_cosine,
    build_index,
    exact_search,
    load_index,
    query_index,
    save_index,
)
from gallery_core.vectors import l2_normalise


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return l2_normalise(np.random.default_rng(0).normal(size=(500, 32)).astype(np.float32))


def test_every_item_retrieves_itself_first(vectors, tmp_path):
    save_index(build_index(vectors, IndexConfig(n_trees=10)), tmp_path / "index.ann")
    index = load_index(tmp_path / "index.ann", 32)
    for i in range(0, 500, 7):
        rows, sims = query_index(index, vectors[i], k=3)
        assert rows[0] == i and sims[0] == pytest.approx(1.0, abs=1e-5)


def test_deterministic_for_a_seed(vectors, tmp_path):
    for name in ("a", "b"):
        save_index(build_index(vectors, IndexConfig(n_trees=5), seed=3), tmp_path / f"{name}.ann")
    assert (tmp_path / "a.ann").read_bytes() == (tmp_path / "b.ann").read_bytes()


def test_angular_distance_to_cosine(vectors):
    a, b = vectors[0], vectors[1]
    distance = np.linalg.norm(a - b)
    assert angular_to_cosine(np.array([distance]))[0] == pytest.approx(float(a @ b), abs=1e-5)


def test_exact_search_by_hand():
    embeddings = l2_normalise(np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32))
    rows, sims = exact_search(embeddings, l2_normalise(np.array([[1, 0.1]], dtype=np.float32)), k=2)
    assert rows[0].tolist() == [0, 2]
    assert sims[0, 0] > sims[0, 1]


def test_annoy_agrees_with_exact_search(vectors):
    index = build_index(vectors, IndexConfig(n_trees=50))
    exact, _ = exact_search(vectors, vectors[:50], k=10)
    recall = np.mean([len(set(query_index(index, q, 10)[0]) & set(e)) / 10 for q, e in zip(vectors[:50], exact,
                                                                                          strict=True)])
    assert recall > 0.9


def test_a_listings_own_photos_retrieve_it(tiny_run):
    run = Run(tiny_run)
    hits = 0
    for listing_id in run.listings["listing_id"].iloc[:10]:
        photos = run.listing_photos(listing_id)["photo_index"].to_numpy()
        results = run.retrieve(run.seed_vector(photos), k=1)
        hits += results["listing_id"].iloc[0] == listing_id
    assert hits == 10  # the seed gallery equals the listing's embedding exactly


def test_filtered_retrieval_and_exclusion(tiny_run):
    run = Run(tiny_run)
    seed = np.asarray(run.listing_embeddings[0])
    hotels = (run.listings["property_type"] == "hotel").to_numpy()
    results = run.retrieve(seed, k=5, candidates=hotels)
    assert set(run.listings.set_index("listing_id").loc[results["listing_id"], "property_type"]) <= {"hotel"}
    first = run.listings["listing_id"].iloc[0]
    assert first not in set(run.retrieve(seed, k=5, exclude=[first])["listing_id"])
    assert list(results["rank"]) == list(range(1, len(results) + 1))
    assert results["score"].is_monotonic_decreasing


def test_annoy_path_of_retrieval_agrees_with_the_exact_path(tiny_run):
    run = Run(tiny_run)
    assert len(run.listings) < run.config.index.exact_below  # the tiny run searches exactly by default
    seed = np.asarray(run.listing_embeddings[7])
    exact = run.retrieve(seed, k=5)
    run.config.index.exact_below = 0  # force the Annoy index
    approximate = run.retrieve(seed, k=5)
    assert approximate["listing_id"].iloc[0] == exact["listing_id"].iloc[0] == run.listings["listing_id"].iloc[7]
    assert approximate["score"].iloc[0] == pytest.approx(exact["score"].iloc[0], abs=1e-4)
