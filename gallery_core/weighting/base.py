"""What every loss weighting strategy is: an ``nn.Module`` from named losses to one total."""

from __future__ import annotations

import torch
from torch import nn

from gallery_core.data.tasks import TaskSpec


class LossWeighting(nn.Module):
    """Per-task losses -> one training objective.

    Every strategy is built the same way, ``cls(tasks, regression_variances, extra)``, so the registry
    creates any of them by name; a strategy uses what it needs of the three. ``regression_variances``:
    the variance of each regression task's training labels. ``extra``: further objectives that are not
    attribute tasks (e.g. "triplet", "vae") -> their configured weight, > 0.
    """

    name: str = "base"  # the name the registry (and ``TrainConfig.weighting``) knows the strategy by

    def __init__(self, tasks: tuple[TaskSpec, ...], regression_variances: dict[str, float] | None = None,
                 extra: dict[str, float] | None = None):
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
        """``losses`` holds only the tasks that had observed labels in the batch."""
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        """The multiplier each task's loss has in the total right now."""
        raise NotImplementedError
