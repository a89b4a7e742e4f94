"""Fixtures of the app tests (loaded with ``pytest_plugins = ["conftest_app"]``): an artifacts root
holding a copy of the tiny run under the demo run's name, and an ``AppTest`` opener."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # app.py imports ui/ and gallery_core/ from the repository root
    sys.path.insert(0, str(REPO_ROOT))

from gallery_core.config import DEMO_RUN_NAME  # noqa: E402

APP = REPO_ROOT / "app.py"
APP_TIMEOUT_S = 120  # generous: the 2 shared cores also run the first torch import in upload tests


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a built run without its caches (the app writes its thumbnails there)."""
    return Path(shutil.copytree(run, destination, ignore=shutil.ignore_patterns("cache", "last.pt")))


@pytest.fixture
def run_copier(tiny_run, tmp_path):
    """``run_copier("name")`` -> a private copy of the tiny run at ``<tmp>/artifacts/name`` (a test may damage it)."""
    return lambda name: copy_run(tiny_run, tmp_path / "artifacts" / name)


@pytest.fixture(scope="session")
def app_artifacts(tiny_run, tmp_path_factory) -> Path:
    """An artifacts root with the tiny run as ``demo``; shared by the app tests, which only read it."""
    root = tmp_path_factory.mktemp("app_artifacts")
    copy_run(tiny_run, root / DEMO_RUN_NAME)
    return root


@pytest.fixture(scope="session")
def tiny_listing_id(app_artifacts) -> str:
    import pandas as pd

    return str(pd.read_parquet(app_artifacts / DEMO_RUN_NAME / "listings.parquet")["listing_id"].iloc[0])


@pytest.fixture
def app_env(app_artifacts, monkeypatch) -> Path:
    """Point the app at the test artifacts root."""
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(app_artifacts))
    return app_artifacts


@pytest.fixture
def new_app(monkeypatch):
    """``new_app()`` -> an ``AppTest`` of app.py that runs it as ``streamlit run`` does.

    AppTest (1.67) resets ``PagesManager.uses_pages_directory`` before every run, so with a ``pages/``
    folder beside app.py it runs a switched-to page file on its own, skipping app.py (no sidebar run
    picker, its widget state dropped). A live server clears that flag for good on the first call of
    ``st.navigation``; this fixture clears it for every AppTest run, so app.py always runs first.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original_init = PagesManager.__init__

    def init_with_navigation(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_with_navigation)
    return lambda: AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)


@pytest.fixture
def open_page(app_env, new_app):
    """``open_page("pages/map.py", listing="L000001")`` -> the app run on that page, query params set."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str | None = None, **query_params: str) -> AppTest:
        at = new_app()
        at.run()
        if page is not None:
            at.query_params.update(query_params)
            at.switch_page(page)
            at.run()
        return at

    return _open
