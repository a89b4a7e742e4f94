"""Embed every photo and listing with the trained encoder.

Photo embedding = the encoder's output for one photo (P, D); listing embedding = the L2-normalised,
whitened mean of its photos' embeddings (L, k), what retrieval, the index and the map use (the whitening,
``retrieval_whitening.npz``, is fitted here on the training listings' photos: ``gallery_core.search.whitening``). The embedding for
new tasks (``new_task_embeddings.npy``, what the audit's probes and a user's own probes should read)
keeps the pretrained backbone's features beside the learned ones by default
(``EmbedConfig.new_task_features``; docs/representation_study.md says why). The frozen trunk's cached
output is reused when present.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.npy_rows import NpyRows, RowWriter
from gallery_core.artifacts.store import (
    RunPaths,
    file_checksum,
    write_json,
    write_parquet,
)
from gallery_core.config import NEW_TASK_FEATURES, BuildConfig, EmbedConfig
from gallery_core.data.catalogue import Catalogue
from gallery_core.data.photos import paths_digest, read_progress
from gallery_core.engine.cpu_runtime import Runner
from gallery_core.engine.execution import Execution
from gallery_core.engine.features import (
    embed_runners,
    encode_trunk_features,
    pretrained_backbone,
    pretrained_photo_features,
    trunk_batch,
)
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.models.device import pick_device
from gallery_core.search.whitening import Whitening, fit_retrieval_whitening
from gallery_core.training.data import prepare_data
from gallery_core.vectors import group_mean, group_sum, l2_normalise

logger = logging.getLogger(__name__)

def mean_per_listing(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int) -> np.ndarray:
    """Mean of each listing's photo embeddings: (P, D) + listing index (P,) -> (L, D), not normalised.
    This is the gallery embedding the task heads were trained on."""
    pooled = group_mean(torch.from_numpy(np.array(photo_embeddings, dtype=np.float32)),
                        torch.from_numpy(np.array(listing_index, dtype=np.int64)), n_listings)
    return pooled.numpy()


def new_task_embeddings(learned: np.ndarray, pretrained: np.ndarray | None, features: str) -> np.ndarray:
    """The embedding for tasks a run never trained on, from listing means (not normalised):
    ``learned`` (L, D) and ``pretrained`` (L, F), as ``features`` names (see NEW_TASK_FEATURES).

    Each part is L2-normalised and the parts are concatenated and scaled by 1/sqrt(parts), so every
    row has unit norm and neither part dominates a cosine by its scale.
    """
    if features not in NEW_TASK_FEATURES:
        raise ValueError(f"unknown new_task_features {features!r}; choose from {NEW_TASK_FEATURES}")
    parts = {"learned": [learned], "pretrained": [pretrained], "pretrained+learned": [pretrained, learned]}[features]
    if any(p is None for p in parts):
        raise ValueError(f"new_task_features {features!r} needs the pretrained features")
    blocks = [l2_normalise(np.asarray(p, dtype=np.float32)) for p in parts]
    return (np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))).astype(np.float32)


@dataclass
class EmbedResult:
    photo_table: pd.DataFrame
    photo_embeddings: np.ndarray  # (P, D): the written file, memory-mapped
    listing_table: pd.DataFrame
    listing_embeddings: np.ndarray
    new_task_embeddings: np.ndarray  # (L, D'): see EmbedConfig.new_task_features


# (photo rows start, end) -> (learned embeddings (n, D) float32, pretrained features (n, F) float32 or None)
ChunkFunction = Callable[[int, int], tuple[np.ndarray, np.ndarray | None]]


@torch.no_grad()
def embed(catalogue: Catalogue, run_dir: str | Path, device: str | None = None, progress: bool = True,
          batch_size: int = 1024, embed_config: EmbedConfig | None = None,
          execution: Execution | None = None) -> EmbedResult:
    """Embed every photo and listing; write the photo and listing tables and embeddings.

    Streams: photos are embedded a chunk at a time (from the trunk cache file, or by the Ray
    engine), photo embeddings are appended to their file and listing sums accumulated as chunks pass, so
    memory holds the tables, one chunk and the (L, D) listing outputs, never all photos. An interrupted
    embed resumes after its last complete chunk (``cache/embed-work/progress.json``); with the Ray engine,
    also the photo embeddings resume from the chunks Ray completed (``engine.ray_outputs.ChunkFiles``).
    ``embed_config``: default the one the model was trained with (the build passes its current one).
    """
    execution = (execution or Execution()).validate()
    paths = RunPaths(Path(run_dir))
    dev = pick_device(device)
    model, checkpoint = load_checkpoint(paths.checkpoint, device=str(dev))
    config = BuildConfig.from_dict(checkpoint["config"])
    if embed_config is not None:
        config = replace(config, embed=embed_config)
    with_pretrained = config.embed.new_task_features != "learned"
    work = paths.cache_dir / "embed-work"
    dims = (model.encoder.embed_dim, None)

    if execution.engine == "ray":
        catalogue, embeddings_file, pretrained_file = _ray_photo_files(
            catalogue, paths, config.model.image_size, work, execution, with_pretrained, progress)
        photo_embeddings = NpyRows(embeddings_file)  # (P, D)
        photo_pretrained = NpyRows(pretrained_file) if pretrained_file is not None else None
        dims = (photo_embeddings.shape[1], None if photo_pretrained is None else photo_pretrained.shape[1])

        def chunk(start: int, end: int) -> tuple[np.ndarray, np.ndarray | None]:
            return photo_embeddings[start:end], None if photo_pretrained is None else photo_pretrained[start:end]
        # the Ray settings that change the embeddings' last bits (its chunks check them too): listing sums of
        # an interrupted run are resumed only over the same photo embeddings
        source = {"engine": "ray", "batch_size": execution.ray_batch_size, "gpus": execution.ray_gpus_per_actor}
    else:
        data = prepare_data(catalogue, model, config.model, paths.cache_dir, checkpoint["trunk_cache_key"],
                            use_cache=True, device=dev, progress=progress, in_memory=False)
        catalogue, trunk = data.catalogue, data.trunk_features  # (P, C, h, w) float16, read a chunk at a time
        backbone = pretrained_backbone(config.model, dev) if with_pretrained else None
        if backbone is not None:
            dims = (model.encoder.embed_dim, backbone.feature_dim)

        runners: list[Runner | None] = []  # made at the first chunk: ONNX Runtime is checked on its rows

        def chunk(start: int, end: int) -> tuple[np.ndarray, np.ndarray | None]:
            block = trunk[start:end]  # (n, C, h, w)
            if not runners:
                example = trunk_batch(block, np.arange(min(len(block), batch_size)), dev)
                runners.extend(embed_runners(model.encoder, backbone, example, dev, execution.cpu_runtime,
                                             execution.compile_model))
            learned = encode_trunk_features(model.encoder, block, dev, batch_size, run=runners[0])
            pretrained = None if backbone is None else \
                pretrained_photo_features(config.model, block, dev, batch_size, backbone=backbone, run=runners[1])
            return learned, pretrained
        source = checkpoint["trunk_cache_key"]

    sizes = catalogue.gallery_sizes()
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (L + 1,)
    chunk_size = -(-execution.chunk_size // batch_size) * batch_size if execution.engine == "local" \
        else execution.chunk_size
    identity = {"checkpoint": file_checksum(paths.checkpoint), "source": source, "device": dev.type,
                "photo_paths": paths_digest(catalogue.photos["path"].tolist()),
                "listing_ids": paths_digest(catalogue.listings["listing_id"].tolist()),
                "chunk_size": chunk_size, "batch_size": batch_size, "with_pretrained": with_pretrained}
    learned_sums, pretrained_sums = stream_listing_sums(
        chunk, offsets, dims, work, identity, chunk_size,
        photo_out=None if execution.engine == "ray" else work / "photo-embeddings.npy", progress=progress)
    photo_file = embeddings_file if execution.engine == "ray" else work / "photo-embeddings.npy"
    val_ids = set(checkpoint["val_listing_ids"])
    is_train = ~catalogue.listings["listing_id"].isin(val_ids).to_numpy()
    whitening = fit_retrieval_whitening(NpyRows(photo_file), np.repeat(is_train, sizes),
                                        np.repeat(np.arange(len(sizes)), sizes), config.train.seed, config.embed)
    write_listing_outputs(learned_sums, pretrained_sums, sizes, whitening, config.embed.new_task_features,
                          paths.listing_embeddings, paths.new_task_embeddings)

    photo_table = catalogue.photos[["listing_id", "path"]].reset_index(drop=True)
    photo_table.insert(0, "photo_index", np.arange(len(photo_table)))
    photo_table["listing_index"] = np.repeat(np.arange(len(sizes)), sizes)
    listing_table = catalogue.listings.copy()
    listing_table["split"] = np.where(listing_table["listing_id"].isin(val_ids), "val", "train")
    listing_table["n_photos"] = sizes
    listing_table["first_photo"] = offsets[:-1]

    write_parquet(paths.photo_table, photo_table)
    os.replace(embeddings_file if execution.engine == "ray" else work / "photo-embeddings.npy",
               paths.photo_embeddings)  # complete: renamed into place, as an atomic write would
    write_parquet(paths.listing_table, listing_table)
    whitening.save(paths.whitening)
    shutil.rmtree(work, ignore_errors=True)
    return EmbedResult(photo_table, np.load(paths.photo_embeddings, mmap_mode="r"), listing_table,
                       np.load(paths.listing_embeddings, mmap_mode="r"), np.load(paths.new_task_embeddings, mmap_mode="r"))


# Listings per block of the listing outputs, whatever L is. A block's means, whitened vectors and new-task
# embedding (1280-d learned + 1280-d pretrained) and their temporaries took +3.34 GB at 65,536 listings, +0.85 GB at
# 16,384 (measured, 200k listings; the rows are read in order either way; the speed was not measured apart).
LISTING_BLOCK_ROWS = 16_384


def write_listing_outputs(learned_sums: Path, pretrained_sums: Path | None, sizes: np.ndarray, whitening: Whitening,
                          features: str, listing_out: Path, new_task_out: Path,
                          block_rows: int = LISTING_BLOCK_ROWS) -> None:
    """The listing embeddings (L, k) and the embedding for new tasks (L, D') from the listing sums files (L, D)
    and (L, F), a block of listings at a time (none of the (L, D) arrays is held whole: at 500k listings each is
    2.6 GB): means (sums / gallery sizes, as ``group_mean`` divides), then the whitened, normalised retrieval
    vectors and ``new_task_embeddings``; each output appears, by a rename, only when complete."""
    learned_rows = NpyRows(learned_sums)
    pretrained_rows = None if pretrained_sums is None else NpyRows(pretrained_sums)
    counts = np.maximum(sizes, 1).astype(np.float32)[:, None]  # (L, 1)
    listing_writer, new_task_writer = RowWriter(listing_out, len(sizes)), RowWriter(new_task_out, len(sizes))
    try:
        for start in range(0, len(sizes), block_rows):
            stop = min(start + block_rows, len(sizes))
            learned = learned_rows[start:stop] / counts[start:stop]  # (n, D): the gallery embedding of the heads
            pretrained = None if pretrained_rows is None else pretrained_rows[start:stop] / counts[start:stop]
            listing_writer.append(l2_normalise(whitening.transform(learned)))  # (n, k): the retrieval space
            new_task_writer.append(new_task_embeddings(learned, pretrained, features))  # (n, D')
        listing_writer.finish(empty_shape=(0, whitening.dim), dtype=np.float32)
        none = new_task_embeddings(np.zeros((0, learned_rows.shape[1]), np.float32), None if pretrained_rows is None
                                   else np.zeros((0, pretrained_rows.shape[1]), np.float32), features)
        new_task_writer.finish(empty_shape=none.shape, dtype=np.float32)
    finally:
        listing_writer.close()
        new_task_writer.close()


def stream_listing_sums(chunk: ChunkFunction, offsets: np.ndarray, dims: tuple[int, int | None], work: Path,
                        identity: dict, chunk_size: int, photo_out: Path | None = None, progress: bool = True,
                        ) -> tuple[Path, Path | None]:
    """Run ``chunk`` over the photo rows a chunk at a time and sum each listing's photo embeddings (and
    pretrained features) as they pass: -> the files of the sums (L, D) float32 and (L, F) float32 (or None), in
    ``work``, read back a block at a time by ``write_listing_outputs``.

    Photos are grouped by listing (listing i is rows offsets[i]:offsets[i+1]), so after each chunk the
    listings before its end are complete: their sums are appended to files in ``work`` and only the one
    listing cut by the chunk's end is carried over. Sums add rows in order, chunk after chunk
    (``vectors.group_sum``), so they equal a one-pass ``group_mean``'s sums bit for bit. ``photo_out``:
    also append the photo embeddings there (P, D), left complete but not renamed. After each chunk, a
    progress record (``identity`` + counts + the carried sums) makes an interrupted run resume there.
    """
    n_photos, n_listings = int(offsets[-1]), len(offsets) - 1
    work.mkdir(parents=True, exist_ok=True)
    progress_path = work / "progress.json"
    record = read_progress(progress_path, identity) or {"chunks": 0, "rows": 0, "listings": 0, "carry": None}
    try:
        writers = _sum_writers(work, photo_out, n_photos, n_listings, dims, record)
    except (OSError, ValueError) as err:  # a file the record names is gone or short: start over
        logger.warning(f"{work}: cannot resume the interrupted embed ({err}); starting again")
        record = {"chunks": 0, "rows": 0, "listings": 0, "carry": None}
        writers = _sum_writers(work, photo_out, n_photos, n_listings, dims, record)
    photos_out, learned_out, pretrained_out = writers
    done, first = record["chunks"], record["listings"]
    carry = None if record["carry"] is None else [None if c is None else torch.tensor(c, dtype=torch.float32)
                                                  for c in record["carry"]]
    if done:
        logger.info(f"embed: resuming after {min(done * chunk_size, n_photos)} of {n_photos} photos")
    try:
        with tqdm(total=n_photos, initial=min(done * chunk_size, n_photos), desc="embed photos", unit="photo",
                  disable=not progress) as bar:
            for start in range(done * chunk_size, n_photos, chunk_size):
                end = min(start + chunk_size, n_photos)
                parts = chunk(start, end)  # (n, D), (n, F) | None
                owner = np.searchsorted(offsets, np.arange(start, end), side="right") - 1 - first  # (n,) local
                complete = int(np.searchsorted(offsets[1:], end, side="right"))  # listings wholly before `end`
                n_local = max(int(owner[-1]) + 1, complete - first)
                new_carry = []
                for i, (values, out) in enumerate(zip(parts, (learned_out, pretrained_out), strict=True)):
                    if values is None or out is None:
                        new_carry.append(None)
                        continue
                    sums = torch.zeros(n_local, values.shape[1], dtype=torch.float32)  # (n_local, D)
                    if carry is not None and carry[i] is not None:
                        sums[0] = carry[i]  # the listing cut by the previous chunk's end: its sum so far
                    group_sum(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)),
                              torch.from_numpy(owner), n_local, out=sums)
                    out.append(sums[:complete - first].numpy())
                    new_carry.append(sums[complete - first:].reshape(-1))
                if photos_out is not None:
                    photos_out.append(np.ascontiguousarray(parts[0], dtype=np.float32))
                carry = new_carry if complete < n_listings and any(c is not None and c.numel() for c in new_carry) \
                    else None
                first, done = complete, done + 1
                for writer in writers:
                    if writer is not None:
                        writer.sync()
                write_json(progress_path, identity | {
                    "chunks": done, "rows": end, "listings": first,
                    "carry": None if carry is None else [None if c is None else c.tolist() for c in carry]})
                bar.update(end - start)
        outputs = []
        for writer, dim in zip((learned_out, pretrained_out), dims, strict=True):
            if writer is None:
                outputs.append(None)
                continue
            for _ in range(writer.rows, n_listings):  # listings after the last photo (none when photos exist)
                writer.append(np.zeros((1, dim), np.float32))
            outputs.append(writer.finish(empty_shape=(n_listings, dim)))
        if photos_out is not None:
            photos_out.finish(empty_shape=(0, dims[0]))
    finally:
        for writer in writers:
            if writer is not None:
                writer.close()
    return outputs[0], outputs[1]


def _sum_writers(work: Path, photo_out: Path | None, n_photos: int, n_listings: int, dims: tuple[int, int | None],
                 record: dict) -> tuple[RowWriter | None, RowWriter, RowWriter | None]:
    """Writers of the photo embeddings and of the learned and pretrained listing sums, reopened at the rows
    ``record`` names as complete."""
    photos = None if photo_out is None else RowWriter(photo_out, n_photos, record["rows"])
    learned = RowWriter(work / "listing_learned_sums.npy", n_listings, record["listings"])
    pretrained = None if dims[1] is None else \
        RowWriter(work / "listing_pretrained_sums.npy", n_listings, record["listings"])
    return photos, learned, pretrained


def _ray_photo_files(catalogue: Catalogue, paths: RunPaths, image_size: int, work: Path, execution: Execution,
                     with_pretrained: bool, progress: bool) -> tuple[Catalogue, Path, Path | None]:
    """Photo embeddings (and pretrained features) by the Ray engine -> (catalogue without the photos it could
    not decode, embeddings file (P, D), pretrained file (P, F) or None)."""
    from gallery_core.engine import ray_engine

    options = execution.ray_options()  # says how to install Ray where it is missing
    embeddings_file, pretrained_file, bad = ray_engine.ray_photo_embeddings(
        paths.checkpoint, catalogue.photos["path"].tolist(), image_size, work / "ray",
        options, with_pretrained, progress, chunk_size=execution.chunk_size)
    if bad:
        catalogue = catalogue.without_photos(bad)
    return catalogue, Path(embeddings_file), None if pretrained_file is None else Path(pretrained_file)
