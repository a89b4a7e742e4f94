"""Real-browser test: ``streamlit run app.py`` driven by headless Chromium (Debian's, through Playwright).

Walks through every page as a user would: checks that the map drew every listing, that hovering a point
shows its photos, and selects some with a box drag (the map's own checks, colour change and lasso included,
on the demo run and on a 200k-listing run, are in test_browser_map.py), follows a listing's link, seeds a retrieval with its
gallery and a clicked catalogue photo and reads each result's explanation (the best seed/listing photo
pairs), opens an audit suspect's photo evidence; checks that no page shows an exception, and saves a
screenshot of each page (and of the map with a point hovered).

Run as a script to take the README's screenshots of the demo run::

    python tests/test_browser.py --artifacts artifacts --out docs/screenshots
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: the app's ui/ package sits beside tests/
    sys.path.insert(0, str(REPO_ROOT))

from browser_map import HOVER_BOX, hover_a_map_point, points_on_map, select_on_map  # noqa: E402

from gallery_core.data.uploads import MAX_UPLOAD_BYTES  # noqa: E402
from ui import navigation  # noqa: E402
from ui.testing import streamlit_server  # noqa: E402

pytest_plugins = ["conftest_app"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SCREENSHOT_HEIGHT = 5000
PAGES = ("overview", "map", "listing", "retrieve", "audit", "model")
PAGE_TIMEOUT_MS = 45_000
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                                    "/usr/bin/chromium (`make browser` or `apt-get install chromium`)")


def wait_until_rendered(page, title: str) -> None:
    """Wait for the page's title and for the script run to finish (the "Running" indicator gone)."""
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)  # let images and WebGL canvases paint


