"""Real browser, a run being rebuilt: every page of the app opens without an exception while ``build --force``
rewrites the run, says a rebuild is in progress and shows the last complete build (ui/rebuild.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gallery_core.artifacts.lock import run_writer
from ui import navigation
from ui.testing import streamlit_server

pytest_plugins = ["conftest_app"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_TIMEOUT_MS = 60_000
TINY_FLAGS = ["--image-size", "32", "--embed-dim", "16", "--batch-size", "8", "--lr", "1e-3", "--seed", "0",
              "--min-listings-to-finetune", "0"]


def open_page(tab, url: str, spec: navigation.PageSpec, listing_id: str) -> None:
    query = f"?listing={listing_id}" if spec.title == "Listing" else ""
    tab.goto(f"{url}/{'' if spec.default else spec.url_path}{query}")
    tab.get_by_role("heading", name=spec.title, level=1).wait_for(timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                          ".getAttribute('data-test-script-state') === 'notRunning'", timeout=PAGE_TIMEOUT_MS)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make browser`)")
def test_every_page_opens_while_the_run_is_rebuilt(run_copier, tiny_catalogue, tiny_listing_id):
    from playwright.sync_api import sync_playwright

    run = run_copier("demo")
    model_written = (run / "model.pt").stat().st_mtime_ns
    with streamlit_server(run.parent) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(tab, server.url, navigation.PAGES[0], tiny_listing_id)  # the build the server opens first
        build = subprocess.Popen([sys.executable, "-m", "gallery_core", "build", "--catalogue", str(tiny_catalogue),
                                  "--out", str(run), "--force", "--epochs", "500", "--patience", "500", "--quiet",
                                  *TINY_FLAGS], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 180
            # until the rebuild has replaced model.pt: the files on disk no longer match the manifest
            while run_writer(run) is None or (run / "model.pt").stat().st_mtime_ns == model_written:
                assert build.poll() is None, build.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the rebuild never replaced model.pt"
                time.sleep(0.1)
            for spec in navigation.PAGES:
                open_page(tab, server.url, spec, tiny_listing_id)
                assert not tab.locator('[data-testid="stException"]').all_inner_texts(), spec.title
                notes = " ".join(tab.locator('[data-testid="stAlert"]').all_inner_texts())
                assert "A rebuild of run demo is in progress" in notes, (spec.title, notes)
                assert "cannot be opened" not in notes and "opens when the rebuild" not in notes, (spec.title, notes)
            assert build.poll() is None  # all of it while the build was running
        finally:
            build.send_signal(signal.SIGKILL)
            build.wait(timeout=30)
            browser.close()
