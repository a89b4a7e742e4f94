"""Cached loaders: the one place where the app reads a run.

Every cached function takes a ``RunKey``: the run folder and a digest of its manifest's and files'
modification times and sizes. A rebuild changes the digest, so every cache entry of the old build is
simply never asked for again. The key is two short strings on purpose: Streamlit hashes every argument
of a cached function on every call, and the key used to be the nested tuple of every file's signature,
which cost milliseconds per call, dozens of calls per page view. ``st.cache_resource`` holds the ``Run``
(its tables, mmapped embeddings, index and model are loaded once per process and shared by sessions,
read-only) and the Plotly figures; ``st.cache_data`` holds derived tables and gallery strips;
thumbnails live in a disk cache and reach the browser as ``data:`` URIs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from gallery_core.app import audit, evidence, explore, figures, scatter_payload, thumbnails
from gallery_core.app.report_view import EvaluationReport, load_evaluation_report
from gallery_core.artifacts.check import RunCheck, check_run
from gallery_core.artifacts.run import Run, list_runs
from gallery_core.artifacts.store import EVALUATION_DIR, FILE_NAMES, MANIFEST, ArtifactError
from gallery_core.names import pred_column
from gallery_core.pipeline.predict import metrics_table

RunKey = tuple[str, str]  # (run folder, digest of run_signature)


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
    return (str(root), hashlib.blake2b(repr(run_signature(root)).encode(), digest_size=12).hexdigest())


def available_runs() -> list[Path]:
    """Run folders under the artifacts root (``$GALLERY_CORE_ARTIFACTS`` or ``artifacts/``)."""
    return list_runs()


@st.cache_data(max_entries=8, show_spinner="Checking the run's files…")
def run_check(key: RunKey) -> RunCheck:
    """Files present, checksums as recorded, tables aligned: computed once per build of the run. The check
    is ``check_run``'s quick one: sizes, and checksums through the run's checksum cache, so a server start
    hashes only files the build (or an earlier check) has not hashed at their current size and mtime."""
    return check_run(key[0])


@st.cache_resource(max_entries=3, show_spinner="Loading the run…")
def load_run(key: RunKey) -> Run:
    """The run, once its files have passed ``run_check`` (raises ``ArtifactError`` otherwise)."""
    check = run_check(key)
    if not check.ok:
        raise ArtifactError("; ".join(check.problems))
    return Run(key[0], verify=False)  # run_check has just checked every file


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


def thumbnail_uri(photo_path: str, size: int, run_root: str) -> str:
    """``thumbnail`` as a ``data:`` URI: what the pages give ``st.image``.

    Given bytes, ``st.image`` opens every image with PIL (twice: its format, its width) and hashes it into
    Streamlit's media store on every rerun, and the browser then fetches each one from the server with a
    request of its own; a ``data:`` URI goes to the browser inside the page's message as it is. For
    thumbnails of a few KB (a page shows up to ~150) that is the cheaper way for the server.
    """
    return thumbnails.data_uri(thumbnail(photo_path, size, run_root))


def listing_photo_paths(key: RunKey, listing_id: str, row: int | None = None) -> list[str]:
    """A listing's photo files, in gallery order. ``row``: the listing's row in the run's tables where the caller
    has it (the Map page, which knows the rows of what it draws), so that the id is not looked up: the run's
    id -> row table takes over a second to build at a million listings, and the map needs it for nothing else."""
    run = load_run(key)
    if row is None:
        return run.listing_photos(listing_id)["path"].tolist()
    listings = run.listings
    if listings["listing_id"].iat[row] != listing_id:
        raise ValueError(f"row {row} of run {run.name} is not listing {listing_id!r}")
    # a listing's photos are consecutive rows of the photo table: a slice (a take from the million-row Arrow
    # column would copy it, 40 ms a listing)
    first = int(listings["first_photo"].iat[row])
    return run.photos["path"].iloc[first:first + int(listings["n_photos"].iat[row])].tolist()


@st.cache_data(max_entries=2_000, show_spinner=False)
def gallery_strip(key: RunKey, listing_id: str, n_photos: int, size: int, row: int | None = None) -> bytes:
    """The first ``n_photos`` of a listing side by side in one JPEG (``row``: as ``listing_photo_paths``)."""
    paths = listing_photo_paths(key, listing_id, row)[:n_photos]
    return thumbnails.gallery_strip([thumbnail(p, size, key[0]) for p in paths], size)


def gallery_strip_uri(key: RunKey, listing_id: str, n_photos: int, size: int, row: int | None = None) -> str:
    """``gallery_strip`` as a data URI, for a dataframe's image column and ``st.image``."""
    return thumbnails.data_uri(gallery_strip(key, listing_id, n_photos, size, row))


