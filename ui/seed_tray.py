"""The seed gallery of the Retrieve page, kept in ``st.session_state`` so it survives page switches."""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from gallery_core.search.seed_gallery import SeedGallery, SeedLimitError

TRAY_KEY = "seed_tray"
MESSAGES_KEY = "seed_tray_messages"


def get_tray(run_root: str) -> SeedGallery:
    """This session's seed gallery for the run; a new, empty one when the run changed."""
    tray = st.session_state.get(TRAY_KEY)
    if not isinstance(tray, SeedGallery) or tray.run_root != run_root:
        tray = SeedGallery(run_root)
        st.session_state[TRAY_KEY] = tray
    return tray


def add_catalogue_photos(run_root: str, photo_indices: Iterable[int]) -> None:
    """Add photos to the tray (a widget callback); a full tray leaves a message for the Retrieve page."""
    try:
        get_tray(run_root).add_photos(photo_indices)
    except SeedLimitError as err:
        report_problems([str(err)])


def report_problems(messages: list[str]) -> None:
    st.session_state[MESSAGES_KEY] = messages


def pop_problems() -> list[str]:
    """Messages left for the Retrieve page since its last render (shown once)."""
    return st.session_state.pop(MESSAGES_KEY, [])
