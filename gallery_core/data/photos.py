"""Model input from decoded photos, and the cache of frozen-trunk features.

The frozen trunk is deterministic (eval mode, no augmentation), so its output for every photo is
computed once, stored as float16 under the run's ``cache/`` folder, and reused by every training
epoch and by the embed step. Undecodable photos are reported, not fatal. Decoding itself is
``gallery_core.data.decode``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.store import atomic_path, hash_key, write_json
from gallery_core.data.decode import PhotoError, load_photo
from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneEntry

logger = logging.getLogger(__name__)

def to_model_input(pixels: np.ndarray, backbone: Backbone | BackboneEntry | None = None) -> torch.Tensor:
    """uint8 (P, H, W, 3) -> float (P, 3, H, W), normalised by the backbone's ``mean``/``std``, channels-last.

    ``backbone`` None: ImageNet's statistics, the ones every registered backbone uses today; callers that
    know their backbone pass it (or its registry entry), so a family with other statistics gets its own.
    """
    mean, std = (backbone.mean, backbone.std) if backbone is not None else (IMAGENET_MEAN, IMAGENET_STD)
    x = torch.tensor(pixels).permute(0, 3, 1, 2).float().div_(255.0)  # copies: PIL arrays are read-only
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def _decode_or_none(path: str, size: int) -> np.ndarray | str:
    try:
        return load_photo(path, size)
    except PhotoError as err:
        return str(err)


def decode_batch(paths: Sequence[str], size: int, pool: ThreadPoolExecutor) -> tuple[np.ndarray, dict[int, str]]:
    """Decode photos in parallel threads (PIL releases the GIL); returns pixels of the good ones and
    {position: reason} of the bad ones."""
    results = list(pool.map(lambda p: _decode_or_none(p, size), paths))
    bad = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    good = [r for r in results if not isinstance(r, str)]
    pixels = np.stack(good) if good else np.zeros((0, size, size, 3), np.uint8)
    return pixels, bad


def find_undecodable(paths: Sequence[str], size: int, batch_size: int = 256) -> dict[int, str]:
    """{position: reason} of the photos that cannot be decoded."""
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(paths), batch_size):
            _, bad_in_batch = decode_batch(paths[start:start + batch_size], size, pool)
            bad.update({start + i: reason for i, reason in bad_in_batch.items()})
    return bad


@torch.no_grad()
def compute_trunk_features(backbone: Backbone, paths: Sequence[str], image_size: int, batch_size: int = 64,
                           device: torch.device | None = None, progress: bool = True,
                           ) -> tuple[np.ndarray, dict[int, str]]:
    """Frozen-trunk features of every photo, float16 (N_good, C, h, w), and {row: reason} of the bad ones.

    Rows of the result follow ``paths`` with the bad rows left out.
    """
    device = device or torch.device("cpu")
    trunk = backbone.trunk.to(device).eval().to(memory_format=torch.channels_last)
    chunks, bad = [], {}
    with ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=len(paths), desc="trunk features", unit="photo", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            pixels, bad_in_batch = decode_batch(paths[start:start + batch_size], image_size, pool)
            bad.update({start + i: reason for i, reason in bad_in_batch.items()})
            if len(pixels):
                x = to_model_input(pixels, backbone).to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    chunks.append(trunk(x).float().cpu().numpy().astype(np.float16))
            bar.update(len(paths[start:start + batch_size]))
    features = np.concatenate(chunks) if chunks else np.zeros((0,), np.float16)
    return features, bad


def trunk_cache_key(catalogue_fingerprint: str, backbone: Backbone, image_size: int) -> str:
    n_trunk_stages = len(backbone.trunk)
    return hash_key(catalogue_fingerprint, backbone.name, backbone.weight_source.split(" ")[-1],
                    n_trunk_stages, image_size)


def cached_trunk_features(cache_dir: Path, key: str, backbone: Backbone, paths: Sequence[str], image_size: int,
                          device: torch.device | None = None, progress: bool = True,
                          ) -> tuple[np.ndarray, dict[int, str]]:
    """``compute_trunk_features`` through a file cache keyed on catalogue, backbone split and size.

    The cache records the photo path of every row, so any subset of the catalogue it was made for
    (a hold-out fraction, a single-task baseline) reads its rows from it instead of recomputing.
    Returns features of the good photos in ``paths`` order and {position in paths: reason} of the bad.
    """
    features_path = cache_dir / f"trunk-{key}.npy"
    index_path = cache_dir / f"trunk-{key}.json"
    if features_path.is_file() and index_path.is_file():
        index = json.loads(index_path.read_text())
        row_of = {p: i for i, p in enumerate(index["paths"])}
        reason_of = index["bad"]
        if all(p in row_of or p in reason_of for p in paths):
            bad = {i: reason_of[p] for i, p in enumerate(paths) if p in reason_of}
            rows = [row_of[p] for p in paths if p not in reason_of]
            cached = np.load(features_path, mmap_mode="r")
            return np.asarray(cached[rows]), bad
    features, bad = compute_trunk_features(backbone, paths, image_size, device=device, progress=progress)
    good_paths = [p for i, p in enumerate(paths) if i not in bad]
    with atomic_path(features_path) as tmp, open(tmp, "wb") as f:
        np.save(f, features)
    write_json(index_path, {"paths": good_paths, "bad": {paths[i]: reason for i, reason in bad.items()}})
    return features, bad


@torch.no_grad()
def derive_trunk_cache(cache_dir: Path, source: Backbone, source_key: str, target: Backbone, target_key: str,
                       batch_size: int = 512, progress: bool = True) -> Path:
    """Write the trunk cache of ``target`` (the same pretrained backbone split with fewer trainable stages)
    from the cache of ``source``, by running the frozen stages in between: seconds, not a pass over pixels.

    A target with no trainable stage stores its features pooled to (F, 1, 1): its top is only the global
    average pool, so that is all a model needs, at a fraction of the size. Returns the features file.
    """
    n_between = len(source.top) - len(target.top)
    if n_between < 0 or source.name != target.name:
        raise ValueError("the target must be the same backbone with at most as many trainable stages")
    out = cache_dir / f"trunk-{target_key}.npy"
    if out.is_file() and (cache_dir / f"trunk-{target_key}.json").is_file():
        return out
    between = torch.nn.Sequential(*list(source.top)[:n_between]).eval()
    features = np.load(cache_dir / f"trunk-{source_key}.npy", mmap_mode="r")
    chunks = []
    for start in tqdm(range(0, len(features), batch_size), desc="derive trunk cache", disable=not progress):
        x = between(torch.from_numpy(np.asarray(features[start:start + batch_size], dtype=np.float32)))
        if len(target.top) == 0:
            x = x.mean(dim=(2, 3), keepdim=True)
        chunks.append(x.numpy().astype(np.float16))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, np.concatenate(chunks))
    write_json(cache_dir / f"trunk-{target_key}.json", json.loads((cache_dir / f"trunk-{source_key}.json").read_text()))
    return out