# Figures are held with st.cache_resource, read-only: building a Plotly figure (validating every
# property) cost more than everything else on the Map and Model pages; st.plotly_chart only reads it.

@st.cache_resource(max_entries=32, show_spinner="Drawing the map…")
def map_figure(key: RunKey, source: str, name: str, filters: explore.Filters) -> tuple[go.Figure | None, int]:
    """The map coloured by one option, of every listing passing ``filters`` (none sampled away), with how many
    pass. Up to ``explore.MAX_DETAILED_HOVER_POINTS`` points the hover label lists key attributes; beyond,
    the id and the colour value. No figure when no listing passes."""
    run = load_run(key)
    rows = np.flatnonzero(explore.filter_mask(run.listings, filters))
    if len(rows) == 0:
        return None, 0
    colour = map_colour(key, source, name)
    detail = hover_text(key)[rows] if len(rows) <= explore.MAX_DETAILED_HOVER_POINTS else None
    figure = figures.map_figure(run.coordinates["x"].to_numpy()[rows], run.coordinates["y"].to_numpy()[rows],
                                run.listings["listing_id"].to_numpy()[rows], colour.subset(rows), detail)
    return figure, len(rows)


# The WebGL scatter's columns (ui/scatter_map.py), read-only like the figures.

@st.cache_resource(max_entries=3, show_spinner=False)
def map_coordinates(key: RunKey) -> scatter_payload.Blob:
    """Every listing's map position as the scatter's float32 (N, 2) blob, in the run's listing order."""
    coordinates = load_run(key).coordinates
    return scatter_payload.coordinates_blob(coordinates["x"].to_numpy(), coordinates["y"].to_numpy())


@st.cache_resource(max_entries=16, show_spinner=False)
def map_colour_column(key: RunKey, source: str, name: str) -> scatter_payload.ColourColumn:
    run = load_run(key)
    colour = explore.map_colour(explore.ColourOption(source, name), run.listings, run.predictions, run.tasks,
                                with_text=False)
    return scatter_payload.colour_column(colour)


@st.cache_resource(max_entries=32, show_spinner=False)
def map_visibility(key: RunKey, filters: explore.Filters) -> tuple[np.ndarray | None, scatter_payload.Blob | None, int]:
    """The listings passing ``filters``: a boolean per listing and its bits blob (both None when every
    listing passes), and how many pass."""
    mask = explore.filter_mask(load_run(key).listings, filters)
    if mask.all():
        return None, None, len(mask)
    return mask, scatter_payload.bits_blob(mask), int(mask.sum())


@st.cache_resource(max_entries=3, show_spinner=False)
def listing_ids(key: RunKey) -> np.ndarray:
    """Every listing id in row order as Python strings (an object array): the run's column is Arrow-backed and
    converts all of them on every ``to_numpy``, where a selection needs only its rows' ids."""
    return load_run(key).listings["listing_id"].to_numpy(dtype=object)


@st.cache_resource(max_entries=3, show_spinner=False)
def listing_index(key: RunKey) -> pd.Index:
    return pd.Index(load_run(key).listings["listing_id"])


