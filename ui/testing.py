"""Running app.py under ``streamlit.testing.v1.AppTest`` as ``streamlit run`` runs it (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"


def app_test(timeout_s: float = 120):
    """An ``AppTest`` of app.py; like a live server, it runs app.py (navigation, run picker) before every page."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP_PATH), default_timeout=timeout_s)
