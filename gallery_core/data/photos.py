"""Model input from decoded photos, and the cache of frozen-trunk features.

The frozen trunk is deterministic (eval mode, no augmentation), so its output for every photo is
computed once, stored as float16 under the run's ``cache/`` folder, and reused by every training
epoch and by the embed step. Undecodable photos are reported, not fatal. Decoding itself is
``gallery_core.data.decode``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.lock import exclusive_lock
from gallery_core.artifacts.npy_rows import NpyRows, RowWriter
from gallery_core.artifacts.store import hash_key, write_json
from gallery_core.data.decode import PhotoError, load_photo
from gallery_core.engine.compiled import model_runner
from gallery_core.engine.device_decode import (
    ReadBatch,
    decode_read_batch,
    host_pixels,
    log_decode_counts,
    normalise_pixels,
    pin_host,
    read_batch,
    to_device,
)
from gallery_core.engine.prefetch import PREFETCH_BATCHES, prefetch
from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneEntry

logger = logging.getLogger(__name__)

def to_model_input(pixels: np.ndarray, backbone: Backbone | BackboneEntry | None = None) -> torch.Tensor:
    """uint8 (P, H, W, 3) -> float (P, 3, H, W), normalised by the backbone's ``mean``/``std``, channels-last.

    ``backbone`` None: ImageNet's statistics, the ones every registered backbone uses today; callers that
    know their backbone pass it (or its registry entry), so a family with other statistics gets its own.
    """
    mean, std = (backbone.mean, backbone.std) if backbone is not None else (IMAGENET_MEAN, IMAGENET_STD)
    return normalise_pixels(torch.tensor(pixels).permute(0, 3, 1, 2), mean, std)  # copies: PIL arrays are read-only


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


def decode_threads(device: torch.device) -> int:
    """Threads that read and decode photos for the trunk pass: 2 on the CPU device, where the model needs the
    cores too; on a GPU every core up to 16, since they alone feed it."""
    return 2 if device.type != "cuda" else max(2, min(os.cpu_count() or 2, 16))


def batch_spans(n_photos: int, first_chunk: int, chunk_size: int, batch_size: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end, whether it ends its chunk) of each batch from chunk ``first_chunk`` on: batches of
    ``batch_size`` that never cross a chunk's end (so a resumed pass has the batches of an uninterrupted one)."""
    for chunk_start in range(first_chunk * chunk_size, n_photos, chunk_size):
        chunk_end = min(chunk_start + chunk_size, n_photos)
        for start in range(chunk_start, chunk_end, batch_size):
            end = min(start + batch_size, chunk_end)
            yield start, end, end == chunk_end


TRUNK_CHUNK_SIZE = 8192  # photos per chunk of the trunk pass: the unit of progress, and what a resume redoes at most
TRUNK_BATCH_SIZE = 64  # photos per model batch of the trunk pass (what build and train use)


def _progress_path(out_npy: Path) -> Path:
    return out_npy.with_name(out_npy.name + ".progress.json")