def listing_rows(key: RunKey, listing_ids: list[str]) -> np.ndarray:
    """The rows of the given listing ids (ids the run does not hold left out), in their order."""
    if not listing_ids:
        return np.zeros(0, dtype=np.int64)
    rows = listing_index(key).get_indexer(listing_ids)
    return rows[rows >= 0]


@st.cache_resource(max_entries=8, show_spinner=False)
def total_loss_figure(key: RunKey) -> go.Figure:
    return figures.total_loss_figure(load_run(key).history)


@st.cache_resource(max_entries=32, show_spinner=False)
def per_task_figure(key: RunKey, field: str, title: str, tasks: tuple[str, ...]) -> go.Figure:
    return figures.per_task_figure(load_run(key).history, field, title, list(tasks))


@st.cache_resource(max_entries=8, show_spinner=False)
def metrics_figures(key: RunKey) -> tuple[go.Figure | None, go.Figure | None]:
    """Validation accuracy and RMSE-ratio figures (None when the run has no task of that kind)."""
    metrics = validation_metrics(key)
    classification = (metrics["kind"] != "regression").any()
    regression = (metrics["kind"] == "regression").any()
    return (figures.classification_metrics_figure(metrics) if classification else None,
            figures.regression_metrics_figure(metrics) if regression else None)


def folder_signature(folder: Path) -> str:
    """A digest of the names, modification times and sizes of a folder's files ("" when it does not exist)."""
    try:
        entries = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(folder) if e.is_file())
    except OSError:
        return ""
    return hashlib.blake2b(repr(entries).encode(), digest_size=12).hexdigest()


def evaluation_report(run_root: str | Path) -> EvaluationReport | None:
    """The run's evaluation report cut into parts; read again only when a file of the report changes
    (``evaluate`` rewrites the report without rebuilding the run, so the run's key does not say)."""
    return _evaluation_report(str(run_root), folder_signature(Path(run_root) / EVALUATION_DIR))


@st.cache_data(max_entries=8, show_spinner=False)
def _evaluation_report(run_root: str, signature: str) -> EvaluationReport | None:
    return load_evaluation_report(run_root)


@st.cache_data(max_entries=8, show_spinner=False)
def json_file(path: str, signature: str) -> dict:
    """A JSON file's content (``signature``: of the file's folder, so a rewritten file is read again)."""
    return json.loads(Path(path).read_text())


@st.cache_data(max_entries=64, show_spinner=False)
def image_file_uri(path: str, signature: str) -> str:
    """An image file as a ``data:`` URI for ``st.image`` (``signature``: of the file's folder)."""
    return thumbnails.data_uri(Path(path).read_bytes())


@st.cache_data(max_entries=2_000, show_spinner=False)
def photo_pair_uri(seed_thumbnail: bytes, photo_path: str, size: int, run_root: str) -> str:
    """A seed photo's thumbnail and a catalogue photo's side by side in one image, as a data URI (the
    Retrieve page's "why this result" pairs; a seed may be an upload, so it comes as thumbnail bytes)."""
    return thumbnails.data_uri(thumbnails.gallery_strip([seed_thumbnail, thumbnail(photo_path, size, run_root)], size))


# --- audit evidence (gallery_core.app.evidence): the refitted fold probes are shared by every listing of a fold ---

@st.cache_resource(max_entries=32, show_spinner="Refitting the out-of-fold probe…")
def fold_probe(key: RunKey, task_name: str, fold: int) -> evidence.FoldProbe:
    """One fold's probe, refitted as the predict step fitted it (read-only)."""
    run = load_run(key)
    return evidence.fit_fold_probe(run, run.task(task_name), fold)


@st.cache_data(max_entries=256, show_spinner="Weighing each photo…")
def photo_evidence(key: RunKey, task_name: str, listing_id: str) -> evidence.Evidence:
    """The listing's photos ranked by their effect on the probe's P(recorded); UsageError when the listing
    has no recorded value for the task."""
    run = load_run(key)
    task = run.task(task_name)
    return evidence.photo_evidence(run, task, listing_id,
                                   fold_probe(key, task_name, evidence.probe_fold(run, task, listing_id)))
