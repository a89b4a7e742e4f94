"""Equal weighting: the plain sum of the task losses."""

from __future__ import annotations

import torch

from gallery_core.weighting.base import LossWeighting
from gallery_core.weighting.registry import register_weighting


@register_weighting
class EqualWeighting(LossWeighting):
    """Plain sum: every task's loss counts once, whatever its scale (extra objectives: their weight)."""

    name = "equal"

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.extra.get(name, 1.0) * loss for name, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.tasks, 1.0) | self.extra
