"""The scene registry: each photo kind's name -> the one function that draws that scene.

Why a registry: scenes live in the file of their kind of place (``outdoor.py``, ``rooms.py``) and
``render_scene`` has to find them by the kind names the catalogue records (``photos.csv``'s ``kind``).
A scene registers itself with ``@scene("kind")``, so adding one is one decorated function (and its name
in ``PHOTO_KINDS``); a name registered twice is refused at import, so two scenes can never silently
fight over a kind.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from gallery_core.demo.render.look import PHOTO_KINDS, Decor, ListingLook

#: A scene: (look, decor, the photo's generator, size in px) -> square RGB image, before the camera.
SceneFn = Callable[[ListingLook, Decor, np.random.Generator, int], Image.Image]

_SCENES: dict[str, SceneFn] = {}


def scene(kind: str) -> Callable[[SceneFn], SceneFn]:
    """Register the decorated function as the scene of photo ``kind``; refuse a kind already registered.

    The function is returned unchanged, so it can still be called (and tested) directly.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"a scene's kind must be a non-empty string, got {kind!r}")

    def register(fn: SceneFn) -> SceneFn:
        if kind in _SCENES:
            other = _SCENES[kind]
            raise ValueError(f"photo kind {kind!r} already has a scene ({other.__module__}.{other.__qualname__}); "
                             f"refusing {fn.__module__}.{fn.__qualname__}")
        _SCENES[kind] = fn
        return fn

    return register


def scene_kinds() -> tuple[str, ...]:
    """The kinds that have a registered scene, in registration order."""
    return tuple(_SCENES)


def render_scene(kind: str, look: ListingLook, decor: Decor, rng: np.random.Generator, render_size: int) -> Image.Image:
    """Draw the raw scene of photo ``kind`` at ``render_size`` px (square, RGB, before the camera)."""
    try:
        renderer = _SCENES[kind]
    except KeyError:
        raise ValueError(f"unknown photo kind {kind!r}; expected one of {PHOTO_KINDS}") from None
    return renderer(look, decor, rng, render_size)
