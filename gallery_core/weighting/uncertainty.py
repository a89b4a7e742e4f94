"""Uncertainty weighting (Kendall, Gal & Cipolla 2018): learned per-task log-variances."""

from __future__ import annotations

import math

import torch
from torch import nn

from gallery_core.data.tasks import TaskSpec
from gallery_core.weighting.base import LossWeighting
from gallery_core.weighting.registry import register_weighting


@register_weighting
class UncertaintyWeighting(LossWeighting):
    """Kendall, Gal and Cipolla (2018): homoscedastic uncertainty with learned s_k = log sigma_k^2.

    total = sum_cls exp(-s_k) L_k + sum_reg 0.5 exp(-s_k) L_k + sum_k 0.5 s_k

    s_k starts at 0 for classification (Kendall's choice) and at the log of the training-label
    variance for regression: there the raw MSE is in squared units (euros^2), and starting from
    s_k = 0 the learning rate of 1e-4 would need tens of thousands of steps just to reach the scale.
    An extra objective of weight w starts at s = -log w (multiplier w) with the factor 1 of a
    classification loss; its s_k follows the attribute tasks' in ``log_vars``.
    """

    name = "uncertainty"

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float],
                 extra: dict[str, float] | None = None):
        super().__init__(tasks, regression_variances, extra)
        init = [math.log(regression_variances[t.name]) if t.kind == "regression" else 0.0 for t in tasks]
        init += [-math.log(w) for w in self.extra.values()]
        self.log_vars = nn.Parameter(torch.tensor(init, dtype=torch.float32))
        self._index = {name: i for i, name in enumerate([t.name for t in tasks] + list(self.extra))}
        self._factor = ({t.name: 0.5 if t.kind == "regression" else 1.0 for t in tasks}
                        | dict.fromkeys(self.extra, 1.0))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = []
        for name, loss in losses.items():
            s = self.log_vars[self._index[name]]
            terms.append(self._factor[name] * torch.exp(-s) * loss + 0.5 * s)
        return torch.stack(terms).sum()

    def weights(self) -> dict[str, float]:
        s = self.log_vars.detach().cpu().tolist()
        return {name: self._factor[name] * math.exp(-s[i]) for name, i in self._index.items()}
