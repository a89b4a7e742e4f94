"""The app server's cost per page load and per interaction, with 1, 8 and 16 concurrent sessions.

    python benchmarks/bench_app_load.py [--run artifacts/demo] [--sessions 1 8 16] [--compare REV]
                                        [--out docs/benchmarks/app.md] [--quick]

A real ``streamlit run app.py`` server (started from the repository root, so ``.streamlit/config.toml``
applies) serves the demo run; headless Chromium tabs (Playwright) are the users, one Streamlit session
per tab, all tabs of one browser profile (so the static JavaScript is fetched once, as for a returning
user). What is counted is the CPU time of the server process alone (utime + stime from
``/proc/<pid>/stat``, all its threads) from just before an action until the server is idle again after
every tab has finished drawing (trailing photo requests included), divided by the number of tabs that
did it at the same time. The browser's CPU (Chromium and Playwright) is counted apart. Wall times are
per tab, from the action until the page is drawn (title shown, script run finished, images loaded);
with more sessions they include waiting for the browser, which shares the machine.

Per number of sessions, on a fresh server:

* ``fresh server``: one tab opens each page by its URL, one after another: the first visit of each page
  after a start (Streamlit's caches empty; photos' thumbnails already on disk). Not counted as cached.
* ``new browser``: every tab, each in a browser profile of its own, opens the app: a first-time visitor,
  whose browser downloads Streamlit's JavaScript (about 5 MB, compressed by the server on the fly).
* ``new session``: every tab opens the app (Overview), a new session with the caches warmed by another.
* ``1st visit``: every tab goes to each page in turn from the sidebar (the Listing page through the
  first suspect's link on Audit): the first visit of the page in this session, caches warm.
* ``2nd visit``: the same again: a page visited before in the session.
* ``interaction``: a box selection on the map, a colour change, adding a photo to the seed gallery,
  showing more suspects, the validation losses, seeding a retrieval from a listing's gallery.
* ``deep link``: every tab opens a page by its URL (a new session whose first page it is).

A *cached page load* is any visit except the fresh-server ones; the goal is under 0.2 server
CPU-seconds each. ``--compare REV`` runs the same measurement on the app at that git revision
(``git archive`` into a temporary folder, started from there) in the same invocation, alternating
with the working tree's app. The run is only read: the app sees it through an artifacts folder of
symbolic links with its own cache folder (thumbnails), under ``--work-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # app_load_report, beside this script

from app_load_report import Measure, markdown_section, write_section  # noqa: E402
from app_load_setup import (  # noqa: E402
    CHROMIUM,
    describe_revision,
    export_revision,
    machine_description,
    prewarm_thumbnails,
    shadow_artifacts,
)

from ui import navigation  # noqa: E402
from ui.testing import streamlit_server  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  # every tab is a user looking at it: no throttling of tabs in the background
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows"]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 300_000
IDLE_STEP_S = 0.5
IDLE_CPU_S = 0.015  # server CPU per IDLE_STEP_S below which it counts as idle
TICKS = os.sysconf("SC_CLK_TCK")
DONE_JS = ("() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
           " return app && app.getAttribute('data-test-script-state') === 'notRunning'"
           " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
           " && !document.querySelector('[data-testid=\"stSpinner\"]')"
           " && [...document.images].every(image => image.complete); }")


# --- CPU accounting from /proc ---

def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):  # a process that has just exited
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def client_cpu_s(server_pid: int) -> float:
    """CPU seconds of this process and its descendants (Playwright's driver, Chromium), not the server."""
    server_tree = {server_pid, *descendants(server_pid)}
    total = process_cpu_s(os.getpid())
    for pid in descendants(os.getpid()):
        if pid not in server_tree:
            with contextlib.suppress(OSError):
                total += process_cpu_s(pid)
    return total


async def until_idle(pid: int) -> None:
    last = process_cpu_s(pid)
    while True:
        await asyncio.sleep(IDLE_STEP_S)
        now = process_cpu_s(pid)
        if now - last < IDLE_CPU_S:
            return
        last = now


# --- what a user does ---

async def drawn(tab, title: str | None = None, heading: str | re.Pattern | None = None) -> None:
    """Wait for the page's title (and another heading), the script run finished and the images loaded."""
    if title is not None:
        await tab.get_by_role("heading", name=title, level=1).wait_for(timeout=TIMEOUT_MS)
    if heading is not None:
        await tab.get_by_role("heading", name=heading).first.wait_for(timeout=TIMEOUT_MS)
    await tab.wait_for_function(DONE_JS, timeout=TIMEOUT_MS)


async def open_url(tab, base_url: str, spec: navigation.PageSpec, listing_id: str) -> None:
    query = f"?listing={listing_id}" if spec.title == "Listing" else ""
    await tab.goto(f"{base_url}/{spec.url_path if not spec.default else ''}{query}")
    await drawn(tab, spec.title)


async def visit(tab, title: str) -> None:
    """Go to a page as a user does: from the sidebar; the Listing page through the chosen suspect's link on Audit
    ("Open listing L..."; the suspects table's own links open a new browser tab)."""
    if title == "Listing":
        await tab.get_by_role("link", name=re.compile(r"^Open listing ")).first.click()
    else:
        await tab.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    await drawn(tab, title)


# The map is the WebGL scatter (ui/components/scatter; it keeps what it drew at window.galleryCoreScatter), or
# plotly in a browser without WebGL2: the map interactions work on either.
MAP_DRAWN_JS = ("() => { const s = window.galleryCoreScatter;"
                " return (!!s && s.renders > 0 && s.renderedVersion === s.version && s.points > 0)"
                " || !!document.querySelector('.js-plotly-plot .nsewdrag'); }")


async def webgl_map(tab) -> bool:
    await tab.wait_for_function(MAP_DRAWN_JS, timeout=TIMEOUT_MS)
    return await tab.evaluate("() => !!window.galleryCoreScatter")


async def select_on_map(tab) -> None:
    area = ".plot" if await webgl_map(tab) else ".nsewdrag"  # the scatter starts in box-select mode
    await tab.locator(area).first.scroll_into_view_if_needed()
    box = await tab.locator(area).first.bounding_box()
    await tab.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    await tab.mouse.down()
    await tab.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=8)
    await tab.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=8)
    await tab.mouse.up()
    await drawn(tab, heading=re.compile(r"^Selected listings: [1-9]"))


