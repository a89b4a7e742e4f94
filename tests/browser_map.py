"""The Map page's WebGL scatter driven in a real browser: helpers shared by the page walk-through
(test_browser.py) and the map's own browser tests (test_browser_map.py)."""

from __future__ import annotations

import math
import re

PAGE_TIMEOUT_MS = 45_000

MAP_PLOT = ".plot"  # the WebGL scatter's plot area (Playwright's CSS selectors pierce the component's shadow root)
HOVER_BOX = ".hover-photos"  # the hover bridge's photo box
# What the scatter has drawn (ui/components/scatter/src/index.js keeps it at window.galleryCoreScatter).
SCATTER_DRAWN = ("() => { const s = window.galleryCoreScatter;"
                 " return !!s && s.renders > 0 && s.renderedVersion === s.version && s.points > 0; }")


def settled(page) -> None:
    """Wait for Streamlit's script run to finish (as test_browser.wait_until_rendered does)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)


def wait_for_scatter(page) -> dict:
    """Wait until the scatter has drawn its latest data; returns its stats."""
    page.wait_for_function(SCATTER_DRAWN, timeout=PAGE_TIMEOUT_MS)
    return page.evaluate("() => ({...window.galleryCoreScatter})")


def points_on_map(page) -> int:
    """How many points the scatter drew (every listing passing the filters; none sampled away)."""
    return wait_for_scatter(page)["points"]


def drag(page, points: list[tuple[float, float]]) -> int:
    """Press, move through ``points`` (fractions of the plot area), release; returns the number of points the
    browser highlighted at once (its own geometry, before Python's answer)."""
    plot = page.locator(MAP_PLOT).first
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    assert box is not None, "the map has no plot area"
    at = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()
    # the scatter tells Python first and draws its own highlight in the next task
    page.wait_for_function("() => { const s = window.galleryCoreScatter; return s.highlightedAt >= s.reportedAt; }",
                           timeout=PAGE_TIMEOUT_MS)
    return page.evaluate("() => window.galleryCoreScatter.selected")


def selected_heading(page) -> int:
    heading = page.get_by_role("heading", name=re.compile(r"Selected listings: [1-9]"))
    heading.wait_for(timeout=PAGE_TIMEOUT_MS)
    return int(heading.inner_text().split(": ")[1].replace(",", ""))


def select_on_map(page) -> int:
    """Box-select most of the map and wait for the selected galleries; checks that the browser's highlight and
    Python's selection hold the same number of listings, and returns it."""
    highlighted = drag(page, [(0.05, 0.05), (0.6, 0.6), (0.95, 0.95)])
    n = selected_heading(page)
    settled(page)
    assert n == highlighted, f"Python selected {n} listings, the browser highlighted {highlighted}"
    assert wait_for_scatter(page)["selected"] == n
    return n


def lasso_on_map(page) -> int:
    """Draw a lasso (a pentagon around the plot's centre) and check it as ``select_on_map`` does."""
    page.get_by_role("button", name="Lasso", exact=True).click()
    before = page.get_by_role("heading", name=re.compile(r"Selected listings: ")).inner_text()
    pentagon = [(0.5 + 0.45 * math.cos(a), 0.5 + 0.45 * math.sin(a))
                for a in [2 * math.pi * k / 5 - math.pi / 2 for k in range(6)]]
    highlighted = drag(page, pentagon)
    page.wait_for_function("text => ![...document.querySelectorAll('h3')].some(h => h.innerText === text)", arg=before,
                           timeout=PAGE_TIMEOUT_MS)
    n = selected_heading(page)
    settled(page)
    assert n == highlighted, f"Python selected {n} listings, the browser's lasso highlighted {highlighted}"
    page.get_by_role("button", name="Box select", exact=True).click()
    return n


def hover_a_map_point(page) -> tuple[int, str]:
    """Rest the mouse on the map point nearest the plot's centre and wait for the hover bridge's photo box;
    returns the row the scatter reports under the cursor (on a dense map, a neighbour of the point aimed at may
    be nearer the cursor's pixel) and the listing id the box shows."""
    page.locator(MAP_PLOT).first.scroll_into_view_if_needed()
    wait_for_scatter(page)
    point = page.evaluate("() => window.galleryCoreScatter.pointNearCentre()")
    page.mouse.move(point["x"] - 30, point["y"] - 30)
    page.wait_for_timeout(200)
    page.mouse.move(point["x"], point["y"], steps=6)
    box = page.locator(HOVER_BOX)
    box.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    assert box.locator("img").get_attribute("src").startswith("data:image/")
    return page.evaluate("() => window.galleryCoreScatter.hovered"), box.locator("span").inner_text()


def change_colour(page, label: str) -> dict:
    """Pick another "Colour by" option; returns the scatter's stats once it has drawn the new colours."""
    before = wait_for_scatter(page)["colourKey"]
    page.get_by_role("combobox", name="Colour by").click()
    page.keyboard.type(label)  # the list is virtualised: type to bring the option up
    page.get_by_role("option", name=label, exact=True).click()
    page.wait_for_function(f"() => window.galleryCoreScatter.colourKey !== {before!r}", timeout=PAGE_TIMEOUT_MS)
    return wait_for_scatter(page)
