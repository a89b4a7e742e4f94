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


@pytest.fixture(scope="session")
def n_tasks(app_artifacts) -> int:
    """How many training tasks the test run has (whatever the demo's task file holds)."""
    from gallery_core.artifacts.run import open_run

    return len(open_run(app_artifacts / DEMO_RUN_NAME).tasks)


@pytest.fixture
def app_env(app_artifacts, monkeypatch) -> Path:
    """Point the app at the test artifacts root."""
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(app_artifacts))
    return app_artifacts


@pytest.fixture
def new_app():
    """``new_app()`` -> an ``AppTest`` of app.py, which runs app.py before every page as a live server does."""
    from ui.testing import app_test

    return lambda: app_test(APP_TIMEOUT_S)


@pytest.fixture
def open_page(app_env, new_app):
    """``open_page("ui/pages/map.py", listing="L000001")`` -> the app run on that page, query params set."""

    def _open(page: str | None = None, **query_params: str):
        at = new_app()
        at.run()
        if page is not None:
            at.query_params.update(query_params)
            at.switch_page(page)
            at.run()
        return at

    return _open
