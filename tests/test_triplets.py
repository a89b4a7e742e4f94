"""Multi-attribute triplet mining (levels on a hand-made table) and the margin loss (hand computations)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gallery_core.data.tasks import TaskSpec
from gallery_core.training.triplets import (
    MISSING,
    MiningConfig,
    attribute_codes,
    level_of,
    mine_levels,
    shared_fraction,
    triplet_margin_loss,
)
from gallery_core.weighting import create_weighting

TASKS = (
    TaskSpec("pool", "pool", "binary"),
    TaskSpec("city", "city", "multiclass", classes=("Oslo", "Rome")),
    TaskSpec("kind", "kind", "multiclass", classes=("flat", "hotel", "villa")),
    TaskSpec("price", "price", "regression"),
)


def hand_table() -> pd.DataFrame:
    """Anchor L0 and candidates sharing 4/4, 3/4, 2/4, 1/4 and 0/4 of its attributes; L6 records too few."""
    return pd.DataFrame({
        "listing_id": [f"L{i}" for i in range(7)],
        "pool": [1, 1, 1, 1, 0, 0, np.nan],
        "city": ["Oslo", "Oslo", "Oslo", "Rome", "Rome", "Rome", np.nan],
        "kind": ["hotel", "hotel", "hotel", "hotel", "flat", "villa", "hotel"],
        "price": [10.0, 11.0, 500.0, 600.0, 10.5, 700.0, np.nan],
    })


def test_attribute_codes_mask_missing_and_bin_regression():
    codes = attribute_codes(hand_table(), TASKS, n_bins=2)
    assert codes.shape == (7, 4)
    assert codes[6].tolist() == [MISSING, MISSING, 1, MISSING]  # only kind recorded
    assert codes[:, 1].tolist()[:6] == [0, 0, 0, 1, 1, 1]
    # Two price bins split at the median of the recorded prices: cheap (10, 10.5, 11) vs dear.
    assert codes[[0, 1, 4], 3].tolist() == [0, 0, 0] and codes[[2, 3, 5], 3].tolist() == [1, 1, 1]


def test_attribute_codes_fit_bins_on_given_rows_only():
    table = pd.DataFrame({"listing_id": ["a", "b", "c", "d"], "price": [1.0, 2.0, 3.0, 1000.0]})
    task = (TaskSpec("price", "price", "regression"),)
    assert attribute_codes(table, task, fit_rows=np.array([0, 1, 2]), n_bins=2)[:, 0].tolist() == [0, 1, 1, 1]


def test_shared_fraction_counts_only_attributes_both_record():
    codes = attribute_codes(hand_table(), TASKS, n_bins=2)
    fraction = shared_fraction(codes[0], codes[1:], min_shared=2)
    assert fraction[:5].tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert math.isnan(fraction[5])  # L6 shares only one recorded attribute with L0: not comparable
    assert shared_fraction(codes[0], codes[6:], min_shared=1)[0] == 1.0


def test_level_of_follows_descending_edges():
    levels = level_of(np.array([1.0, 0.8, 0.7, 0.69, 0.4, 0.0, np.nan]), (0.7, 0.4))
    assert levels.tolist() == [0, 0, 0, 1, 1, 2, -1]


def test_mining_puts_each_candidate_in_its_level():
    codes = attribute_codes(hand_table(), TASKS, n_bins=2)
    config = MiningConfig(level_edges=(0.9, 0.6, 0.3), per_level=4, min_shared=2, seed=0)
    table = mine_levels(codes, np.arange(7), config)
    assert table.candidates.shape == (7, 4, 4)
    levels = [sorted(int(r) for r in table.candidates[0, level] if r >= 0) for level in range(4)]
    # 1.0 -> level 0; 0.75 -> 1; 0.5 -> 2; 0.25 and 0.0 -> 3; L6 (not comparable) nowhere.
    assert levels == [[1], [2], [3], [4, 5]]
    assert table.counts()[0].tolist() == [1, 1, 1, 2]
    assert table.summary()["anchors"] == 7


def test_mining_is_deterministic_and_stays_within_rows():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, size=(200, 6))
    rows = np.arange(0, 200, 2)
    config = MiningConfig(level_edges=(0.8, 0.5, 0.2), pool_size=30, seed=3)
    a, b = mine_levels(codes, rows, config), mine_levels(codes, rows, config)
    assert np.array_equal(a.candidates, b.candidates)
    found = a.candidates[a.candidates >= 0]
    assert np.isin(found, rows).all()
    assert not (a.candidates == a.anchors[:, None, None]).any()  # never the anchor itself


def test_sampled_triplets_put_the_positive_on_a_better_level():
    codes = attribute_codes(hand_table(), TASKS, n_bins=2)
    table = mine_levels(codes, np.arange(6), MiningConfig(level_edges=(0.9, 0.6, 0.3), min_shared=2))
    level_of_candidate = {int(r): lvl for lvl in range(4) for r in table.candidates[0, lvl] if r >= 0}
    for seed in range(20):
        anchor, positive, negative, gap = table.sample(np.array([0]), np.random.default_rng(seed))
        assert anchor.tolist() == [0]
        assert gap[0] == level_of_candidate[int(negative[0])] - level_of_candidate[int(positive[0])] >= 1
    again = [table.sample(np.arange(6), np.random.default_rng(7)) for _ in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(again[0], again[1], strict=True))
    assert len(table.sample(np.array([99]), np.random.default_rng(0))[0]) == 0  # not an anchor: left out


def test_triplet_loss_matches_a_hand_computation():
    anchor = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    positive = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # 45 degrees; identical direction
    negative = torch.tensor([[0.0, 3.0], [1.0, 0.0]])  # 90 degrees; 90 degrees
    gap = torch.tensor([1, 2])
    # Unit vectors, d = 2 - 2 cos. Triplet 1: d_ap = 2 - sqrt(2), d_an = 2, margin 1.5 x gap 1.
    # Triplet 2: d_ap = 0, d_an = 2, margin 1.5 x gap 2.
    expected = (max(0.0, (2 - math.sqrt(2)) - 2 + 1.5) + max(0.0, 0 - 2 + 3.0)) / 2
    assert triplet_margin_loss(anchor, positive, negative, gap, margin=1.5).item() == pytest.approx(expected, abs=1e-6)
    assert triplet_margin_loss(anchor, positive, negative, gap, margin=0.2).item() == pytest.approx(0.0)
    empty = torch.zeros(0, 2, requires_grad=True)
    assert triplet_margin_loss(empty, empty, empty).item() == 0.0


def test_triplet_loss_pulls_the_positive_closer():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[0.0, 1.0]], requires_grad=True)
    negative = torch.tensor([[1.0, 0.1]])
    triplet_margin_loss(anchor, positive, negative).backward()
    assert positive.grad[0, 0] < 0  # a descent step moves the positive towards the anchor (+x)


@pytest.mark.parametrize("name", ["equal", "pseudo_uniform", "uncertainty"])
def test_extra_objectives_enter_every_weighting_with_their_weight(name):
    tasks = (TaskSpec("pool", "pool", "binary"), TaskSpec("price", "price", "regression"))
    weighting = create_weighting(name, tasks, {"price": 4.0}, extra={"triplet": 2.0, "vae": 0.5})
    weights = weighting.weights()
    assert weights["triplet"] == pytest.approx(2.0) and weights["vae"] == pytest.approx(0.5)
    losses = {"pool": torch.tensor(1.0), "triplet": torch.tensor(3.0)}
    total = weighting(losses).item()
    if name == "uncertainty":  # exp(-s) L + s / 2 with s = 0 (pool) and s = -log 2 (triplet)
        assert total == pytest.approx(1.0 + 2.0 * 3.0 - 0.5 * math.log(2.0), rel=1e-6)
    else:
        assert total == pytest.approx(1.0 + 2.0 * 3.0)
    with pytest.raises(ValueError, match="names of attribute tasks"):
        create_weighting(name, tasks, {"price": 4.0}, extra={"pool": 1.0})
    with pytest.raises(ValueError, match="must be > 0"):
        create_weighting(name, tasks, {"price": 4.0}, extra={"triplet": 0.0})
