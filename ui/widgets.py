"""Streamlit building blocks shared by the pages: run picker, error messages, thumbnail grids,
links to a listing, attribute filters, actions on a selection of listings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from gallery_core.app.explore import Filters, format_value
from gallery_core.app.selection import (
    selection_photo_paths,
    selection_table,
    unique_ids,
    write_catalogue_subset,
)
from gallery_core.app.thumbnails import SMALL_THUMBNAIL
from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import ArtifactError
from gallery_core.config import DEMO_RUN_NAME, artifacts_root
from gallery_core.errors import UsageError
from gallery_core.names import DEMO_COMMAND, build_command
from ui import loaders, rebuild
from ui.access import read_only
from ui.navigation import LISTING_PAGE, page, page_url

RUN_STATE_KEY = "run_name"
SEED_PHOTOS_KEY = "seed_photo_paths"  # photo files the Retrieve page takes as its seed gallery
BUILD_COMMANDS = (DEMO_COMMAND, build_command("artifacts/NAME"))


def default_run(runs: Sequence[Path]) -> Path | None:
    """The demo run when there is one, else the first run by name."""
    for run in runs:
        if run.name == DEMO_RUN_NAME:
            return run
    return runs[0] if runs else None


def current_run_root() -> Path | None:
    """The run picked in the sidebar (kept across pages), else the default run."""
    runs = loaders.available_runs()
    picked = st.session_state.get(RUN_STATE_KEY)
    for run in runs:
        if run.name == picked:
            return run
    return default_run(runs)


def run_picker() -> None:
    """Sidebar selector of the run every page shows."""
    runs = loaders.available_runs()
    if not runs:
        st.sidebar.caption(f"No runs under `{artifacts_root()}`.")
        return
    names = [r.name for r in runs]
    if st.session_state.get(RUN_STATE_KEY) not in names:
        st.session_state[RUN_STATE_KEY] = default_run(runs).name
    st.sidebar.selectbox("Run", names, key=RUN_STATE_KEY, help=f"Runs found under `{artifacts_root()}`")


def no_artifacts_message() -> None:
    st.warning(f"No built run found under `{artifacts_root()}`.")
    st.markdown("Build the demo run (it generates a synthetic catalogue first), or a run of your own catalogue:")
    st.code("\n".join(BUILD_COMMANDS), language="bash")
    st.caption("Set `GALLERY_CORE_ARTIFACTS` to read runs from another folder.")


def require_run() -> tuple[Run, loaders.RunKey]:
    """The current run and its cache key; otherwise an explanation on the page, and the page stops."""
    root = current_run_root()
    if root is None:
        no_artifacts_message()
        st.stop()
    try:
        return rebuild.open_run(root)  # during a rebuild: the last complete build (ui/rebuild.py)
    except ArtifactError as err:
        st.error(f"Run `{root.name}` cannot be opened: {err}")
        st.markdown("Finish or repair it with (steps already done are skipped):")
        st.code(build_command(root), language="bash")
        st.stop()


def thumbnail_grid(run_root: str | Path, photo_paths: Sequence[str], captions: Sequence[str] | None = None,
                   size: int = SMALL_THUMBNAIL, width: int | None = None) -> None:
    """Photos as a wrapping grid of cached thumbnails (one element, however many photos)."""
    if not len(photo_paths):
        st.caption("No photos.")
        return
    images = [loaders.thumbnail_uri(str(p), size, str(run_root)) for p in photo_paths]
    st.image(images, caption=list(captions) if captions is not None else None, width=width or size)


def listing_link(listing_id: str, label: str | None = None) -> None:
    st.page_link(LISTING_PAGE, label=label or f"Listing {listing_id}", icon=":material/photo_library:",
                 query_params={"listing": listing_id})


def listing_url(listing_id: str) -> str:
    """Relative URL of a listing's page (for link columns in tables)."""
    return page_url("Listing", listing=listing_id)


def table_height(n_rows: int) -> int:
    """Pixel height at which a dataframe shows ``n_rows`` rows without scrolling (capped for long tables)."""
    return min(n_rows, 30) * 35 + 38


def key_attributes_text(listing: pd.Series, columns: Sequence[str]) -> str:
    return " · ".join(f"{c}: {format_value(listing[c])}" for c in columns)


def attribute_filters(key: loaders.RunKey, columns: Sequence[str], widget_prefix: str) -> Filters:
    """Pick columns to filter on, then the accepted values (categories) or range (numbers) of each."""
    chosen = st.multiselect("Filter by attributes", list(columns), key=f"{widget_prefix}_filter_columns",
                            help="Only listings matching every filter are shown (missing values never match).")
    filters: dict = {}
    for column in chosen:
        summary = loaders.column_summary(key, column)
        if summary["kind"] == "categorical":
            filters[column] = st.multiselect(f"{column} is one of", summary["options"],
                                             key=f"{widget_prefix}_filter_{column}")
        elif summary["min"] < summary["max"]:
            filters[column] = st.slider(f"{column} between", summary["min"], summary["max"],
                                        (summary["min"], summary["max"]), key=f"{widget_prefix}_filter_{column}")
        else:
            st.caption(f"{column}: every listing has {format_value(summary['min'])}.")
    return filters


