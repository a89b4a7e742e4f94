"""The seed gallery of the Retrieve page, kept in ``st.session_state`` so it survives page switches."""

from __future__ import annotations

import streamlit as st

from gallery_core.seeds import SeedGallery

TRAY_KEY = "seed_tray"


def get_tray(run_root: str) -> SeedGallery:
    """This session's seed gallery for the run; a new, empty one when the run changed."""
    tray = st.session_state.get(TRAY_KEY)
    if not isinstance(tray, SeedGallery) or tray.run_root != run_root:
        tray = SeedGallery(run_root)
        st.session_state[TRAY_KEY] = tray
    return tray
