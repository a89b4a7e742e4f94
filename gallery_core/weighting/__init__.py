"""Loss weighting strategies: how per-task losses combine into one training objective.

Each strategy is an ``nn.Module`` (so learned weights train with the model and live in the
checkpoint) with one ``forward(losses) -> total`` and a ``weights()`` report; ``base.LossWeighting``
says what they share. One file per strategy, registered by ``@register_weighting`` under its ``name``
and created by ``create_weighting(name, ...)`` (``registry.py``, which the strategies import, so none of them
imports this package): adding a strategy is one new file plus its import line at the bottom of this one. ``TrainConfig.weighting`` and the CLI's ``--weighting`` read the names from
here, so there is no second list to keep in step.

Objectives that are not attribute tasks (the triplet ranking and VAE losses of
``gallery_core.training.triplets`` / ``gallery_core.models.vae``) enter as further named entries of ``losses``; each
strategy takes them as ``extra={name: weight}``. Equal and pseudo-uniform weighting multiply them by
their configured weight (it is the knob that sets how much they count); uncertainty weighting learns
their weight like any task's, starting from the configured one.
"""

from __future__ import annotations

# The strategies register themselves on import (into ``registry``): one line each.
from gallery_core.weighting import (
    equal,
    pseudo_uniform,
    uncertainty,
)
from gallery_core.weighting.base import LossWeighting
from gallery_core.weighting.registry import create_weighting, list_weightings, register_weighting

# The strategies' classes, importable from here as before the split.
EqualWeighting = equal.EqualWeighting
PseudoUniformWeighting = pseudo_uniform.PseudoUniformWeighting
UncertaintyWeighting = uncertainty.UncertaintyWeighting

__all__ = ["EqualWeighting", "LossWeighting", "PseudoUniformWeighting", "UncertaintyWeighting", "create_weighting",
           "list_weightings", "register_weighting"]
