"""Procedural renderer for the synthetic demo catalogue's photos.

The demo catalogue (see ``gallery_core.demo.generator``) decides *what* a listing is; this package decides what its
photos *look like*. It is pure drawing: a ``ListingLook`` (everything a camera could see about a
listing, already resolved to colours and shapes, no names) plus a ``numpy`` generator go in, a PIL
image comes out. Nothing here reads files, the clock or global random state, so the same generator state
always gives the same pixels, whichever process renders it.

Design intent, so the learned embeddings have something real to find:

* **Region / country / city** leave traces outdoors: the region fixes the architecture (facade palette,
  roof shape, window pattern, tree shape and vegetation colour, sky and sand tones), the country an accent
  colour (doors, shutters, awnings, flags), the city a geography (coastal / mountain / urban), its own
  skyline silhouette with a landmark, and its own mountain profile.
* **Property type and size** shape the building (storeys, width, house vs. tower vs. low resort wing),
  the beds (bunk beds in hostels) and the amount of furniture.
* **Stars and a hidden quality** set the decor: harmonious muted colours, richer materials, more
  lamps, pillows and art, chandeliers and marble at the top; loud or dull colours, clutter, stains and
  wear at the bottom. No star plaque is ever drawn, so the hold-out star rating has to be inferred.
* **Chains** have a visual identity: signature colours and a logo shape on the facade sign, the lobby
  wall, headboards, towels and loungers.
* **Amenities** are visible only when photographed: the pool, gym, kitchen, garden and beach kinds,
  views through a window, balcony railings, bottles behind a bar.

Scenes are drawn at a supersampled ``render_size`` and ``photograph`` then plays the camera: viewpoint
(shift, zoom, small rotation and perspective), downscaling, lighting (exposure, contrast, colour

Layout: ``look`` (what the renderer is told: ``ListingLook`` and the styles it is made of), ``drawing``
(colour helpers and shape primitives), ``decor`` (``sample_decor``), ``scenery`` and ``buildings``
(outdoor pieces), the scene files ``outdoor`` and ``rooms`` (one ``@scene("kind")`` function per photo
kind, looked up by ``registry.render_scene``) and ``camera`` (``photograph``). Importing this package
imports the scene files, so every scene is registered before ``render_scene`` is called.
"""

from __future__ import annotations

from gallery_core.demo.render import outdoor, rooms
from gallery_core.demo.render.camera import (
    CROP_PROBABILITY,
    DEFACE_PROBABILITY,
    KEYSTONE_PROBABILITY,
    photograph,
)
from gallery_core.demo.render.decor import sample_decor
from gallery_core.demo.render.look import (
    LANDMARKS,
    LOGO_SHAPES,
    PHOTO_KINDS,
    RGB,
    ROOF_STYLES,
    TREE_STYLES,
    WINDOW_STYLES,
    ChainStyle,
    CityScape,
    Decor,
    ListingLook,
    RegionStyle,
)
from gallery_core.demo.render.registry import render_scene, scene, scene_kinds

__all__ = [
    "CROP_PROBABILITY",
    "DEFACE_PROBABILITY",
    "KEYSTONE_PROBABILITY",
    "LANDMARKS",
    "LOGO_SHAPES",
    "PHOTO_KINDS",
    "RGB",
    "ROOF_STYLES",
    "TREE_STYLES",
    "WINDOW_STYLES",
    "ChainStyle",
    "CityScape",
    "Decor",
    "ListingLook",
    "RegionStyle",
    "outdoor",
    "photograph",
    "render_scene",
    "rooms",
    "sample_decor",
    "scene",
    "scene_kinds",
]

# A kind without a scene would only fail when a gallery first asks for it; a scene without a listed kind
# would never be photographed. Either is a programming error, so refuse it here, at import.
if set(scene_kinds()) != set(PHOTO_KINDS):
    raise ImportError(
        f"photo kinds and registered scenes disagree: kinds without a scene {sorted(set(PHOTO_KINDS) - set(scene_kinds()))}, "
        f"scenes without a kind {sorted(set(scene_kinds()) - set(PHOTO_KINDS))}")
