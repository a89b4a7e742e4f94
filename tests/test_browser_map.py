"""Real-browser tests of the Map page's WebGL scatter (Debian's chromium through Playwright, against
``streamlit run``): on the test run and on a generated 200k-listing run, every listing drawn, hover shows the
hovered listing's photos, a colour change, box and lasso selections that the browser and Python agree on,
the level of detail, the keyboard reset, nothing fetched from elsewhere; the plotly map without WebGL2."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_map import (
    HOVER_BOX,
    MAP_PLOT,
    change_colour,
    hover_a_map_point,
    lasso_on_map,
    points_on_map,
    select_on_map,
    wait_for_scatter,
)
from test_browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    NEEDS_CHROMIUM,
    PAGE_TIMEOUT_MS,
    REPO_ROOT,
    VIEWPORT,
    exceptions_on,
    wait_until_rendered,
)

from ui import navigation
from ui.testing import streamlit_server

pytest_plugins = ["conftest_app"]

LARGE_MAP_LISTINGS = 200_000
POINT_BUDGET = 30_000  # the scatter draws WebGL points up to this many in view (src/index.js), pixels beyond


# Streamlit's own sidebar icons come from Google's font server; nothing else may leave the machine.
STREAMLIT_OWN_HOSTS = ("fonts.gstatic.com", "fonts.googleapis.com")


def open_map(browser, url: str):
    """The Map page in a new tab; ``page.external`` lists requests to any other host (the map fetches nothing)."""
    page = browser.new_page(viewport=VIEWPORT)
    page.external = []
    page.on("request", lambda request: page.external.append(request.url)
            if urlparse(request.url).hostname not in ("127.0.0.1", *STREAMLIT_OWN_HOSTS)
            and not request.url.startswith(("data:", "blob:")) else None)
    page.goto(f"{url}/{navigation.page_url('Map')}")
    wait_until_rendered(page, "Map")
    return page


def check_the_map(page, listings) -> None:
    """Every listing drawn; hover shows the hovered listing's photos (again after the fragment rerun the first
    hover caused); a colour change redraws with only a new colour column; a box and a lasso select what the
    browser highlights; the selection keeps every point drawn."""
    n = len(listings)
    assert points_on_map(page) == n, "the map did not draw every listing"
    row, shown = hover_a_map_point(page)
    assert shown == listings["listing_id"].iloc[row], "the photo box shows another listing than the hovered one"
    page.mouse.move(2, 2)
    page.locator(HOVER_BOX).wait_for(state="hidden", timeout=PAGE_TIMEOUT_MS)
    assert hover_a_map_point(page) == (row, shown)
    page.mouse.move(2, 2)
    stats = change_colour(page, "Attribute: price")
    assert stats["points"] == n
    assert page.locator(".legend-title").inner_text() == "price"
    assert 0 < select_on_map(page) <= n
    assert 0 < lasso_on_map(page) <= n
    assert points_on_map(page) == n, "the selection dropped points from the map"
    # level of detail: more than POINT_BUDGET points in view are drawn as pixels, fewer as WebGL points
    assert wait_for_scatter(page)["lod"] == ("raster" if n > POINT_BUDGET else "points")
    if n > POINT_BUDGET:
        page.locator(MAP_PLOT).first.hover()
        for _ in range(40):  # zoom in on the centre until few enough points are in view
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(100)
            if page.evaluate("() => window.galleryCoreScatter.lod") == "points":
                break
        zoomed = wait_for_scatter(page)
        assert zoomed["lod"] == "points" and 0 < zoomed["points"] <= POINT_BUDGET
    page.get_by_role("button", name="Reset view", exact=True).focus()
    page.keyboard.press("Enter")  # keyboard-reachable: fits every point in view again
    page.wait_for_function(f"() => window.galleryCoreScatter.points === {n}", timeout=PAGE_TIMEOUT_MS)
    assert not exceptions_on(page)
    assert page.external == [], f"the map fetched {page.external}"


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_the_webgl_map_on_the_demo_run(app_artifacts):
    import pandas as pd
    from playwright.sync_api import sync_playwright

    listings = pd.read_parquet(app_artifacts / "demo" / "listings.parquet")
    with streamlit_server(app_artifacts) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            check_the_map(open_map(browser, server.url), listings)
        finally:
            browser.close()


@pytest.fixture(scope="module")
def large_map_artifacts(tiny_run, tmp_path_factory) -> Path:
    """An artifacts root holding a 200k-listing run made from the tiny run (benchmarks/bench_app.py's
    synthetic runs, benchmarks/synthetic_run.py: the listings repeated with new ids, one photo each, jittered
    coordinates)."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from synthetic_run import make_synthetic_run

    root = tmp_path_factory.mktemp("large_map")
    make_synthetic_run(tiny_run, root / "demo", LARGE_MAP_LISTINGS, max_photos=1, max_dim=16)
    return root


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_the_webgl_map_of_200k_listings(large_map_artifacts):
    import pandas as pd
    from playwright.sync_api import sync_playwright

    listings = pd.read_parquet(large_map_artifacts / "demo" / "listings.parquet")
    assert len(listings) == LARGE_MAP_LISTINGS
    with streamlit_server(large_map_artifacts) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            check_the_map(open_map(browser, server.url), listings)
        finally:
            browser.close()


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_without_webgl2_the_map_is_plotlys(app_artifacts):
    """A browser without WebGL2 (deck.gl needs it) gets the plotly figure (WebGL1) with a note, every listing in it."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    n = len(pd.read_parquet(app_artifacts / "demo" / "listings.parquet"))
    with streamlit_server(app_artifacts) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_FLAGS, "--disable-webgl2"])
        try:
            page = open_map(browser, server.url)
            page.get_by_text("This browser has no WebGL2").wait_for(timeout=PAGE_TIMEOUT_MS)
            page.locator(".js-plotly-plot").first.wait_for(timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function("() => document.querySelector('.js-plotly-plot')._fullData"
                                   f".reduce((n, t) => n + (t._length || 0), 0) === {n}", timeout=PAGE_TIMEOUT_MS)
            assert not exceptions_on(page)
        finally:
            browser.close()
