"""The weighting registry: strategies by name. The strategy modules import ``register_weighting`` from here and
``gallery_core.weighting`` imports the strategies, so the package has no import cycle."""

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
