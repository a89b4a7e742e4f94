"""Loss weighting strategies: how per-task losses combine into one training objective.

Each strategy is an ``nn.Module`` (so learned weights train with the model and live in the
checkpoint) with one ``forward(losses) -> total`` and a ``weights()`` report; ``base.LossWeighting``
says what they share. One file per strategy, registered by ``@register_weighting`` under its ``name``
and created by ``create_weighting(name, ...)``: adding a strategy is one new file plus its import line
at the bottom of this one. ``TrainConfig.weighting`` and the CLI's ``--weighting`` read the names from
here, so there is no second list to keep in step.

Objectives that are not attribute tasks (the triplet ranking and VAE losses of
``gallery_core.training.triplets`` / ``gallery_core.models.vae``) enter as further named entries of ``losses``; each
strategy takes them as ``extra={name: weight}``. Equal and pseudo-uniform weighting multiply them by
their configured weight (it is the knob that sets how much they count); uncertainty weighting learns
their weight like any task's, starting from the configured one.
"""

from __future__ import annotations

from typing import TypeVar

from gallery_core.data.tasks import TaskSpec
from gallery_core.weighting.base import LossWeighting

_REGISTRY: dict[str, type[LossWeighting]] = {}

W = TypeVar("W", bound=type[LossWeighting])


def register_weighting(cls: W) -> W:
    """Class decorator: make ``cls`` available under ``cls.name``. A second strategy under one name is
    refused, as a silent replacement would change what a saved config means."""
    name = cls.name
    if name in _REGISTRY:
        raise ValueError(f"weighting {name!r} is already registered (by {_REGISTRY[name].__qualname__}); "
                         "pick another name")
    if name == LossWeighting.name:
        raise ValueError(f"{cls.__qualname__} needs its own class attribute name")
    _REGISTRY[name] = cls
    return cls


def list_weightings() -> list[str]:
    return sorted(_REGISTRY)


def create_weighting(name: str, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float],
                     extra: dict[str, float] | None = None) -> LossWeighting:
    """``extra``: further objectives by name and weight (see the module docstring)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown weighting {name!r}; choose from {list_weightings()}")
    return _REGISTRY[name](tasks, regression_variances, extra)


# The strategies register themselves on import: one line each. Last, because they import the decorator.
from gallery_core.weighting import (  # noqa: E402
    equal,
    pseudo_uniform,
    uncertainty,
)

# The strategies' classes, importable from here as before the split.
EqualWeighting = equal.EqualWeighting
PseudoUniformWeighting = pseudo_uniform.PseudoUniformWeighting
UncertaintyWeighting = uncertainty.UncertaintyWeighting