def selection_actions(run: Run, listing_ids: Sequence[str], key: str, extra: pd.DataFrame | None = None) -> None:
    """Under a selection: a CSV download button (selection_table), a 'write as catalogue' form (folder name under
    the run's parent folder by default; shows the `gallery-core build` command to run on it), and 'use these photos
    as seeds' (puts selection_photo_paths into st.session_state[SEED_PHOTOS_KEY] and switches to the Retrieve page,
    which reads them as its seed gallery).

    ``key``: a prefix for the widgets' keys, one per call site ("map", "retrieve", "audit")."""
    ids = unique_ids(listing_ids)
    if not ids:
        return
    csv_column, seeds_column = st.columns(2)
    # The CSV is made only when the button is pressed (a callable): a large selection costs nothing per rerun.
    csv_column.download_button(f"Download {len(ids):,} listings as CSV", data=lambda: _selection_csv(run, ids, extra),
                               file_name=f"{run.name}-{key}-selection.csv", mime="text/csv", on_click="ignore",
                               key=f"{key}_selection_csv", icon=":material/download:",
                               help="Listing attributes and the model's predictions, one row per selected listing.")
    if seeds_column.button("Use these photos as seeds", key=f"{key}_selection_seeds", icon=":material/image_search:",
                           help="Opens Retrieve with photos of the selected listings as the seed gallery."):
        st.session_state[SEED_PHOTOS_KEY] = selection_photo_paths(run, ids)
        st.switch_page(page("Retrieve").script)
    if read_only():  # writing a folder is a write to the server's disk
        return
    with st.expander("Write the selection as a new catalogue"):
        with st.form(f"{key}_selection_catalogue_form", border=False):
            name = st.text_input("Folder name", value=f"{run.name}-{key}-selection", key=f"{key}_selection_folder",
                                 help=f"Created under `{run.root.parent}`; it must not exist yet (or be empty). "
                                      "The photos are referenced where they are, not copied.")
            submitted = st.form_submit_button("Write catalogue")
        if submitted:
            _write_catalogue(run, ids, name)


def _selection_csv(run: Run, listing_ids: list[str], extra: pd.DataFrame | None) -> str:
    return selection_table(run, listing_ids, extra).to_csv(index=False)


def catalogue_folder(run: Run, name: str) -> Path:
    """The folder a 'write as catalogue' name means: a plain folder name, under the run's parent folder."""
    name = name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UsageError(f"{name!r} is not a folder name: give a name without '/' (it is created under {run.root.parent})")
    return run.root.parent / name


def _write_catalogue(run: Run, listing_ids: list[str], name: str) -> None:
    try:
        out = write_catalogue_subset(run, listing_ids, catalogue_folder(run, name))
    except UsageError as err:
        st.error(str(err))
        return
    st.success(f"Catalogue of {len(listing_ids):,} listings written to `{out}`. Build a run of it with:")
    # the run goes beside the catalogue under its own name, never into the catalogue folder itself
    st.code(build_command(out.parent / f"{out.name}-run", catalogue=out), language="bash")


EVIDENCE_GRID_COLUMNS = 6


def photo_evidence_view(run: Run, key: loaders.RunKey, task_name: str, listing_id: str) -> None:
    """A listing's photos ranked by how much each moves the audit probe's P(recorded value) (Audit and Listing
    pages; ``gallery_core.app.evidence``): thumbnails with a signed number, red against, green for."""
    from gallery_core.app import evidence  # the audit pages' own view, appended here to be shared by both

    try:
        result = loaders.photo_evidence(key, task_name, listing_id)
    except UsageError as err:
        st.info(str(err))
        return
    st.markdown(evidence.evidence_caption(result))
    colours = {evidence.AGAINST: "red", evidence.FOR: "green"}
    number = "{:+.3f}" if result.task.kind != "regression" else "{:+.3g}"
    photos = result.photos
    for start in range(0, len(photos), EVIDENCE_GRID_COLUMNS):
        cells = st.columns(EVIDENCE_GRID_COLUMNS)
        for cell, photo in zip(cells, photos.iloc[start:start + EVIDENCE_GRID_COLUMNS].itertuples(), strict=False):
            cell.image(loaders.thumbnail_uri(photo.path, SMALL_THUMBNAIL, str(run.root)), width="stretch")
            effect = "no effect" if photo.side == evidence.NO_EVIDENCE else number.format(photo.effect)
            cell.markdown(f":{colours.get(photo.side, 'gray')}[**{effect}** {photo.side}] · photo {photo.position}")
