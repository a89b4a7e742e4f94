"""The evaluation's metric functions on small hand-made cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gallery_core.config import IndexConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.evaluation.metrics import (
    accuracy,
    attribute_precision_at_k,
    average_precision,
    class_balance,
    completion_ranks,
    gallery_completion_ranks,
    hit_rate_at_k,
    majority_baseline,
    neighbours,
    paired_bootstrap_difference,
    pearson,
    precision_recall_at_k,
    recall_at_k,
    relative_error_increase,
    split_galleries,
    task_error,
    wilson_interval,
)
from gallery_core.evaluation.sections.audit import ranking_scores
from gallery_core.evaluation.tasks import default_single_task_tasks, holdout_task, nested_subsets
from gallery_core.search.index import build_index, exact_search, query_index
from gallery_core.vectors import l2_normalise

# --- gallery completion ---


def test_split_galleries_halves_each_gallery_and_is_seeded():
    listing_index = np.array([0, 0, 0, 0, 1, 1, 1, 2, 3, 3])
    in_query = split_galleries(listing_index, 4, seed=1)
    assert np.bincount(listing_index[in_query], minlength=4).tolist() == [2, 1, 0, 1]  # floor(n / 2); 1 photo: none
    assert np.array_equal(in_query, split_galleries(listing_index, 4, seed=1))
    with pytest.raises(ValueError, match="outside"):
        split_galleries(listing_index, 3)


def test_gallery_completion_finds_the_other_half_by_hand():
    # Listing 0: photos along x, listing 1 along y, listing 2 along -x; every query half matches its own rest.
    photos = np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1], [-1, 0.1], [-1, -0.1]], dtype=np.float32)
    listing_index = np.array([0, 0, 1, 1, 2, 2])
    in_query = np.array([True, False, True, False, True, False])
    ranks = gallery_completion_ranks(photos, listing_index, 3, in_query)
    assert ranks.tolist() == [1, 1, 1]
    assert hit_rate_at_k(ranks, 1) == 1.0


def test_gallery_completion_counts_a_closer_listing_against_the_query():
    # Listing 0's query half (x axis) is closer to listing 1's gallery (x axis) than to its own other half (y).
    photos = np.array([[1, 0], [0, 1], [1, 0.05], [1, -0.05], [-1, 0], [-1, 0.1]], dtype=np.float32)
    listing_index = np.array([0, 0, 1, 1, 2, 2])
    in_query = np.array([True, False, True, False, True, False])
    ranks = gallery_completion_ranks(photos, listing_index, 3, in_query, listings=np.array([0]))
    # candidates for listing 0: its rest (cos 0 to the query), listing 1 (cos ~1), listing 2 (cos ~-1)
    assert ranks.tolist() == [2]
    assert hit_rate_at_k(ranks, 1) == 0.0 and hit_rate_at_k(ranks, 2) == 1.0


def test_completion_ranks_with_a_changed_query_half():
    # The ranking robustness uses with corrupted query halves: 3 listings along x, y and -x.
    whole = np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    rest = np.array([[1, 0]], dtype=np.float32)  # listing 0's other half
    own = np.array([0])
    assert completion_ranks(np.array([[1, 0]], np.float32), rest, whole, own).tolist() == [1]
    # A query half turned towards listing 1 finds it first: listing 0's other half drops to rank 2; its own
    # whole gallery (which contains the query) is never a candidate.
    turned = l2_normalise(np.array([[0.6, 0.8]]))
    assert completion_ranks(turned, rest, whole, own).tolist() == [2]
    # Ties count against the listing: a candidate scoring exactly as its other half ranks above it.
    tie = l2_normalise(np.array([[1, 1]]))
    assert completion_ranks(tie, rest, whole, own).tolist() == [2]


def test_gallery_completion_refuses_a_listing_without_two_halves():
    photos = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="both halves"):
        gallery_completion_ranks(photos, np.array([0, 0, 1]), 2, np.array([True, False, True]), np.array([1]))


# --- attribute agreement and the index ---


def test_neighbours_leave_the_item_out():
    x = l2_normalise(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32))
    assert neighbours(x, 1).ravel().tolist() == [1, 0, 3, 2]
    with pytest.raises(ValueError, match="k must be"):
        neighbours(x, 4)


def test_attribute_precision_at_k_by_hand():
    values = np.array(["a", "a", "b", None, "a"], dtype=object)
    rows = np.array([[1, 2], [0, 3], [0, 4], [0, 1], [0, 1]])  # query 3 has no value and is skipped
    result = attribute_precision_at_k(values, rows)
    # query 0: a,b -> 1/2; 1: a,missing -> 1/2; 2: a,a -> 0/2; 4: a,a -> 2/2  => 4 / 8
    assert result["precision"] == pytest.approx(0.5)
    assert result["n_queries"] == 4
    # chance: other listings sharing the value, out of 4: a -> 2/4 (three queries), b -> 0/4
    assert result["chance"] == pytest.approx((0.5 * 3 + 0) / 4)


def test_recall_at_k_by_hand_and_annoy_against_exact():
    assert recall_at_k([[1, 2, 3], [4, 5]], [[3, 2, 1], [4, 6]]) == pytest.approx((1 + 0.5) / 2)
    vectors = l2_normalise(np.random.default_rng(0).normal(size=(300, 8)))
    index = build_index(vectors, IndexConfig(n_trees=20), seed=0)
    approx = [query_index(index, v, 10, search_k=-1)[0] for v in vectors[:50]]
    exact = exact_search(vectors, vectors[:50], 10)[0]
    assert recall_at_k(exact, exact) == 1.0
    assert 0.5 < recall_at_k(approx, exact) <= 1.0


# --- the audit ---


def test_precision_recall_at_k_by_hand():
    ranked = np.array([True, False, True, False, False])
    assert precision_recall_at_k(ranked, 2) == {"k": 2, "hits": 1, "precision": 0.5, "recall": 0.5}
    at_3 = precision_recall_at_k(ranked, 3, n_positive=4)  # two positives could not be ranked
    assert at_3["precision"] == pytest.approx(2 / 3) and at_3["recall"] == pytest.approx(0.5)
    assert precision_recall_at_k(ranked, 10)["precision"] == pytest.approx(2 / 5)  # fewer items than k
    with pytest.raises(ValueError):
        precision_recall_at_k(ranked, 0)


def test_average_precision_by_hand():
    assert average_precision(np.array([True, False, True])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([True, False, True]), n_positive=4) == pytest.approx((1 + 2 / 3) / 4)
    assert math.isnan(average_precision(np.array([False, False])))


def test_ranking_scores_against_known_flips():
    ranked = pd.Series(["L1", "L2", "L3", "L4"])
    scores = ranking_scores(ranked, {"L2", "L4"}, 2, (1, 2))
    assert [s["precision"] for s in scores["at_k"]] == [0.0, 0.5]
    assert scores["r_precision"] == 0.5 and scores["base_rate"] == 0.5
    assert scores["average_precision"] == pytest.approx((1 / 2 + 2 / 4) / 2)


# --- per-task errors, class balance, correlation ---


def test_task_error_and_relative_error_increase():
    assert task_error("binary", {"accuracy": 0.9}) == pytest.approx(0.1)
    assert task_error("regression", {"rmse": 3.0}) == pytest.approx(9.0)
    assert relative_error_increase(0.2, 0.1) == pytest.approx(1.0)  # MTL makes twice the errors
    assert relative_error_increase(0.09, 0.1) == pytest.approx(-0.1)  # MTL makes 10% fewer
    assert relative_error_increase(0.0, 0.0) == 0.0 and relative_error_increase(0.1, 0.0) == math.inf
    with pytest.raises(ValueError):
        task_error("ranking", {})


def test_class_balance_is_the_minority_share():
    assert class_balance(np.array([0, 0, 0, 1])) == pytest.approx(0.25)
    assert class_balance(np.array([1, 1, 1, 0, np.nan])) == pytest.approx(0.25)  # missing labels ignored
    assert class_balance(np.array([0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="binary"):
        class_balance(np.array([0, 2]))


def test_pearson_matches_scipy_and_says_when_undefined():
    x, y = [0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.5, 2.9, 4.2, 5.1]
    result = pearson(x, y)
    expected = stats.pearsonr(x, y)
    assert result["r"] == pytest.approx(expected.statistic) and result["p"] == pytest.approx(expected.pvalue)
    assert pearson([0, 1, 2], [0, 2, 4])["r"] == pytest.approx(1.0)
    assert math.isnan(pearson([0, 1], [0, 1])["r"])  # fewer than 3 points
    assert math.isnan(pearson([1, 1, 1], [0, 1, 2])["r"])  # constant
    assert pearson([0, 1, 2, np.nan], [0, 1, 2, 5])["n"] == 3  # non-finite pairs dropped


# --- accuracy with intervals ---


def test_accuracy_and_wilson_interval():
    assert accuracy(np.array([1, 2, 3]), np.array([1, 0, 3])) == pytest.approx(2 / 3)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_majority_baseline_is_the_training_majority_scored_on_the_test_labels():
    assert majority_baseline(np.array([2, 2, 1, 0]), np.array([2, 1, 1, 2])) == (2, 0.5)
    assert majority_baseline(np.array([3, 1, 1, 3]), np.array([1, 3, 3])) == (1, pytest.approx(1 / 3))  # tie: smaller


def test_paired_bootstrap_difference():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1])
    same = paired_bootstrap_difference(a, a)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    better = paired_bootstrap_difference(np.ones(200), np.zeros(200))
    assert better["low"] == better["high"] == 1.0


# --- section helpers ---


def test_holdout_task_sorts_numeric_classes_as_numbers():
    task = holdout_task(pd.DataFrame({"stars": [10, 2, np.nan, 3, 2]}), "stars")
    assert task.kind == "multiclass" and task.classes == ("2", "3", "10")
    with pytest.raises(ValueError, match="not in"):
        holdout_task(pd.DataFrame({"a": [1, 2]}), "stars")


def test_nested_subsets_grow_by_adding_rows():
    subsets = nested_subsets(np.arange(100), (0.2, 0.5, 1.0), seed=0)
    assert [len(s) for s in subsets.values()] == [20, 50, 100]
    assert set(subsets[0.2]) <= set(subsets[0.5]) <= set(subsets[1.0])


def test_default_single_task_tasks_spread_over_class_balance():
    rng = np.random.default_rng(0)
    shares = {"b1": 0.05, "b2": 0.2, "b3": 0.3, "b4": 0.45}
    listings = pd.DataFrame({name: (rng.random(400) < p).astype(float) for name, p in shares.items()})
    listings["c"] = rng.choice(["x", "y", "z"], 400)
    listings["r"] = rng.normal(size=400)
    tasks = tuple(TaskSpec(n, n, "binary") for n in shares) + (
        TaskSpec("c", "c", "multiclass", ("x", "y", "z")), TaskSpec("r", "r", "regression"))
    chosen = default_single_task_tasks(tasks, listings, np.zeros(400, dtype=bool), n_binary=2)
    assert chosen == ["b1", "b4", "c", "r"]  # the most skewed and the most balanced binary tasks


def test_the_probe_learns_separable_classes_and_is_seeded():
    from gallery_core.evaluation.config import ProbeConfig
    from gallery_core.evaluation.models import fit_probe

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=150)
    x = np.eye(3)[y] * 5 + rng.normal(scale=0.3, size=(150, 3))
    task = TaskSpec("c", "c", "multiclass", ("a", "b", "c"))
    config = ProbeConfig(hidden=8, max_epochs=100, patience=10)
    probe = fit_probe(task, x, y, config, seed=1)
    assert (probe.predict_proba(x).argmax(axis=1) == y).mean() > 0.95
    again = fit_probe(task, x, y, config, seed=1)
    assert np.allclose(probe.predict_proba(x), again.predict_proba(x))
    with pytest.raises(ValueError, match="hidden"):
        fit_probe(task, x, y, ProbeConfig())
