"""Reading a built run: the one object the app, the CLI's ``retrieve`` and the evaluation use.

``Run(path)`` checks the manifest (files present, checksums, steps built from each other) and then
loads each artifact lazily, once: tables read once per ``Run``, embeddings memory-mapped (a 500k-listing
run's photo embeddings are never read whole). ``verify`` is one of ``store.VERIFY_MODES``: True ("full")
hashes every file, "quick" hashes only files the run's checksum cache has not seen at their current size
and mtime (once per build), False none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.store import STEPS, ArtifactError, RunPaths, load_manifest
from gallery_core.config import BuildConfig, artifacts_root
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError
from gallery_core.names import build_command
from gallery_core.search.index import exact_search, load_index, query_index
from gallery_core.search.whitening import Whitening
from gallery_core.vectors import l2_normalise


def list_runs(root: str | Path | None = None) -> list[Path]:
    """Run folders (those with a manifest) under ``root`` (default: the artifacts root), by name."""
    root = Path(root) if root is not None else artifacts_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


class Run:
    """``device``: where new photos (uploads, ``retrieve``'s and ``search-photo``'s) are embedded: None or "auto"
    the GPU when there is one (its photos then decoded there too: ``engine.photo_files``), else as torch spells
    it. Everything else a run computes with its model (``model``) stays on the CPU."""

    def __init__(self, root: str | Path, verify: bool | str = True, steps: tuple[str, ...] = STEPS,
                 device: str | None = None):
        self.root = Path(root)
        self.paths = RunPaths(self.root)
        self.manifest: dict[str, Any] = load_manifest(self.root, verify=verify, steps=steps)
        self.device = device

    @property
    def name(self) -> str:
        return self.root.name

    @cached_property
    def config(self) -> BuildConfig:
        return BuildConfig.from_dict(self.manifest["config"])

    @cached_property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return tuple(TaskSpec.from_dict(t) for t in self.manifest["tasks"])

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise UsageError(f"unknown task {name!r}; this run has tasks {[t.name for t in self.tasks]}")

    @property
    def holdout(self) -> list[str]:
        return list(self.manifest.get("holdout", []))

    # --- tables and arrays ---

    @cached_property
    def listings(self) -> pd.DataFrame:
        """listing_id, attributes, split, n_photos, first_photo; row i = listing embedding i."""
        return pd.read_parquet(self.paths.listing_table)

    @cached_property
    def photos(self) -> pd.DataFrame:
        """photo_index, listing_id, path, listing_index; row i = photo embedding i."""
        return pd.read_parquet(self.paths.photo_table)

    @cached_property
    def listing_embeddings(self) -> np.ndarray:
        return np.load(self.paths.listing_embeddings, mmap_mode="r")

    @cached_property
    def whitening(self) -> Whitening | None:
        """The retrieval space's whitening (``gallery_core.search.whitening``); None for a run made before it."""
        return Whitening.load(self.paths.whitening) if self.paths.whitening.is_file() else None

    def retrieval_vectors(self, photo_embeddings: np.ndarray) -> np.ndarray:
        """Raw photo embeddings (n, D), or a mean of them, -> the retrieval space (whitened, not normalised):
        what a listing's embedding, a seed gallery's query and an explanation's photos are made of."""
        raw = np.asarray(photo_embeddings, dtype=np.float32)
        return raw if self.whitening is None else self.whitening.transform(raw)

    @cached_property
    def new_task_embeddings(self) -> np.ndarray:
        """(L, D') the run's embedding for tasks it never trained on (EmbedConfig.new_task_features)."""
        return np.load(self.paths.new_task_embeddings, mmap_mode="r")

    @cached_property
    def photo_embeddings(self) -> np.ndarray:
        return np.load(self.paths.photo_embeddings, mmap_mode="r")

    @cached_property
    def coordinates(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths.umap)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths.predictions)

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.paths.metrics.read_text())

    @cached_property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch training log: total and per-task losses, task weights."""
        return [json.loads(line) for line in self.paths.train_log.read_text().splitlines() if line.strip()]

    @cached_property
    def row_of_listing(self) -> dict[str, int]:
        # From one list of Python strings, not an iteration over the column (a million Arrow scalars: ~4x slower).
        ids = self.listings["listing_id"].to_numpy().tolist()
        return dict(zip(ids, range(len(ids)), strict=True))

    def listing_photos(self, listing_id: str) -> pd.DataFrame:
        row = self.listings.iloc[self._row(listing_id)]
        return self.photos.iloc[int(row.first_photo):int(row.first_photo) + int(row.n_photos)]

    def _row(self, listing_id: str) -> int:
        if listing_id not in self.row_of_listing:
            raise UsageError(f"unknown listing {listing_id!r} in run {self.name}")
        return self.row_of_listing[listing_id]

    # --- the model and the index ---

    @cached_property
    def model(self):  # -> GalleryModel; loaded on first use (torch start-up is slow)
        from gallery_core.models.checkpoint import load_checkpoint

        return load_checkpoint(self.paths.checkpoint, device="cpu")[0]

    @cached_property
    def index(self):  # -> AnnoyIndex
        return load_index(self.paths.index, int(self.listing_embeddings.shape[1]))

    @cached_property
    def upload_encoder(self):  # -> GalleryEncoder on ``device``; the CPU's is ``model``'s own
        from gallery_core.models.checkpoint import load_checkpoint
        from gallery_core.models.device import pick_device

        device = pick_device(self.device)
        if device.type == "cpu":
            return self.model.encoder
        # A copy of its own: ``model`` is the CPU's, for the app's evidence and the evaluation (the trunk pass
        # they call moves a backbone's trunk to its own device, in place)
        return load_checkpoint(self.paths.checkpoint, device=str(device))[0].encoder

    def embed_uploads(self, photos: Sequence[str | Path | bytes]) -> np.ndarray:
        """Embed new photos with the trained encoder on ``device`` -> (P, D). Raises PhotoError on an
        undecodable one."""
        from gallery_core.engine.photo_files import (
            embed_photo_files,  # torch: imported only when photos are embedded
        )

        return embed_photo_files(self.upload_encoder, list(photos), self.config.model.image_size)

    def seed_vector(self, photo_indices: Sequence[int] = (), uploaded: np.ndarray | None = None) -> np.ndarray:
        """One seed gallery from catalogue photos (by photo_index) and/or uploaded (raw) photo embeddings: the
        L2-normalised, whitened mean of their embeddings, as a listing's embedding is made (k,)."""
        parts = []
        if len(photo_indices):
            parts.append(np.asarray(self.photo_embeddings[np.asarray(photo_indices, dtype=np.int64)]))
        if uploaded is not None and len(uploaded):
            parts.append(np.asarray(uploaded, dtype=np.float32))
        if not parts:
            raise UsageError("a seed gallery needs at least one photo")
        return l2_normalise(self.retrieval_vectors(np.concatenate(parts)).mean(axis=0))

    def retrieve(self, seed: np.ndarray, k: int = 10, candidates: np.ndarray | None = None,
                 exclude: Sequence[str] = ()) -> pd.DataFrame:
        """Top-k listings for a seed vector: listing_id, score (cosine similarity), rank.

        With ``candidates`` (a boolean mask over listings, e.g. from attribute filters), or in a catalogue
        smaller than ``config.index.exact_below``, the search is exact over those rows; otherwise it goes
        through the Annoy index.
        """
        if k < 1:
            raise UsageError(f"k must be >= 1, got {k}")
        if candidates is None and len(self.listings) < self.config.index.exact_below:
            candidates = np.ones(len(self.listings), dtype=bool)
        excluded = {self.row_of_listing[e] for e in exclude if e in self.row_of_listing}
        if candidates is not None:
            rows_allowed = np.flatnonzero(candidates)
            rows_allowed = rows_allowed[~np.isin(rows_allowed, list(excluded))]
            if len(rows_allowed) == 0:
                return pd.DataFrame({"listing_id": [], "score": [], "rank": []})
            top, sims = exact_search(np.asarray(self.listing_embeddings[rows_allowed]), seed[None, :], k)
            rows, scores = rows_allowed[top[0]], sims[0]
        else:
            rows, scores = query_index(self.index, seed, k + len(excluded), self.config.index.search_k)
            keep = ~np.isin(rows, list(excluded))
            rows, scores = rows[keep][:k], scores[keep][:k]
        return pd.DataFrame({"listing_id": self.listings["listing_id"].to_numpy()[rows],
                             "score": scores.astype(float), "rank": np.arange(1, len(rows) + 1)})


def open_run(root: str | Path, verify: bool | str = True, device: str | None = None) -> Run:
    """``Run`` with a friendlier error when the folder does not exist."""
    root = Path(root)
    if not root.exists():
        raise ArtifactError(f"{root}: no such run folder; build one with `{build_command(root)}`")
    return Run(root, verify=verify, device=device)
