"""Loss weighting strategies: how per-task losses combine into one training objective.

Each strategy is an ``nn.Module`` (so learned weights train with the model and live in the
checkpoint) with one ``forward(losses) -> total`` and a ``weights()`` report. ``losses`` holds only
the tasks that had observed labels in the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gallery_core.tasks import TaskSpec


class LossWeighting(nn.Module):
    name: str = "base"

    def __init__(self, tasks: tuple[TaskSpec, ...]):
        super().__init__()
        self.tasks = {t.name: t for t in tasks}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        """The multiplier each task's loss has in the total right now."""
        raise NotImplementedError


class EqualWeighting(LossWeighting):
    """Plain sum: every task's loss counts once, whatever its scale."""

    name = "equal"

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(losses.values())).sum()

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.tasks, 1.0)


class PseudoUniformWeighting(LossWeighting):
    """The paper's pseudo-uniform scaling: weight 1 for each classification loss and 1 / sigma_k^2
    for each regression MSE, sigma_k^2 being the variance of task k's training labels."""

    name = "pseudo_uniform"

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float]):
        super().__init__(tasks)
        self._weights = {}
        for t in tasks:
            if t.kind == "regression":
                variance = regression_variances[t.name]
                if not variance > 0:
                    raise ValueError(f"task {t.name!r}: training labels have variance {variance}; cannot scale")
                self._weights[t.name] = 1.0 / variance
            else:
                self._weights[t.name] = 1.0

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self._weights[name] * loss for name, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


class UncertaintyWeighting(LossWeighting):
    """Kendall, Gal and Cipolla (2018): homoscedastic uncertainty with learned s_k = log sigma_k^2.

    total = sum_cls exp(-s_k) L_k + sum_reg 0.5 exp(-s_k) L_k + sum_k 0.5 s_k

    s_k starts at 0 for classification (Kendall's choice) and at the log of the training-label
    variance for regression: there the raw MSE is in squared units (euros^2), and starting from
    s_k = 0 the learning rate of 1e-4 would need tens of thousands of steps just to reach the scale.
    """

    name = "uncertainty"

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float]):
        super().__init__(tasks)
        init = [math.log(regression_variances[t.name]) if t.kind == "regression" else 0.0 for t in tasks]
        self.log_vars = nn.Parameter(torch.tensor(init, dtype=torch.float32))
        self._index = {t.name: i for i, t in enumerate(tasks)}
        self._factor = {t.name: 0.5 if t.kind == "regression" else 1.0 for t in tasks}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = []
        for name, loss in losses.items():
            s = self.log_vars[self._index[name]]
            terms.append(self._factor[name] * torch.exp(-s) * loss + 0.5 * s)
        return torch.stack(terms).sum()

    def weights(self) -> dict[str, float]:
        s = self.log_vars.detach().cpu().tolist()
        return {name: self._factor[name] * math.exp(-s[i]) for name, i in self._index.items()}


WEIGHTINGS: dict[str, type[LossWeighting]] = {
    cls.name: cls for cls in (EqualWeighting, PseudoUniformWeighting, UncertaintyWeighting)
}


def create_weighting(name: str, tasks: tuple[TaskSpec, ...],
                     regression_variances: dict[str, float]) -> LossWeighting:
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {name!r}; choose from {sorted(WEIGHTINGS)}")
    if name == "equal":
        return EqualWeighting(tasks)
    return WEIGHTINGS[name](tasks, regression_variances)