async def choose(tab, label: str, option: str) -> None:
    """Pick an option of a selectbox."""
    await tab.get_by_label(label, exact=True).click()
    await tab.keyboard.type(option)  # the list shows only some options until filtered
    await tab.get_by_role("option", name=option, exact=True).click()


async def change_map_colour(tab) -> None:
    webgl = await webgl_map(tab)
    before = await tab.evaluate("() => window.galleryCoreScatter.colourKey") if webgl else None
    await choose(tab, "Colour by", "Attribute: split")
    await tab.get_by_role("heading", name="Map", level=1).wait_for(timeout=TIMEOUT_MS)
    if webgl:
        await tab.wait_for_function("before => window.galleryCoreScatter.colourKey !== before", arg=before,
                                    timeout=TIMEOUT_MS)
        await tab.wait_for_function(MAP_DRAWN_JS, timeout=TIMEOUT_MS)
    else:
        await tab.wait_for_function("() => [...document.querySelectorAll('.legendtitletext')]"
                                    ".some(t => t.textContent.trim() === 'split')", timeout=TIMEOUT_MS)
    await drawn(tab)


async def add_a_photo(tab) -> None:
    text = await tab.get_by_role("heading", name=re.compile(r"^Seed gallery: \d+ photo")).inner_text()
    before = int(re.search(r"(\d+) photo", text).group(1))
    await tab.get_by_role("button", name="Add", exact=True).first.click()
    await drawn(tab, heading=f"Seed gallery: {before + 1} photo(s)")
    await drawn(tab, heading="Most similar listings")