def screenshot_whole_page(page, path: Path) -> None:
    """Streamlit scrolls inside its main container, so grow the viewport to the content, then shoot."""
    height = page.evaluate(
        "() => Math.max(...['[data-testid=\"stMain\"]', '[data-testid=\"stMainBlockContainer\"]']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height + 40, VIEWPORT["height"]),
                                                                          MAX_SCREENSHOT_HEIGHT))})
    page.wait_for_function("() => [...document.images].every(image => image.complete)", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


def exceptions_on(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def open_from_sidebar(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    wait_until_rendered(page, title)


def explanation_pairs(page) -> list[str]:
    """The captions of the retrieval results' explanation pairs ("seed 2 <-> 03.jpg · 0.912")."""
    return page.get_by_text(re.compile(r"^seed \d+ ↔ .+ · -?\d\.\d{3}$")).all_inner_texts()


def seed_count(page) -> int:
    heading = page.get_by_role("heading", name=re.compile(r"^Seed gallery: \d+ photo")).inner_text()
    return int(re.search(r"(\d+) photo", heading).group(1))


def add_a_catalogue_photo(page) -> int:
    """Click "Add" under the first browsable catalogue photo; returns the result links shown after it."""
    before = seed_count(page)
    page.get_by_role("button", name="Add", exact=True).first.click()
    page.get_by_role("heading", name=f"Seed gallery: {before + 1} photo(s)").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("heading", name="Most similar listings").wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_until_rendered(page, "Retrieve")
    return page.get_by_role("link", name=re.compile(r"^\d+\. ")).count()


def capture_app(base_url: str, out_dir: Path, n_listings: int | None = None) -> dict[str, list[str]]:
    """Walk through the app as a user would, screenshot each page into ``out_dir``; returns the
    exception texts found on each page.

    Overview -> Map (every listing drawn, when ``n_listings`` is given; a point hovered, its photos shown, shot
    as ``map-hover.png``; box selection) -> a selected listing's page (by its link) -> Retrieve (seeded with
    that gallery, then one more catalogue photo clicked; every result explained) -> Audit (a suspect's photo
    evidence) -> Model.
    """
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[str]] = {}

    def record(page, name: str) -> None:
        found[name] = exceptions_on(page)
        screenshot_whole_page(page, out_dir / f"{name}.png")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(base_url)
            wait_until_rendered(page, "Overview")
            record(page, "overview")
            open_from_sidebar(page, "Map")
            drawn = points_on_map(page)
            if n_listings is not None:
                assert drawn == n_listings, f"the map drew {drawn} of {n_listings} listings"
            hover_a_map_point(page)
            page.screenshot(path=str(out_dir / "map-hover.png"))  # the viewport: the box is where the cursor is
            page.mouse.move(2, 2)
            page.locator(HOVER_BOX).wait_for(state="hidden", timeout=PAGE_TIMEOUT_MS)
            select_on_map(page)
            assert points_on_map(page) == drawn, "the selection dropped points from the map"
            record(page, "map")
            page.get_by_role("link", name=re.compile(r"^Listing ")).first.click()
            wait_until_rendered(page, "Listing")
            assert "?listing=" in page.url, page.url
            record(page, "listing")
            page.get_by_role("button", name="Use this gallery as retrieval seeds").click()
            page.get_by_role("heading", name="Most similar listings").wait_for(timeout=PAGE_TIMEOUT_MS)
            wait_until_rendered(page, "Retrieve")
            n_results = add_a_catalogue_photo(page)
            assert n_results > 0, "the retrieval showed no listing"
            pairs = explanation_pairs(page)
            assert len(pairs) >= n_results, f"{n_results} results but only {len(pairs)} explanation pairs"
            record(page, "retrieve")
            open_from_sidebar(page, "Audit")
            # the chosen suspect's photos, ranked by their effect on the probe, each captioned "· photo N"
            page.get_by_text(re.compile(r"· photo \d+$")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
            wait_until_rendered(page, "Audit")  # the decision buttons come after the evidence
            assert page.get_by_role("button", name="Recorded value is wrong").count() == 1
            record(page, "audit")
            open_from_sidebar(page, "Model")
            record(page, "model")
        finally:
            browser.close()
    return found


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_every_page_in_a_real_browser(app_artifacts, tmp_path):
    from gallery_core.artifacts.run import Run, list_runs

    n_listings = len(Run(list_runs(app_artifacts)[0], verify=False).listings)
    with streamlit_server(app_artifacts) as server:
        found = capture_app(server.url, tmp_path / "screenshots", n_listings)
    assert set(found) == set(PAGES)
    assert not {page: texts for page, texts in found.items() if texts}, f"exceptions shown: {found}"
    for name in PAGES:
        assert (tmp_path / "screenshots" / f"{name}.png").stat().st_size > 10_000


def first_request(artifacts: Path, path: str, title: str, check) -> None:
    """A fresh server whose first request is ``path``: the page is drawn inside the app (its sidebar lists the
    pages by their titles and holds the run picker), and ``check(page)`` passes."""
    from playwright.sync_api import sync_playwright

    with streamlit_server(artifacts) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{server.url}/{path}")
            wait_until_rendered(page, title)
            assert not exceptions_on(page)
            links = page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
            labels = [link.strip().splitlines()[-1].strip() for link in links]  # after the icon's ligature
            assert labels == [spec.title for spec in navigation.PAGES]
            picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Run", exact=True)
            assert picker.input_value() == "demo"
            check(page)
        finally:
            browser.close()


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_a_deep_link_as_first_request_opens_the_page_inside_the_app(app_artifacts, tiny_listing_id):
    """Regression: with the page scripts in a ``pages/`` folder beside app.py, Streamlit served ``/retrieve``
    as a multipage app of its own: raw file names in the sidebar, no run picker."""
    assert navigation.page("Retrieve").url_path == "retrieve"

    def upload_limit_is_the_products(page) -> None:
        page.get_by_role("tab", name="Upload photos").click()
        limits = " ".join(page.get_by_test_id("stFileUploaderDropzoneInstructions").all_inner_texts())
        limit = f"{MAX_UPLOAD_BYTES // (1024 * 1024)}MB per file"  # Streamlit's words, from .streamlit/config.toml
        assert limit in limits and "200MB" not in limits, limits
        # a file over the limit is refused before it is sent to the server
        too_big = {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff" + bytes(MAX_UPLOAD_BYTES)}
        page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(too_big)
        page.get_by_text(re.compile(r"File must be .* or smaller")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        assert page.get_by_role("heading", name="Seed gallery: 0 photo(s)").count() == 1

    first_request(app_artifacts, "retrieve", "Retrieve", upload_limit_is_the_products)

    def shows_the_listing(page) -> None:
        page.get_by_role("heading", name=re.compile(f"^{tiny_listing_id} · ")).wait_for(timeout=PAGE_TIMEOUT_MS)
        assert f"?listing={tiny_listing_id}" in page.url

    first_request(app_artifacts, navigation.page_url("Listing", listing=tiny_listing_id), "Listing", shows_the_listing)


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of every page of the app on a built run.")
    parser.add_argument("--artifacts", type=Path, default=REPO_ROOT / "artifacts", help="artifacts root")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    staging = args.out / ".staging"
    with streamlit_server(args.artifacts) as server:  # the app opens the demo run by default
        found = capture_app(server.url, staging)
    for shot in staging.glob("*.png"):
        shutil.move(shot, args.out / shot.name)
    staging.rmdir()
    print(f"screenshots in {args.out}; exceptions: {found}")


if __name__ == "__main__":
    main()