@torch.no_grad()
def write_trunk_features(backbone: Backbone, paths: Sequence[str], image_size: int, out_npy: Path,
                         batch_size: int = TRUNK_BATCH_SIZE, chunk_size: int = TRUNK_CHUNK_SIZE,
                         device: torch.device | None = None,
                         progress: bool = True, index_path: Path | None = None, runtime: str | None = None,
                         decode_on_device: bool | None = None, compile_model: bool = False) -> dict[int, str]:
    """Frozen-trunk features of every photo written to ``out_npy`` as float16 (N_good, C, h, w), rows in
    ``paths`` order with the undecodable photos left out; returns {position in paths: reason} of those.

    Streams: each chunk of ``chunk_size`` photos (rounded up to whole batches, so the batches are those of
    one uninterrupted pass) is appended to ``<out_npy>.partial`` and recorded in
    ``<out_npy>.progress.json``; a pass that was interrupted resumes after its last recorded chunk (for
    the same paths, size and chunking). ``out_npy`` appears, by a rename, only when every photo is done;
    ``index_path`` (the cache's index of good paths and bad reasons), when given, is written just before.

    On the CPU the trunk runs in ONNX Runtime where ``runtime`` allows (``engine.cpu_runtime``), on a GPU compiled
    when ``compile_model`` (``engine.compiled``; ignored with a warning on the CPU). JPEGs are
    decoded in batches on ``device`` when ``decode_on_device`` (None: when it is a GPU), the photos that path
    cannot take by the CPU decoder (``engine.device_decode``); else all by PIL on CPU threads.
    """
    device = device or torch.device("cpu")
    out_npy = Path(out_npy)
    chunk_size = -(-max(chunk_size, 1) // batch_size) * batch_size
    progress_path = _progress_path(out_npy)
    identity = {"paths": paths_digest(paths), "n_paths": len(paths), "image_size": image_size,
                "batch_size": batch_size, "chunk_size": chunk_size}
    record = read_progress(progress_path, identity) or {"chunks": 0, "rows": 0, "bad": {}}
    done_chunks, bad = record["chunks"], {int(k): v for k, v in record["bad"].items()}
    try:
        writer = RowWriter(out_npy, len(paths), record["rows"])
    except (OSError, ValueError) as err:  # the partial file is gone or shorter: start over
        logger.warning(f"{out_npy}: cannot resume the interrupted trunk pass ({err}); starting again")
        done_chunks, bad, writer = 0, {}, RowWriter(out_npy, len(paths))
    if done_chunks:
        logger.info(f"{out_npy.name}: resuming the trunk pass after {done_chunks * chunk_size} of {len(paths)} photos")
    trunk = backbone.trunk.to(device).eval().to(memory_format=torch.channels_last)
    run_trunk = None  # made at the first batch: ONNX Runtime is checked against PyTorch on it
    decode_device = device if (device.type == "cuda" if decode_on_device is None else decode_on_device) else None
    decode_counts: Counter = Counter()
    pin = pin_host(device)

    def read(span: tuple[int, int, bool]) -> tuple[tuple[int, int, bool], ReadBatch | tuple[torch.Tensor, dict]]:
        """A batch's CPU work, ahead of the model (``engine.prefetch``): on a GPU, into pinned host buffers."""
        batch = paths[span[0]:span[1]]
        if decode_device is not None:
            return span, read_batch(batch, image_size, pool, pin_host(decode_device))
        pixels, bad_in_batch = decode_batch(batch, image_size, pool)
        return span, (host_pixels(pixels, pin), bad_in_batch)

    # Read ahead when decoding on the device, or when the model runs on a GPU: the CPU threads are otherwise
    # idle while it works. Not for PIL decoding on the CPU device: it shares the cores with the model there.
    depth = PREFETCH_BATCHES if decode_device is not None or device.type == "cuda" else 0
    try:
        with ThreadPoolExecutor(max_workers=decode_threads(device)) as pool, \
                tqdm(total=len(paths), initial=min(done_chunks * chunk_size, len(paths)), desc="trunk features",
                     unit="photo", disable=not progress) as bar:
            for (start, end, ends_chunk), batch in prefetch(batch_spans(len(paths), done_chunks, chunk_size,
                                                                        batch_size), read, depth):
                if isinstance(batch, ReadBatch):
                    x, errors = decode_read_batch(batch, image_size, decode_device, backbone.mean, backbone.std,
                                                  decode_counts)
                    x, bad_in_batch = x.to(device), {i: err.reason for i, err in errors.items()}
                else:
                    pixels, bad_in_batch = batch  # (B, S, S, 3) uint8 on the host
                    x = normalise_pixels(to_device(pixels, device).permute(0, 3, 1, 2), backbone.mean, backbone.std)
                bad.update({start + i: reason for i, reason in bad_in_batch.items()})
                if len(x):
                    run_trunk = run_trunk or model_runner(trunk, x, f"trunk-{backbone.name}-{image_size}px", device,
                                                          runtime, compile_model)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                        writer.append(run_trunk(x).float().cpu().numpy().astype(np.float16))  # (B, C, h, w)
                bar.update(end - start)
                if ends_chunk:
                    done_chunks += 1
                    write_json(progress_path, identity | {"chunks": done_chunks, "rows": writer.sync(), "bad": bad})
        if decode_device is not None:
            log_decode_counts(decode_counts, decode_device)
        if index_path is not None:
            write_trunk_index(index_path, paths, bad)
        writer.finish(empty_shape=(0,), dtype=np.float16)
    finally:
        writer.close()
    progress_path.unlink(missing_ok=True)
    return bad


def paths_digest(paths: Sequence[str]) -> str:
    """A digest of the path list, fed path by path (no second copy of millions of paths in memory)."""
    digest = hashlib.blake2b(digest_size=12)
    for p in paths:
        digest.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def read_progress(progress_path: Path, identity: dict) -> dict | None:
    """The progress record of an interrupted pass over the same input (``identity``'s items all equal), else None."""
    try:
        record = json.loads(progress_path.read_text())
    except (OSError, ValueError):
        return None
    return record if all(record.get(k) == v for k, v in identity.items()) else None


def write_trunk_index(index_path: Path, paths: Sequence[str], bad: dict[int, str]) -> None:
    """The cache's index: the path of every row, and the reason of every photo left out."""
    write_json(index_path, {"paths": [p for i, p in enumerate(paths) if i not in bad],
                            "bad": {paths[i]: reason for i, reason in bad.items()}})


def compute_trunk_features(backbone: Backbone, paths: Sequence[str], image_size: int,
                           batch_size: int = TRUNK_BATCH_SIZE,
                           device: torch.device | None = None, progress: bool = True, runtime: str | None = None,
                           decode_on_device: bool | None = None, compile_model: bool = False,
                           ) -> tuple[np.ndarray, dict[int, str]]:
    """Frozen-trunk features of every photo, float16 (N_good, C, h, w), in memory, and {row: reason} of the
    bad ones: ``write_trunk_features`` through a temporary file, for a few photos (use the cache otherwise).

    Rows of the result follow ``paths`` with the bad rows left out.
    """
    with tempfile.TemporaryDirectory(prefix="trunk-") as folder:
        out = Path(folder) / "features.npy"
        bad = write_trunk_features(backbone, paths, image_size, out, batch_size=batch_size, device=device,
                                   progress=progress, runtime=runtime, decode_on_device=decode_on_device,
                                   compile_model=compile_model)
        return np.load(out), bad


def trunk_cache_key(catalogue_fingerprint: str, backbone: Backbone, image_size: int) -> str:
    n_trunk_stages = len(backbone.trunk)
    return hash_key(catalogue_fingerprint, backbone.name, backbone.weight_source.split(" ")[-1],
                    n_trunk_stages, image_size)


def trunk_cache_dir(cache_dir: Path) -> Path:
    """Where trunk-cache entries live: ``$GALLERY_CORE_TRUNK_CACHE`` when set (one folder for every run: entries
    are keyed by catalogue, backbone split and size, so runs share them safely), else ``cache_dir``."""
    return Path(os.environ.get("GALLERY_CORE_TRUNK_CACHE") or cache_dir)


# (photo paths, features file to write) -> {position in paths: reason} of the undecodable photos
TrunkPass = Callable[[list[str], Path], dict[int, str]]


def cached_trunk_features(cache_dir: Path, key: str, backbone: Backbone, paths: Sequence[str], image_size: int,
                          device: torch.device | None = None, progress: bool = True,
                          batch_size: int = TRUNK_BATCH_SIZE,
                          chunk_size: int = TRUNK_CHUNK_SIZE, engine: TrunkPass | None = None,
                          runtime: str | None = None, compile_model: bool = False,
                          ) -> tuple[np.ndarray | NpyRows, dict[int, str]]:
    """``write_trunk_features`` (or ``engine``: another engine's pass, e.g. the Ray engine's, that writes the
    features file itself) through a file cache keyed on catalogue, backbone split and size.

    The cache records the photo path of every row, so any subset of the catalogue it was made for
    (a hold-out fraction, a single-task baseline) reads its rows from it instead of recomputing.
    Returns features of the good photos in ``paths`` order, float16 (N_good, C, h, w): the cache file
    itself (``NpyRows``: read a slice at a time, never mapped) when they are all of its rows in order, else those
    rows copied;
    and {position in paths: reason} of the bad. An interrupted pass resumes (``write_trunk_features``).
    """
    cache_dir = trunk_cache_dir(cache_dir)
    features_path = cache_dir / f"trunk-{key}.npy"
    index_path = cache_dir / f"trunk-{key}.json"
    if (hit := _cache_hit(features_path, index_path, paths)) is not None:
        return hit
    # One writer per entry (several runs may share the cache; two passes on one .partial file wreck each other):
    # a second process waits, then reads the first's. A killed holder's lock goes with it; its pass resumes.
    with exclusive_lock(cache_dir / f"trunk-{key}.lock", f"the trunk cache {features_path}", wait=True):
        if (hit := _cache_hit(features_path, index_path, paths)) is not None:
            return hit
        if engine is not None:
            bad = engine(list(paths), features_path)
            write_trunk_index(index_path, paths, bad)  # after the features: a cache without its index is recomputed
        else:
            bad = write_trunk_features(backbone, paths, image_size, features_path, batch_size=batch_size,
                                       chunk_size=chunk_size, device=device, progress=progress, index_path=index_path,
                                       runtime=runtime, compile_model=compile_model)
    return _read_rows(features_path, np.arange(len(paths) - len(bad))), bad


def _cache_hit(features_path: Path, index_path: Path, paths: Sequence[str],
               ) -> tuple[np.ndarray | NpyRows, dict[int, str]] | None:
    if features_path.is_file() and index_path.is_file():
        found = _rows_in_cache(index_path, paths)
        if found is not None:
            rows, bad = found
            return _read_rows(features_path, rows), bad
    return None


def _rows_in_cache(index_path: Path, paths: Sequence[str]) -> tuple[np.ndarray, dict[int, str]] | None:
    """(cache rows of the good photos in ``paths`` order (N_good,), {position: reason} of the bad ones), or
    None when the cache does not cover every path. Vectorised lookups: the index may hold millions of paths."""
    index = json.loads(index_path.read_text())
    row_of = pd.Series(np.arange(len(index["paths"]), dtype=np.int64), index=index["paths"])
    row_of = row_of[~row_of.index.duplicated(keep="last")]
    reason_of = index["bad"]
    query = pd.Index(list(paths))
    is_bad = query.isin(list(reason_of))  # (N,)
    rows = row_of.reindex(query[~is_bad])  # NaN where a path is not in the cache
    if rows.isna().any():
        return None
    return rows.to_numpy(dtype=np.int64), {int(i): reason_of[paths[i]] for i in np.flatnonzero(is_bad)}


def _read_rows(features_path: Path, rows: np.ndarray) -> np.ndarray | NpyRows:
    """Rows of a cache file: the file itself (``NpyRows``, read a slice at a time by its users) when they are
    all of it in order, else an in-memory copy of those rows (never the whole file in memory)."""
    cached = NpyRows(features_path)
    if len(rows) == len(cached) and np.array_equal(rows, np.arange(len(cached))):
        return cached
    return cached[rows]  # (N, C, h, w)


@torch.no_grad()
def derive_trunk_cache(cache_dir: Path, source: Backbone, source_key: str, target: Backbone, target_key: str,
                       batch_size: int = 512, progress: bool = True) -> Path:
    """Write the trunk cache of ``target`` (the same pretrained backbone split with fewer trainable stages)
    from the cache of ``source``, by running the frozen stages in between: seconds, not a pass over pixels.

    A target with no trainable stage stores its features pooled to (F, 1, 1): its top is only the global
    average pool, so that is all a model needs, at a fraction of the size. Returns the features file.
    Streams: rows are written as they are computed (an interrupted derivation starts again).
    """
    n_between = len(source.top) - len(target.top)
    if n_between < 0 or source.name != target.name:
        raise ValueError("the target must be the same backbone with at most as many trainable stages")
    cache_dir = trunk_cache_dir(cache_dir)
    out = cache_dir / f"trunk-{target_key}.npy"
    if out.is_file() and (cache_dir / f"trunk-{target_key}.json").is_file():
        return out
    with exclusive_lock(cache_dir / f"trunk-{target_key}.lock", f"the trunk cache {out}", wait=True):
        if not (out.is_file() and (cache_dir / f"trunk-{target_key}.json").is_file()):  # not derived meanwhile
            _derive(cache_dir, source, source_key, target, target_key, out, n_between, batch_size, progress)
    return out


def _derive(cache_dir: Path, source: Backbone, source_key: str, target: Backbone, target_key: str, out: Path,
            n_between: int, batch_size: int, progress: bool) -> None:
    between = torch.nn.Sequential(*list(source.top)[:n_between]).eval()
    features = NpyRows(cache_dir / f"trunk-{source_key}.npy")
    writer = RowWriter(out, len(features))
    try:
        for start in tqdm(range(0, len(features), batch_size), desc="derive trunk cache", disable=not progress):
            x = between(torch.from_numpy(np.asarray(features[start:start + batch_size], dtype=np.float32)))
            if len(target.top) == 0:
                x = x.mean(dim=(2, 3), keepdim=True)
            writer.append(x.numpy().astype(np.float16))  # (B, C', h', w')
        write_json(cache_dir / f"trunk-{target_key}.json",
                   json.loads((cache_dir / f"trunk-{source_key}.json").read_text()))
        writer.finish(empty_shape=(0,), dtype=np.float16)
    finally:
        writer.close()