async def more_suspects(tab) -> None:
    caption = await tab.get_by_text(re.compile(r"^[\d,]+ listings with a recorded")).first.inner_text()
    n = min(40, int(caption.split(" ")[0].replace(",", "")))  # a small run has fewer than 40 to show
    field = tab.get_by_label("Suspects to show")
    await field.fill(str(n))
    await field.press("Enter")
    await tab.get_by_role("button", name=f"Download {n} listings as CSV").wait_for(timeout=TIMEOUT_MS)
    await drawn(tab)


async def validation_losses(tab) -> None:
    await tab.get_by_text("validation", exact=True).click()
    await tab.locator(".gtitle", has_text="Per-task validation loss").first.wait_for(timeout=TIMEOUT_MS)
    await drawn(tab)


async def decide(tab) -> None:
    """An audit decision on the chosen suspect (every session decides the same one: the later decision wins),
    written to the run's decisions database, then the page's rerun that shows it."""
    await tab.get_by_role("button", name="Recorded value is right").click()
    await tab.get_by_text("confirmed as recorded").first.wait_for(timeout=TIMEOUT_MS)
    await drawn(tab)


async def seed_from_listing(tab) -> None:
    await tab.get_by_role("button", name="Use this gallery as retrieval seeds").click()
    await drawn(tab, "Retrieve", heading="Most similar listings")


@dataclass(frozen=True)
class Interaction:
    page: str  # the page it starts on (reached with ``visit``)
    name: str
    act: Callable[..., Awaitable[None]]


INTERACTIONS = (
    Interaction("Map", "box selection", select_on_map),
    Interaction("Map", "colour by another attribute", change_map_colour),
    Interaction("Retrieve", "add a photo to the seed gallery", add_a_photo),
    Interaction("Audit", "show up to 40 suspects", more_suspects),
    Interaction("Audit", "audit decision (recorded value is right)", decide),
    Interaction("Listing", "seed a retrieval with the gallery", seed_from_listing),
    Interaction("Model", "validation losses", validation_losses),
)
VISIT_ORDER = ("Map", "Retrieve", "Audit", "Listing", "Model", "Overview")


# --- measuring ---

async def measure(server_pid: int, phase: str, what: str, tabs: list,
                  action: Callable[..., Awaitable[None]]) -> Measure:
    await until_idle(server_pid)
    server0, client0 = process_cpu_s(server_pid), client_cpu_s(server_pid)

    async def timed(tab) -> float:
        start = time.perf_counter()
        await action(tab)
        return time.perf_counter() - start

    walls = await asyncio.gather(*(timed(tab) for tab in tabs))
    await until_idle(server_pid)
    n = len(tabs)
    result = Measure(phase, what, n, (process_cpu_s(server_pid) - server0) / n,
                     (client_cpu_s(server_pid) - client0) / n, list(walls))
    print(f"  {n:2d} sessions  {phase:13s} {what:38s} server {result.server_cpu_s:6.3f} CPU-s/session  "
          f"wall median {statistics.median(walls):6.2f} s, max {max(walls):6.2f} s", flush=True)
    return result


