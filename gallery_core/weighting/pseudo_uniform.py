"""Pseudo-uniform scaling (the paper's): each regression MSE divided by its labels' variance."""

from __future__ import annotations

import torch

from gallery_core.data.tasks import TaskSpec
from gallery_core.weighting.base import LossWeighting
from gallery_core.weighting.registry import register_weighting


@register_weighting
class PseudoUniformWeighting(LossWeighting):
    """The paper's pseudo-uniform scaling: weight 1 for each classification loss and 1 / sigma_k^2
    for each regression MSE, sigma_k^2 being the variance of task k's training labels."""

    name = "pseudo_uniform"

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float],
                 extra: dict[str, float] | None = None):
        super().__init__(tasks, regression_variances, extra)
        self._weights = {}
        for t in tasks:
            if t.kind == "regression":
                variance = regression_variances[t.name]
                if not variance > 0:
                    raise ValueError(f"task {t.name!r}: training labels have variance {variance}; cannot scale")
                self._weights[t.name] = 1.0 / variance
            else:
                self._weights[t.name] = 1.0
        self._weights.update(self.extra)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self._weights[name] * loss for name, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self._weights)
