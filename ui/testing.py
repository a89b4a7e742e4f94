"""Running app.py under ``streamlit.testing.v1.AppTest`` as ``streamlit run`` runs it (tests, benchmarks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"


@contextlib.contextmanager
def navigation_pages() -> Iterator[None]:
    """Make every AppTest run execute app.py (and its ``st.navigation``) first, as a live server does.

    AppTest (Streamlit 1.67) resets ``PagesManager.uses_pages_directory`` before each run; with a
    ``pages/`` folder beside app.py, a page switched to is then run on its own, without app.py (no
    sidebar run picker, its widget state dropped). A live server clears that flag for good on the first
    call of ``st.navigation``; inside this context it is cleared for every run.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init_with_navigation(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init_with_navigation
    try:
        yield
    finally:
        PagesManager.__init__ = original_init


def app_test(timeout_s: float = 120):
    """An ``AppTest`` of app.py (use inside ``navigation_pages()``)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP_PATH), default_timeout=timeout_s)
