"""The Map page at scale, today's WebGL scatter beside the plotly map it replaced, in the same run: what
``benchmarks/bench_app.py --map-only`` measures (and the map section of its full report).

For each size (synthetic runs, ``synthetic_run.make_synthetic_run``: one photo per listing, 16-d embeddings)
and each variant (``scatter``: the page as a browser with WebGL2 gets it; ``plotly``: as one without WebGL2
gets it, the figure every browser got before):

* payload: the bytes the page sends for the map on a first view, and on a colour change (the scatter sends
  only the new colour column; plotly the whole figure again);
* server: the page's script run through AppTest (first: Streamlit's caches cleared; cached: a rerun, median;
  colour: the rerun after a colour change; for the scatter, selection: the rerun after a box selection over the
  middle half of the coordinates' extent, as the browser reports it, in wall and CPU seconds, and its bytes);
* browser: headless Chromium (Debian's, through Playwright; ``--disable-webgl2`` for plotly) against
  ``streamlit run``: from navigation until the map holds every point and has drawn, on a fresh server and in
  a second tab on the warm server; then in that tab a colour change (option clicked -> new colours drawn)
  and a box selection round trip (mouse released -> Python's selection listed and highlighted on the map; for
  the scatter also the browser's own highlight, drawn before Python answers).

Every point is drawn in both variants: nothing is sampled or aggregated. Each row records the machine's
1-minute load average while it was measured: on a machine shared with other work every time grows with it.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from synthetic_run import make_synthetic_run

from gallery_core.app.scatter_payload import decode_payload
from gallery_core.artifacts.run import Run
from ui import navigation, scatter_map

MAP_LISTINGS = (100_000, 500_000, 1_000_000)
VARIANTS = ("plotly", "scatter")
COLOUR_TO = "Attribute: price"  # the colour change measured (from the default, a category)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
BROWSER_TIMEOUT_MS = 600_000
STEP_TIMEOUT_MS = 240_000  # a colour change or selection slower than this is recorded as "> 240 s", not waited on
TARGETS = {"browser_warm": 3.0, "colour_browser": 1.0, "selection_browser": 1.0}  # issue 22, at 1M listings

# What the browser's map holds and has drawn. plotly keeps the decoded arrays in ``_fullData`` (``_length``
# points a trace); the scatter reports what it drew in ``window.galleryCoreScatter``.
POINTS_JS = {
    "plotly": """() => { const gd = document.querySelector('.js-plotly-plot');
        return gd && gd._fullData ? gd._fullData.reduce((n, t) => n + (t._length || 0), 0) : 0; }""",
    "scatter": """() => { const s = window.galleryCoreScatter;
        return s && s.renders > 0 && s.renderedVersion === s.version ? s.points : 0; }""",
}
COLOURED_JS = {  # the new colours are on the map (argument: the legend title expected, the old colour key)
    "plotly": """([title, old]) => { const gd = document.querySelector('.js-plotly-plot');
        return !!gd && !!gd.layout && gd.layout.legend.title.text === title; }""",
    "scatter": """([title, old]) => { const s = window.galleryCoreScatter;
        return s.colourKey !== old && s.renderedVersion === s.version; }""",
}
SELECTED_JS = {  # Python's selection is listed under the map and drawn on it
    "plotly": """() => [...document.querySelectorAll('h3')].some(h => /Selected listings: [1-9]/.test(h.innerText))""",
    "scatter": """() => { const s = window.galleryCoreScatter;
        return [...document.querySelectorAll('h3')].some(h => /Selected listings: [1-9]/.test(h.innerText))
            && s.selectionKey !== null && s.renderedVersion === s.version; }""",
}
# The next animation frame after a condition held: what the user sees has been drawn.
PAINTED_AT_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def load() -> float:
    return os.getloadavg()[0]


def _clear_caches() -> None:
    import streamlit as st
    from streamlit import logger

    logger.set_log_level("error")  # no notes about cached functions used outside a script run
    st.cache_data.clear()
    st.cache_resource.clear()


def _map_bytes(at, variant: str) -> tuple[int, int]:
    """The map's bytes in the page's last run, and the points it draws."""
    if variant == "plotly":
        spec = at.get("plotly_chart")[0].proto.spec
        traces = json.loads(spec)["data"]
        points = sum(len(base64.b64decode(t["x"]["bdata"])) // np.dtype(t["x"]["dtype"]).itemsize
                     if isinstance(t["x"], dict) else len(t["x"]) for t in traces)
        return len(spec.encode()), points
    (element,) = [c for c in at.get("bidi_component") if c.proto.component_name == scatter_map.COMPONENT_NAME]
    header, _ = decode_payload(element.proto.bytes)
    return len(element.proto.bytes), header["n"]


def selection_box(run_dir: Path) -> list[float]:
    """The box selection the server is timed with: the middle half of the coordinates' extent in x and y."""
    xy = Run(run_dir, verify=False).coordinates[["x", "y"]].to_numpy(np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return [*(lo + (hi - lo) / 4).tolist(), *(hi - (hi - lo) / 4).tolist()]


def time_server(run_name: str, variant: str, repeats: int, box: list[float]) -> dict[str, float]:
    """The Map page through AppTest: first and cached render, the map's bytes, the colour change and (scatter)
    the selection of ``box``."""
    from ui.testing import app_test

    _clear_caches()
    at = app_test(timeout_s=1800)
    at.session_state["run_name"] = run_name
    at.run()
    _clear_caches()
    at.switch_page(navigation.page("Map").script)
    if variant == "plotly":
        at.session_state["map_chart"] = {"webgl": "none"}  # what the scatter reports in a browser without WebGL2
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"map ({variant}) on {run_name}: {at.exception[0].value}")
    first_bytes, points = _map_bytes(at, variant)
    cached = []
    for _ in range(repeats):
        started = time.perf_counter()
        at.run()
        cached.append(time.perf_counter() - started)
    at.selectbox(key="map_colour").set_value(COLOUR_TO)
    started = time.perf_counter()
    at.run()
    colour = time.perf_counter() - started
    colour_bytes, _ = _map_bytes(at, variant)
    row = {"first": first, "cached": statistics.median(cached), "colour_server": colour, "bytes": first_bytes,
           "colour_bytes": colour_bytes, "points": points}
    if variant == "scatter":  # what the scatter reports for a box (scatter_map.take_events turns it into ids)
        at.session_state["map_chart"] = {**at.session_state.get("map_chart", {}),
                                         "selection": {"mode": "box", "box": box, "nonce": 1}}
        started, cpu = time.perf_counter(), time.process_time()
        at.run()
        row |= {"selection_server": time.perf_counter() - started, "selection_cpu": time.process_time() - cpu,
                "selection_bytes": _map_bytes(at, variant)[0], "server_selected": len(at.session_state["map_selection"])}
    return row


