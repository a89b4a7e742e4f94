"""Each loss weighting against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from gallery_core.data.tasks import TaskSpec
from gallery_core.weighting import EqualWeighting, LossWeighting, create_weighting

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


# --- the registry: found by name, one strategy per name ---


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the weighting registry, so strategies a test registers leave with it."""
    import gallery_core.weighting as weighting

    monkeypatch.setattr(weighting.registry, "_REGISTRY", dict(weighting.registry._REGISTRY))
    return weighting


def test_a_second_strategy_under_one_name_is_refused(registry):
    before = registry.list_weightings()
    with pytest.raises(ValueError, match="'equal' is already registered"):
        @registry.register_weighting
        class AnotherEqual(LossWeighting):
            name = "equal"
    with pytest.raises(ValueError, match="needs its own class attribute name"):
        @registry.register_weighting
        class Unnamed(LossWeighting):
            pass
    assert registry.list_weightings() == before
    assert isinstance(create_weighting("equal", TASKS, VARIANCES), registry.EqualWeighting)


def test_a_registered_strategy_is_usable_by_name_in_config_and_training(registry, tiny_catalogue, tmp_path):
    from conftest import tiny_config

    from gallery_core.config import TrainConfig
    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.errors import ConfigError
    from gallery_core.training.loop import train

    @registry.register_weighting
    class HalfWeighting(LossWeighting):
        """Every loss at half weight: a stand-in for a user's own strategy."""

        name = "half"

        def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
            return 0.5 * torch.stack(list(losses.values())).sum()

        def weights(self) -> dict[str, float]:
            return dict.fromkeys([*self.tasks, *self.extra], 0.5)

    assert "half" in registry.list_weightings()
    assert isinstance(create_weighting("half", TASKS, VARIANCES), HalfWeighting)
    TrainConfig(weighting="half").validate()
    with pytest.raises(ConfigError, match="unknown weighting 'halve'.*'half'"):
        TrainConfig(weighting="halve").validate()

    result = train(load_catalogue(tiny_catalogue), tiny_config(weighting="half", max_epochs=1), tmp_path / "run",
                   progress=False)
    assert set(result.history[0]["task_weights"].values()) == {0.5}
    assert torch.load(result.checkpoint_path, weights_only=True)["config"]["train"]["weighting"] == "half"


def test_the_cli_offers_every_registered_strategy(registry):
    from gallery_core.cli import build_parser

    @registry.register_weighting
    class Custom(EqualWeighting):
        name = "custom"

    args = build_parser().parse_args(["build", "--weighting", "custom"])
    assert args.weighting == "custom"
