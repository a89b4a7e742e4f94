"""Cached loaders: the one place where the app reads a run.

Every cached function takes a ``RunKey``: the run folder and a signature of its manifest and files
(modification time and size of each). A rebuild changes the signature, so every cache entry of the
old build is simply never asked for again. ``st.cache_resource`` holds the ``Run`` (its tables,
mmapped embeddings, index and model are loaded once per process and shared by sessions, read-only);
``st.cache_data`` holds derived tables and gallery strips; thumbnails live in a disk cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from gallery_core.app import audit, explore, thumbnails
from gallery_core.artifacts.check import RunCheck, check_run
from gallery_core.artifacts.run import Run, list_runs
from gallery_core.artifacts.store import FILE_NAMES, MANIFEST, ArtifactError
from gallery_core.names import pred_column
from gallery_core.pipeline.predict import metrics_table

RunKey = tuple[str, tuple[tuple[str, int, int], ...]]


def run_signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(file, mtime_ns, size) of the manifest and every artifact; (-1, -1) for a missing file."""
    signature = []
    for name in (MANIFEST, *FILE_NAMES.values()):
        try:
            stat = (root / name).stat()
            signature.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            signature.append((name, -1, -1))
    return tuple(signature)


def run_key(root: Path) -> RunKey:
    return (str(root), run_signature(root))


def available_runs() -> list[Path]:
    """Run folders under the artifacts root (``$GALLERY_CORE_ARTIFACTS`` or ``artifacts/``)."""
    return list_runs()


@st.cache_data(max_entries=8, show_spinner="Checking the run's files…")
def run_check(key: RunKey) -> RunCheck:
    """Files present, checksums as recorded, tables aligned: computed once per build of the run."""
    return check_run(key[0])


@st.cache_resource(max_entries=3, show_spinner="Loading the run…")
def load_run(key: RunKey) -> Run:
    """The run, once its files have passed ``run_check`` (raises ``ArtifactError`` otherwise)."""
    check = run_check(key)
    if not check.ok:
        raise ArtifactError("; ".join(check.problems))
    return Run(key[0], verify=False)  # run_check has just verified every checksum


@st.cache_data(max_entries=8, show_spinner=False)
def validation_metrics(key: RunKey) -> pd.DataFrame:
    return metrics_table(load_run(key).metrics["tasks"])


# The map's per-listing arrays are held with st.cache_resource: they are large (one entry per listing),
# only ever indexed (never changed), and st.cache_data would unpickle a copy on every rerun.

@st.cache_resource(max_entries=16, show_spinner=False)
def map_colour(key: RunKey, source: str, name: str) -> explore.MapColour:
    """A map colour option prepared for every listing (read-only)."""
    run = load_run(key)
    return explore.map_colour(explore.ColourOption(source, name), run.listings, run.predictions, run.tasks)


@st.cache_resource(max_entries=4, show_spinner=False)
def hover_text(key: RunKey) -> np.ndarray:
    """The key attributes of every listing as hover lines ("city: Lakeport<br>price: 59"), read-only."""
    run = load_run(key)
    return explore.attribute_lines(run.listings, explore.key_attribute_columns(run.tasks, run.listings))


@st.cache_data(max_entries=256, show_spinner=False)
def column_summary(key: RunKey, column: str) -> dict:
    return explore.column_summary(load_run(key).listings[column])


@st.cache_data(max_entries=32, show_spinner=False)
def search_mask(key: RunKey, query: str) -> np.ndarray:
    return explore.search_listings(load_run(key).listings, query)


@st.cache_data(max_entries=32, show_spinner="Ranking listings…")
def suspicion_table(key: RunKey, task_name: str) -> pd.DataFrame:
    run = load_run(key)
    return audit.suspicion_table(run.task(task_name), run.listings, run.predictions)


@st.cache_data(max_entries=8, show_spinner=False)
def regression_stds(key: RunKey) -> dict[str, float]:
    """Residual std of each regression task's head predictions (how far off counts as a disagreement)."""
    run = load_run(key)
    return {t.name: audit.residual_std(t, run.listings, run.predictions, pred_column(t.name))
            for t in run.tasks if t.kind == "regression"}


def thumbnail(photo_path: str, size: int, run_root: str) -> bytes:
    """A photo's thumbnail, made once into the run's disk cache (``<run>/cache/ui-thumbnails/``).

    Deliberately not wrapped in ``st.cache_data``: reading a thumbnail from the disk cache costs about as
    much as a ``st.cache_data`` lookup (under 0.1 ms; docs/benchmarks/app.md), and the disk cache also
    outlives server restarts.
    """
    return thumbnails.thumbnail_bytes(photo_path, size, thumbnails.thumbnail_dir(run_root))


@st.cache_data(max_entries=2_000, show_spinner=False)
def gallery_strip(key: RunKey, listing_id: str, n_photos: int, size: int) -> bytes:
    """The first ``n_photos`` of a listing side by side in one JPEG."""
    paths = load_run(key).listing_photos(listing_id)["path"].head(n_photos)
    return thumbnails.gallery_strip([thumbnail(p, size, key[0]) for p in paths], size)


def gallery_strip_uri(key: RunKey, listing_id: str, n_photos: int, size: int) -> str:
    """``gallery_strip`` as a data URI, for a dataframe's image column."""
    return thumbnails.data_uri(gallery_strip(key, listing_id, n_photos, size))