def _drawn(page, variant: str, n_points: int) -> float:
    page.wait_for_function(f"() => ({POINTS_JS[variant]})() >= {n_points}", timeout=BROWSER_TIMEOUT_MS, polling=100)
    received = page.evaluate(POINTS_JS[variant])
    if received != n_points:
        raise RuntimeError(f"the {variant} map holds {received:,} points, expected {n_points:,}")
    return page.evaluate(PAINTED_AT_JS) / 1e3


def _colour_change(page, variant: str) -> float:
    old = page.evaluate("() => window.galleryCoreScatter ? window.galleryCoreScatter.colourKey : null")
    page.get_by_role("combobox", name="Colour by").click()
    page.keyboard.type(COLOUR_TO)  # the list is virtualised: typing brings the option up
    option = page.get_by_role("option", name=COLOUR_TO, exact=True)
    option.wait_for(timeout=BROWSER_TIMEOUT_MS)
    started = page.evaluate("() => performance.now()")
    option.click()
    page.wait_for_function(COLOURED_JS[variant], arg=[COLOUR_TO.split(": ")[1], old], timeout=STEP_TIMEOUT_MS,
                           polling=50)
    return (page.evaluate(PAINTED_AT_JS) - started) / 1e3


def _selection_round_trip(page, variant: str) -> tuple[float, int, float | None]:
    """A box over the middle of the map (a quarter of its area): mouse released -> selection listed and drawn;
    with the seconds to the scatter's own highlight (None for plotly)."""
    area = page.locator(".nsewdrag" if variant == "plotly" else ".plot").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=10)
    started = page.evaluate("() => performance.now()")
    page.mouse.up()
    page.wait_for_function(SELECTED_JS[variant], timeout=STEP_TIMEOUT_MS, polling=50)
    seconds = (page.evaluate(PAINTED_AT_JS) - started) / 1e3
    heading = page.get_by_role("heading", name="Selected listings", exact=False).first.inner_text()
    highlighted = (page.evaluate("() => window.galleryCoreScatter.highlightedAt") - started) / 1e3 \
        if variant == "scatter" else None
    return seconds, int(heading.split(": ")[1].replace(",", "")), highlighted