async def scenario(app_dir: Path, artifacts: Path, n_sessions: int, listing_id: str, fresh_pages: bool,
                   smoke: bool = False) -> list[Measure]:
    """Every phase, or with ``smoke`` only the new session, the first visits and the interactions (every step a
    user takes, once: what the benchmark smoke test checks still works)."""
    from playwright.async_api import async_playwright

    pages = {spec.title: spec for spec in navigation.PAGES}
    results: list[Measure] = []
    with streamlit_server(artifacts, app_dir=app_dir) as server:
        pid = server.pid
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            context = await browser.new_context(viewport=VIEWPORT)
            try:
                first = await context.new_page()
                fresh = [] if smoke else [await measure(pid, "fresh server", spec.title, [first],
                                       lambda tab, s=spec: open_url(tab, server.url, s, listing_id))
                         for spec in navigation.PAGES]
                if not smoke:
                    await open_url(first, server.url, pages["Audit"], listing_id)  # and the listing visited below
                    fresh.append(await measure(pid, "fresh server", "Listing (first suspect)", [first],
                                               lambda tab: visit(tab, "Listing")))
                if fresh_pages:
                    results += fresh
                await first.close()
                # a browser that has never seen the app downloads Streamlit's JavaScript (once; then cached)
                strangers = [await browser.new_context(viewport=VIEWPORT) for _ in range(0 if smoke else n_sessions)]
                overview = next(s for s in navigation.PAGES if s.default)
                if strangers:
                    results.append(await measure(pid, "new browser", overview.title,
                                                 [await c.new_page() for c in strangers],
                                                 lambda tab: open_url(tab, server.url, overview, listing_id)))
                for stranger in strangers:
                    await stranger.close()
                tabs = [await context.new_page() for _ in range(n_sessions)]
                results.append(await measure(pid, "new session", overview.title, tabs,
                                             lambda tab: open_url(tab, server.url, overview, listing_id)))
                for phase in ("1st visit",) if smoke else ("1st visit", "2nd visit"):
                    for title in VISIT_ORDER:
                        results.append(await measure(pid, phase, title, tabs, lambda tab, t=title: visit(tab, t)))
                for interaction in INTERACTIONS:
                    await asyncio.gather(*(visit(tab, interaction.page) for tab in tabs))
                    results.append(await measure(pid, "interaction", f"{interaction.page}: {interaction.name}",
                                                 tabs, interaction.act))
                    if interaction.page == "Listing":  # it ends on Retrieve; go back for the next
                        await asyncio.gather(*(visit(tab, "Audit") for tab in tabs))
                for title in () if smoke else (overview.title, *VISIT_ORDER[:-1]):
                    results.append(await measure(pid, "deep link", title, tabs,
                                                 lambda tab, s=pages[title]: open_url(tab, server.url, s, listing_id)))
            finally:
                await context.close()
                await browser.close()
    return results


def main() -> None:
    global TIMEOUT_MS  # read by every wait above
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=REPO_ROOT / "artifacts" / "demo", help="a built run (read only)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16], help="concurrent sessions")
    parser.add_argument("--compare", metavar="REV", help="also measure the app at this git revision")
    parser.add_argument("--quick", action="store_true", help="1 session; a check that the benchmark works")
    parser.add_argument("--smoke", action="store_true", help="1 session, every page and interaction once, nothing "
                        "written (tests/test_benchmarks_smoke.py: a check that every step still works)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "app.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave --out alone")
    parser.add_argument("--timeout-s", type=float, default=300,
                        help="how long a tab waits for a page (default 300 s; the smoke test waits less)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-app-load")
    args = parser.parse_args()
    TIMEOUT_MS = int(args.timeout_s * 1000)
    if args.quick or args.smoke:
        args.sessions = [1]
    if args.smoke:
        args.no_write, args.compare = True, None
    if not (args.run / "manifest.json").is_file():
        sys.exit(f"{args.run}: not a built run (no manifest.json); build the demo with `make demo-data`")
    started = datetime.datetime.now()
    machine = machine_description()
    print(machine, flush=True)
    import pandas as pd

    listing_id = str(pd.read_parquet(args.run / "listings.parquet", columns=["listing_id"])["listing_id"].iloc[0])
    artifacts = shadow_artifacts(args.run.resolve(), args.work_dir)
    apps = {"this app (working tree)": REPO_ROOT}
    if args.compare:
        apps = {f"before: {describe_revision(args.compare)}": export_revision(args.compare, args.work_dir)} | apps
    for app_dir in apps.values():
        prewarm_thumbnails(app_dir, artifacts / args.run.name)
    versions: dict[str, list[Measure]] = {label: [] for label in apps}
    for i, n in enumerate(args.sessions):
        for label, app_dir in apps.items():
            print(f"{label}: {n} session(s)", flush=True)
            versions[label] += asyncio.run(scenario(app_dir, artifacts, n, listing_id, fresh_pages=i == 0,
                                                    smoke=args.smoke))
    command = "python benchmarks/bench_app_load.py" + (" --smoke" if args.smoke else " --quick" if args.quick else
                                                       f" --sessions {' '.join(map(str, args.sessions))}")
    if args.compare:
        command += f" --compare {args.compare}"
    section = markdown_section(versions, args.sessions, command, machine, started, args.run, args.quick)
    print(section)
    if not args.no_write:
        write_section(args.out, section)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
