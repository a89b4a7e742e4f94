"""Each loss weighting against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from gallery_core.data.tasks import TaskSpec
from gallery_core.weighting import create_weighting

TASKS = (TaskSpec("flag", "flag", "binary"), TaskSpec("kind", "kind", "multiclass", ("a", "b")),
         TaskSpec("price", "price", "regression"), TaskSpec("score", "score", "regression"))
VARIANCES = {"price": 400.0, "score": 0.25}
LOSSES = {"flag": torch.tensor(0.5), "kind": torch.tensor(1.2), "price": torch.tensor(800.0),
          "score": torch.tensor(0.1)}


def test_equal():
    total = create_weighting("equal", TASKS, VARIANCES)(LOSSES)
    assert total.item() == pytest.approx(0.5 + 1.2 + 800.0 + 0.1)


def test_pseudo_uniform_divides_regression_mse_by_label_variance():
    weighting = create_weighting("pseudo_uniform", TASKS, VARIANCES)
    assert weighting(LOSSES).item() == pytest.approx(0.5 + 1.2 + 800.0 / 400.0 + 0.1 / 0.25)
    assert weighting.weights() == {"flag": 1.0, "kind": 1.0, "price": 1 / 400.0, "score": 4.0}


def test_pseudo_uniform_refuses_constant_labels():
    with pytest.raises(ValueError, match="variance 0.0"):
        create_weighting("pseudo_uniform", TASKS, {"price": 0.0, "score": 1.0})


def test_uncertainty_formula_and_learning():
    weighting = create_weighting("uncertainty", TASKS, VARIANCES)
    s = {"flag": 0.3, "kind": -0.2, "price": math.log(400.0) + 0.5, "score": -1.0}
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor([s["flag"], s["kind"], s["price"], s["score"]]))
    expected = (math.exp(-s["flag"]) * 0.5 + 0.5 * s["flag"]
                + math.exp(-s["kind"]) * 1.2 + 0.5 * s["kind"]
                + 0.5 * math.exp(-s["price"]) * 800.0 + 0.5 * s["price"]
                + 0.5 * math.exp(-s["score"]) * 0.1 + 0.5 * s["score"])
    assert weighting(LOSSES).item() == pytest.approx(expected, rel=1e-6)
    assert weighting.weights()["kind"] == pytest.approx(math.exp(0.2))
    assert weighting.weights()["price"] == pytest.approx(0.5 * math.exp(-s["price"]))
    # the gradient on s_k is 0.5 - w_k L_k: a task with a large weighted loss gets its weight lowered
    weighting(LOSSES).backward()
    grad = weighting.log_vars.grad
    assert grad[1].item() == pytest.approx(0.5 - math.exp(-s["kind"]) * 1.2, rel=1e-6)


def test_uncertainty_starts_regression_at_the_label_variance():
    weighting = create_weighting("uncertainty", TASKS, VARIANCES)
    assert weighting.weights()["price"] == pytest.approx(0.5 / 400.0)
    assert weighting.weights()["flag"] == pytest.approx(1.0)


def test_only_observed_tasks_count():
    weighting = create_weighting("pseudo_uniform", TASKS, VARIANCES)
    assert weighting({"flag": torch.tensor(0.5)}).item() == pytest.approx(0.5)


def test_unknown_weighting():
    with pytest.raises(ValueError, match="unknown weighting 'magic'"):
        create_weighting("magic", TASKS, VARIANCES)
