"""Loss weighting strategies: how per-task losses combine into one training objective.

Each strategy is an ``nn.Module`` (so learned weights train with the model and live in the
checkpoint) with one ``forward(losses) -> total`` and a ``weights()`` report. ``losses`` holds only
the tasks that had observed labels in the batch.

Objectives that are not attribute tasks (the triplet ranking and VAE losses of
``gallery_core.training.triplets`` / ``gallery_core.models.vae``) enter as further named entries of ``losses``; each
strategy takes them as ``extra={name: weight}``. Equal and pseudo-uniform weighting multiply them by
their configured weight (it is the knob that sets how much they count); uncertainty weighting learns
their weight like any task's, starting from the configured one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gallery_core.data.tasks import TaskSpec


class LossWeighting(nn.Module):
    name: str = "base"

    def __init__(self, tasks: tuple[TaskSpec, ...], extra: dict[str, float] | None = None):
        super().__init__()
        self.tasks = {t.name: t for t in tasks}
        self.extra = dict(extra or {})  # further objectives (e.g. "triplet", "vae") -> configured weight
        clash = sorted(set(self.extra) & set(self.tasks))
        if clash:
            raise ValueError(f"objectives {clash} have the names of attribute tasks; rename them")
        bad = {name: w for name, w in self.extra.items() if not w > 0}
        if bad:
            raise ValueError(f"objective weights must be > 0 (leave an objective out to turn it off), got {bad}")

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        """The multiplier each task's loss has in the total right now."""
        raise NotImplementedError


class EqualWeighting(LossWeighting):
    """Plain sum: every task's loss counts once, whatever its scale (extra objectives: their weight)."""

    name = "equal"

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.extra.get(name, 1.0) * loss for name, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.tasks, 1.0) | self.extra


class PseudoUniformWeighting(LossWeighting):
    """The paper's pseudo-uniform scaling: weight 1 for each classification loss and 1 / sigma_k^2
    for each regression MSE, sigma_k^2 being the variance of task k's training labels."""

    name = "pseudo_uniform"

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float],
                 extra: dict[str, float] | None = None):
        super().__init__(tasks, extra)
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
        super().__init__(tasks, extra)
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


WEIGHTINGS: dict[str, type[LossWeighting]] = {
    cls.name: cls for cls in (EqualWeighting, PseudoUniformWeighting, UncertaintyWeighting)
}


def create_weighting(name: str, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float],
                     extra: dict[str, float] | None = None) -> LossWeighting:
    """``extra``: further objectives by name and weight (see the module docstring)."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {name!r}; choose from {sorted(WEIGHTINGS)}")
    if name == "equal":
        return EqualWeighting(tasks, extra)
    return WEIGHTINGS[name](tasks, regression_variances, extra)