def _capped(step, pair: bool = False):
    """A browser step's result, or infinity (reported as over STEP_TIMEOUT_MS) when it did not finish in time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return step()
    except PlaywrightTimeout:
        return (float("inf"), 0, None) if pair else float("inf")


def time_browser(artifacts_root: Path, n_points: int, variant: str) -> dict[str, float]:
    """Headless Chromium on a fresh server: the map drawn (fresh, then warm in a second tab), a colour change
    and a selection round trip in that tab."""
    from playwright.sync_api import sync_playwright

    from ui.testing import streamlit_server

    url_path = navigation.page("Map").url_path
    flags = CHROMIUM_FLAGS + (["--disable-webgl2"] if variant == "plotly" else [])
    loads = [load()]
    with streamlit_server(artifacts_root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            drawn = []
            for _ in range(2):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{server.url}/{url_path}", timeout=BROWSER_TIMEOUT_MS)
                drawn.append(_drawn(page, variant, n_points))
                loads.append(load())
                if len(drawn) == 1:
                    page.close()
            colour = _capped(lambda: _colour_change(page, variant))
            loads.append(load())
            selection, n_selected, highlight = (_capped(lambda: _selection_round_trip(page, variant), pair=True)
                                                if colour != float("inf") else (float("inf"), 0, None))
            loads.append(load())
        finally:
            browser.close()
    return {"browser_cold": drawn[0], "browser_warm": drawn[1], "colour_browser": colour,
            "selection_browser": selection, "selected": n_selected, "load": max(loads)} \
        | ({} if highlight is None else {"highlight_browser": highlight})


def measure_map(source_dir: Path, large_dir: Path, n_listings: int, repeats: int, browser: bool,
                variants: tuple[str, ...] = VARIANTS) -> dict:
    """One synthetic run of ``n_listings`` (made once, reused): each of ``variants`` (default both), server side
    and in the browser."""
    name = f"synthetic-map-{n_listings // 1000}k" if n_listings >= 1000 else f"synthetic-map-{n_listings}"
    run_dir = make_synthetic_run(source_dir, large_dir / "runs" / name, n_listings, max_photos=1, max_dim=16)
    root = large_dir / f"artifacts-{name}"  # this run alone, so the app opens it by default
    root.mkdir(parents=True, exist_ok=True)
    link = root / name
    if not link.is_symlink():
        link.symlink_to(run_dir.resolve(), target_is_directory=True)
    os.environ["GALLERY_CORE_ARTIFACTS"] = str(root)
    n = len(Run(run_dir, verify=False).listings)
    result: dict = {"name": name, "listings": n}
    box = selection_box(run_dir)
    for variant in variants:
        row = {"server_load": load(), **time_server(name, variant, repeats, box)}
        if row["points"] != n:
            raise RuntimeError(f"the {variant} map of {name} draws {row['points']:,} of {n:,} listings")
        if browser:
            row |= time_browser(root, n, variant)
        result[variant] = row
        print(f"map of {name}, {variant}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v:,}"
                                                        for k, v in row.items()), flush=True)
        if browser:  # the browser's share of the load average: measured one variant after the other, never both
            time.sleep(5)
    if "scatter" in result:
        result["bytes"] = result["scatter"]["bytes"]
    return result


def _s(row: dict, key: str) -> str:
    if key not in row:
        return "-"
    return f"> {STEP_TIMEOUT_MS / 1e3:.0f}" if row[key] == float("inf") else f"{row[key]:.2f}"


def selection_section(maps: list[dict]) -> list[str]:
    """The scatter's selection round trip split: the server's rerun and its bytes, the browser's own highlight."""
    lines = ["", "The scatter's box selection in parts. Server (AppTest): the rerun after the browser reports a box "
             "over the middle half of the coordinates' extent (wall and CPU seconds; the map's bytes in that "
             "rerun: the selection as a bit per listing, nothing else); browser: from mouse release to its own "
             "highlight (drawn while Python works), and to Python's selection listed and drawn.", "",
             "| listings | server selection (s) | server selection CPU (s) | map payload (kB) | selected (server) | "
             "browser highlight (s) | round trip (s) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for m in (m for m in maps if "scatter" in m):
        r = m["scatter"]
        lines.append(f"| {m['listings']:,} | {r['selection_server']:.2f} | {r['selection_cpu']:.2f} | "
                     f"{r['selection_bytes'] / 1e3:.1f} | {r['server_selected']:,} | {_s(r, 'highlight_browser')} | "
                     f"{_s(r, 'selection_browser')} |")
    return lines


def map_section(maps: list[dict]) -> list[str]:
    lines = ["## The map at scale: the WebGL scatter beside the plotly map", "",
             "Synthetic runs (one photo per listing). Both variants draw every listing (nothing sampled or "
             "aggregated; *points* is what the browser's map holds, checked equal to the listings). **scatter**: the "
             "page's deck.gl component, which gets the coordinates once per run as float32, a colour column per "
             "colour option, a filter as a bit mask; **plotly**: the figure the page drew before (and still draws "
             "in a browser without WebGL2: measured with Chromium's `--disable-webgl2`), re-sent whole on every "
             "change. Payload: the map's bytes in the page's message, first view and after a colour change. "
             "Server: the page's script run through AppTest (first: caches cleared; cached: a rerun; colour: the "
             "rerun after a colour change). Browser: headless Chromium against `streamlit run`, from navigation "
             "until the map holds every point and has drawn (fresh server; then a second tab on the warm server), "
             "a colour change (option clicked -> new colours drawn) and a box selection over the middle of the map "
             "(mouse released -> Python's selection listed under the map and highlighted on it). *load*: the "
             "highest 1-minute load average seen while the row's browser times were taken (2 cores: above 2, "
             "other work was competing and every time is inflated).", "",
             "| listings | map | points | payload first (MB) | payload colour change (MB) | server first (s) | "
             "server cached (s) | server colour (s) | browser fresh (s) | browser warm (s) | colour change (s) | "
             "selection round trip (s) | selected | load |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in maps:
        for variant in (v for v in VARIANTS if v in m):
            r = m[variant]
            lines.append(f"| {m['listings']:,} | {variant} | {r['points']:,} | {r['bytes'] / 1e6:.2f} | "
                         f"{r['colour_bytes'] / 1e6:.2f} | {r['first']:.2f} | {r['cached']:.2f} | "
                         f"{r['colour_server']:.2f} | {_s(r, 'browser_cold')} | {_s(r, 'browser_warm')} | "
                         f"{_s(r, 'colour_browser')} | {_s(r, 'selection_browser')} | "
                         f"{r.get('selected', 0):,} | {r.get('load', r['server_load']):.1f} |")
    lines += selection_section(maps)
    largest = max(maps, key=lambda m: m["listings"], default=None)
    if largest is not None and "browser_warm" in largest.get("scatter", {}):
        row = largest["scatter"]
        verdicts = [f"{key.replace('_', ' ')} {row[key]:.2f} s ({'within' if row[key] <= target else 'over'} "
                    f"the {target:.0f} s target)" for key, target in TARGETS.items()]
        lines += ["", f"At {largest['listings']:,} listings the scatter: " + "; ".join(verdicts)
                  + f", measured at a load average of up to {row['load']:.1f}."]
    return lines + [""]
