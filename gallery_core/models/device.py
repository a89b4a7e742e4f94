"""Where tensors run and how reproducibly: the device choice and the seeding that makes a run repeatable."""

from __future__ import annotations

import torch


def pick_device(name: str | None = None) -> torch.device:
    """``None`` or "auto": the GPU when there is one, else the CPU; any other name as torch spells it."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_reproducible(device: torch.device, seed: int) -> None:
    """Seed torch's global generator (weight initialisation draws from it) and, on the CPU, ask for
    deterministic kernels, so one seed gives the same trained weights every time. On CUDA some kernels
    have no deterministic version; there, speed wins and only ``warn_only`` would help anyway."""
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def autocast_enabled(device: torch.device) -> bool:
    """Mixed precision (bfloat16 autocast) on CUDA only: on the CPU it is slower and changes the numbers."""
    return device.type == "cuda"
