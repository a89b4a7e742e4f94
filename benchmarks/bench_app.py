"""Server-side time of each page of the app, first and cached render, on the demo run and a 100k run; the map
at 500k and 1M listings: payload, server render and the browser's time to first paint.

    python benchmarks/bench_app.py [--artifacts artifacts] [--run demo] [--listings 100000]
                                   [--map-listings 500000 1000000] [--map-only] [--no-browser]
                                   [--large-dir /tmp/gallery-core-bench-app] [--out docs/benchmarks/app.md]

Renders go through ``streamlit.testing.v1.AppTest`` (the script run and its element tree, not the
browser). Per page and run:

* cold:   Streamlit's caches cleared and the run's disk thumbnail cache emptied (first visit after a build),
* first:  Streamlit's caches cleared, thumbnails on disk (first visit after a server restart); this is
          also what every render would cost without ``st.cache_data`` / ``st.cache_resource``,
* cached: a rerun of the same page (median of ``--repeats``), the common case.

The 100k run is synthetic: the demo run's listings repeated with new ids, its photos reused (same
files), photo embeddings jittered, listing embeddings their normalised means, UMAP coordinates
jittered, predictions copied; it reuses the demo checkpoint and gets a valid manifest through
``gallery_core.artifacts.store.record_step``. It is made once and reused while the demo run is unchanged.
The map runs (``--map-listings``) are made the same way with one photo per listing and 16-d embeddings
(the Map page reads listings, coordinates and predictions, no embedding; this keeps a 1M run small). For each,
the Map page's figure as sent to the browser (bytes, points in it: every listing, none dropped), its
server-side render through AppTest (first and cached), and in headless Chromium (Debian's, through
Playwright, against ``streamlit run``) the time from navigation until the chart holds every point and has
drawn, on a fresh server and again on a warm one; the page is checked to have received every point.
Further comparison: thumbnails made from the photos vs read from the disk and memory caches.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it

from gallery_core.app import thumbnails  # noqa: E402
from gallery_core.artifacts.check import check_run  # noqa: E402
from gallery_core.artifacts.run import Run  # noqa: E402
from gallery_core.artifacts.store import STEPS, RunPaths, atomic_path, hash_key, record_step, write_parquet  # noqa: E402
from gallery_core.config import BuildConfig  # noqa: E402
from gallery_core.search.index import (  # noqa: E402
    build_index,
    save_index,
)
from gallery_core.search.seed_gallery import SeedGallery  # noqa: E402
from gallery_core.vectors import l2_normalise  # noqa: E402
from ui import navigation  # noqa: E402

PAGES = tuple(Path(p.script).stem for p in navigation.PAGES)  # the app's pages, in sidebar order
SYNTHETIC_INDEX_TREES = 10
CHUNK_ROWS = 100_000
CACHED_BUDGET_S = 1.0
MAP_LISTINGS = (500_000, 1_000_000)
MESSAGE_CAP_BYTES = 200 * 10**6  # Streamlit's server.maxMessageSize default: 200 MB (it multiplies by 1e6)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
BROWSER_TIMEOUT_MS = 600_000


# --- the synthetic large run ---

def _source_signature(source: Run) -> str:
    return hash_key({name: record["checksum"] for name, record in source.manifest["files"].items()})


def make_synthetic_run(source_dir: Path, out: Path, n_listings: int, seed: int = 0,
                       max_photos: int | None = None, max_dim: int | None = None) -> Path:
    """A run of ``n_listings`` listings made from a built run (see the module docstring); reused if up to date.
    ``max_photos``: keep at most this many photos per listing; ``max_dim``: keep the embeddings' first
    ``max_dim`` dimensions. The map runs keep one photo and 16 dimensions (the Map page reads no embedding;
    a 1M run with the demo's 1280-d embeddings would be 5 GB per embedding file and a slow index)."""
    source = Run(source_dir, verify=False)
    marker = {"source": str(source_dir.resolve()), "source_signature": _source_signature(source),
              "n_listings": n_listings, "seed": seed, "max_photos": max_photos, "max_dim": max_dim}
    existing = out / "manifest.json"
    if existing.is_file():
        import json

        if json.loads(existing.read_text()).get("synthetic") == marker:
            return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    paths, rng = RunPaths(out), np.random.default_rng(seed)
    started = time.perf_counter()

    # listings: the source's, repeated with new ids; photos: each copy points at the source's photo files
    src_rows = np.arange(n_listings) % len(source.listings)
    listings = source.listings.iloc[src_rows].reset_index(drop=True)
    listings["listing_id"] = [f"S{i + 1:07d}" for i in range(n_listings)]
    sizes = listings["n_photos"].to_numpy(np.int64)
    if max_photos is not None:
        sizes = np.minimum(sizes, max_photos)
        listings["n_photos"] = sizes
    first_photo = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_photos = int(sizes.sum())
    within = np.arange(n_photos) - np.repeat(first_photo, sizes)
    src_photo_rows = np.repeat(source.listings["first_photo"].to_numpy(np.int64)[src_rows], sizes) + within
    listings["first_photo"] = first_photo
    listing_index = np.repeat(np.arange(n_listings), sizes)
    photos = pd.DataFrame({"photo_index": np.arange(n_photos),
                           "listing_id": np.repeat(listings["listing_id"].to_numpy(), sizes),
                           "path": source.photos["path"].to_numpy()[src_photo_rows],
                           "listing_index": listing_index})
    write_parquet(paths.listing_table, listings)
    write_parquet(paths.photo_table, photos)

    # photo embeddings jittered (5% of their spread), listing embeddings = normalised mean of its photos
    src_photo_embeddings = source.photo_embeddings
    dim = src_photo_embeddings.shape[1] if max_dim is None else min(max_dim, src_photo_embeddings.shape[1])
    noise_scale = 0.05 * float(np.asarray(src_photo_embeddings[:10_000]).std())
    listing_embeddings = np.empty((n_listings, dim), np.float32)
    with atomic_path(paths.photo_embeddings) as tmp:
        photo_embeddings = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_photos, dim))
        for start in range(0, n_listings, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n_listings)
            lo, hi = first_photo[start], first_photo[stop - 1] + sizes[stop - 1]
            chunk = np.asarray(src_photo_embeddings[src_photo_rows[lo:hi], :dim], dtype=np.float32)
            chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * noise_scale
            photo_embeddings[lo:hi] = chunk
            sums = np.add.reduceat(chunk, first_photo[start:stop] - lo, axis=0)
            listing_embeddings[start:stop] = l2_normalise(sums / sizes[start:stop, None])
        photo_embeddings.flush()
        del photo_embeddings
    with atomic_path(paths.listing_embeddings) as tmp, open(tmp, "wb") as f:
        np.save(f, listing_embeddings)
    shutil.copyfile(paths.listing_embeddings, paths.new_task_embeddings)  # the app never reads it; the manifest does

    coordinates = source.coordinates.iloc[src_rows].reset_index(drop=True)
    spread = coordinates[["x", "y"]].std().to_numpy()
    xy = coordinates[["x", "y"]].to_numpy() + rng.normal(0, 1, (n_listings, 2)) * spread * 0.03
    write_parquet(paths.umap, pd.DataFrame({"listing_id": listings["listing_id"], "x": xy[:, 0].astype(np.float32),
                                            "y": xy[:, 1].astype(np.float32)}))
    predictions = source.predictions.iloc[src_rows].reset_index(drop=True)
    predictions["listing_id"] = listings["listing_id"]
    write_parquet(paths.predictions, predictions)
    for name in ("checkpoint", "train_log", "catalogue_report", "metrics"):
        shutil.copyfile(getattr(source.paths, name), getattr(paths, name))

    config = source.config.to_dict()
    config["index"]["n_trees"] = SYNTHETIC_INDEX_TREES
    save_index(build_index(listing_embeddings, BuildConfig.from_dict(config).index, seed=seed), paths.index)

    base = {key: source.manifest[key] for key in ("tasks", "holdout", "backbone") if key in source.manifest}
    base |= {"config": config, "synthetic": marker,
             "catalogue": {"root": f"synthetic, from {source_dir}", "n_listings": n_listings, "n_photos": n_photos}}
    for step in STEPS:
        record_step(out, step, hash_key("synthetic", step, marker), 0.0, {"synthetic": True},
                    base=base if step == STEPS[0] else None)
    print(f"made the synthetic run {out}: {n_listings:,} listings, {n_photos:,} photos "
          f"in {time.perf_counter() - started:.0f} s")
    return out


# --- page renders ---

def quiet_streamlit() -> None:
    """No notes about cached functions used outside a script run (AppTest runs reset the level)."""
    from streamlit import logger

    logger.set_log_level("error")


def clear_streamlit_caches() -> None:
    import streamlit as st

    quiet_streamlit()
    st.cache_data.clear()
    st.cache_resource.clear()


def _prepare_page(at, page: str, run: Run) -> None:
    """Put the page in its typical state: a selection on the map, a seed gallery, a listing id."""
    ids = run.listings["listing_id"]
    if page == "map":
        at.session_state["map_selection"] = ids.iloc[:12].tolist()
    if page == "retrieve":
        first = run.listings.iloc[0]
        at.session_state["seed_tray"] = SeedGallery(str(run.root), photo_indices=list(
            range(int(first["first_photo"]), int(first["first_photo"]) + int(first["n_photos"]))))
    if page == "listing":
        at.query_params["listing"] = str(ids.iloc[0])


def time_page(page: str, run: Run, run_name: str, repeats: int, cold: bool) -> dict[str, float]:
    """First and cached render times of one page (a fresh session, Streamlit's caches cleared)."""
    from ui.testing import app_test

    clear_streamlit_caches()
    if cold:
        shutil.rmtree(thumbnails.thumbnail_dir(run.root), ignore_errors=True)
    at = app_test(timeout_s=600)
    at.session_state["run_name"] = run_name
    _prepare_page(at, page, run)
    if page != "overview":
        at.run()  # registers the pages, so switch_page can resolve them (Overview renders here, uncached)
        clear_streamlit_caches()
        at.switch_page(f"ui/pages/{page}.py")
    return time_renders(at, f"{page} on {run_name}", repeats)


def time_renders(at, what: str, repeats: int) -> dict[str, float]:
    """Seconds of the AppTest's next run (first) and the median of ``repeats`` runs after it (cached)."""
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{what}: {at.exception[0].value}")
    cached = []
    for _ in range(repeats):
        started = time.perf_counter()
        at.run()
        cached.append(time.perf_counter() - started)
    return {"first": first, "cached": statistics.median(cached)}


def map_spec_points(spec: str) -> int:
    """How many points a plotly figure's JSON draws (its traces' x arrays: lists or base64 typed arrays)."""
    import json

    def length(array) -> int:
        if isinstance(array, dict):  # {"dtype": "f4", "bdata": "..."}
            return len(base64.b64decode(array["bdata"])) // np.dtype(array["dtype"]).itemsize
        return len(array)

    return sum(length(trace["x"]) for trace in json.loads(spec)["data"])


def time_map_server(run: Run, run_name: str, repeats: int) -> dict[str, float]:
    """The Map page through AppTest: first render (Streamlit's caches cleared: the run checked and loaded, the
    figure built) and cached render (median), and the figure sent to the browser: bytes and points."""
    from ui.testing import app_test

    clear_streamlit_caches()
    at = app_test(timeout_s=1800)
    at.session_state["run_name"] = run_name
    at.run()
    clear_streamlit_caches()
    at.switch_page(navigation.page("Map").script)
    times = time_renders(at, f"map on {run_name}", repeats)
    spec = at.get("plotly_chart")[0].proto.spec
    return times | {"bytes": len(spec.encode()), "points": map_spec_points(spec)}


# What the browser's chart holds: plotly keeps the typed arrays as sent in ``data`` and decodes them into
# ``_fullData``, where ``_length`` is each trace's number of points.
CHART_POINTS_JS = """() => {
    const plot = document.querySelector('.js-plotly-plot');
    if (!plot || !plot._fullData) return 0;
    return plot._fullData.reduce((n, trace) => n + (trace._length || 0), 0);
}"""
# After the chart holds every point: the next animation frame, when the WebGL canvas has been drawn.
PAINTED_AT_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def time_map_browser(artifacts_root: Path, n_points: int, visits: int = 2) -> list[dict[str, float]]:
    """Headless Chromium opening the Map page on a fresh server, ``visits`` times (a new tab each): seconds from
    navigation until the chart holds ``n_points`` points and has drawn them, and the points it holds."""
    from playwright.sync_api import sync_playwright

    from ui.testing import streamlit_server

    results = []
    url_path = navigation.page("Map").url_path
    with streamlit_server(artifacts_root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            for _ in range(visits):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{server.url}/{url_path}", timeout=BROWSER_TIMEOUT_MS)
                page.wait_for_function(f"() => ({CHART_POINTS_JS})() >= {n_points}", timeout=BROWSER_TIMEOUT_MS,
                                       polling=100)
                painted_ms = page.evaluate(PAINTED_AT_JS)  # since the navigation started
                received = page.evaluate(CHART_POINTS_JS)
                if received != n_points:
                    raise RuntimeError(f"the browser's map holds {received:,} points, expected {n_points:,}")
                results.append({"first_paint": painted_ms / 1e3, "points": received})
                page.close()
        finally:
            browser.close()
    return results


def measure_map(source_dir: Path, large_dir: Path, n_listings: int, repeats: int, browser: bool) -> dict:
    """One map run of ``n_listings`` (made once): the server-side figure and render, and the browser's paint."""
    name = f"synthetic-map-{n_listings // 1000}k" if n_listings >= 1000 else f"synthetic-map-{n_listings}"
    run_dir = make_synthetic_run(source_dir, large_dir / "runs" / name, n_listings, max_photos=1, max_dim=16)
    root = large_dir / f"artifacts-{name}"  # this run alone, so the app opens it by default
    root.mkdir(parents=True, exist_ok=True)
    link = root / name
    if not link.is_symlink():
        link.symlink_to(run_dir.resolve(), target_is_directory=True)
    os.environ["GALLERY_CORE_ARTIFACTS"] = str(root)
    run = Run(run_dir, verify=False)
    result = {"name": name, "listings": len(run.listings), **time_map_server(run, name, repeats)}
    if result["points"] != len(run.listings):
        raise RuntimeError(f"the map of {name} draws {result['points']:,} of {len(run.listings):,} listings")
    if browser:
        visits = time_map_browser(root, len(run.listings))
        result["browser_cold"], result["browser_warm"] = visits[0]["first_paint"], visits[-1]["first_paint"]
        result["browser_points"] = visits[0]["points"]
    print(f"map of {name}: figure {result['bytes'] / 1e6:.1f} MB with {result['points']:,} points; server first "
          f"{result['first']:.2f} s, cached {result['cached']:.2f} s"
          + (f"; browser first paint {result['browser_cold']:.2f} s (fresh server), {result['browser_warm']:.2f} s "
             f"(warm), {result['browser_points']:,} points received" if browser else ""), flush=True)
    return result


def map_section(maps: list[dict]) -> list[str]:
    lines = ["## The map at scale: every listing drawn", "",
             "Synthetic runs (one photo per listing). The Map page draws every listing as a WebGL point "
             "(nothing sampled or aggregated); coordinates and colour values are float32 typed arrays "
             f"(base64 in the JSON). Payload: the chart's JSON as sent to the browser, against Streamlit's "
             f"message cap of {MESSAGE_CAP_BYTES / 1e6:.0f} MB. Server: the page's script run through AppTest "
             "(first: caches cleared, so the run is checked and loaded and the figure built; cached: a rerun). "
             "Browser: headless Chromium against `streamlit run`, from navigation until the chart holds every "
             "point and has drawn (fresh server, then a second tab on the warm server); *received* counts the "
             "points in the page's chart.", "",
             "| listings | points in figure | received by the browser | payload (MB) | server first (s) | "
             "server cached (s) | browser, fresh server (s) | browser, warm server (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in maps:
        browser = (f"{m['browser_points']:,} | " if "browser_points" in m else "not measured | ")
        paint = (f"{m['browser_cold']:.2f} | {m['browser_warm']:.2f} |" if "browser_cold" in m else "- | - |")
        lines.append(f"| {m['listings']:,} | {m['points']:,} | {browser}{m['bytes'] / 1e6:.1f} | {m['first']:.2f} | "
                     f"{m['cached']:.2f} | {paint}")
    return lines + [""]


def time_thumbnails(run: Run, n: int = 200, repeats: int = 5) -> dict[str, float]:
    """Milliseconds per thumbnail: made from the photo, read from the disk cache (what the app does),
    and the alternatives of an in-memory Streamlit cache in front of the disk cache."""
    import streamlit as st

    quiet_streamlit()
    paths = run.photos["path"].iloc[:n].tolist()
    cache = Path(tempfile.mkdtemp(prefix="thumbs-"))

    def from_disk(path: str) -> bytes:
        return thumbnails.thumbnail_bytes(path, thumbnails.SMALL_THUMBNAIL, cache)

    def per_photo_ms(read) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            for p in paths:
                read(p)
        return (time.perf_counter() - started) / (repeats * n) * 1e3

    try:
        started = time.perf_counter()
        for p in paths:
            from_disk(p)
        made = (time.perf_counter() - started) / n * 1e3
        timings = {"made from the photo (first view)": made, "disk cache (what the app does)": per_photo_ms(from_disk)}
        for name, decorator in (("st.cache_data", st.cache_data), ("st.cache_resource", st.cache_resource)):
            cached = decorator(max_entries=10_000, show_spinner=False)(from_disk)
            for p in paths:
                cached(p)
            timings[f"{name} in front of the disk cache"] = per_photo_ms(cached)
    finally:
        shutil.rmtree(cache)
    return timings


# --- report ---

def _median_ratio(page_timings: dict[str, dict[str, float]]) -> float:
    return statistics.median(t["first"] / t["cached"] for t in page_timings.values())


def time_run_check(run: Run) -> float:
    """Seconds to verify a run's files (checksums and table alignment), paid once per build by the app."""
    started = time.perf_counter()
    assert check_run(run.root).ok
    return time.perf_counter() - started


def markdown_report(machine: str, runs: dict[str, Run], timings: dict[str, dict[str, dict[str, float]]],
                    checks: dict[str, float], maps: list[dict], thumbs: dict[str, float], large_name: str) -> str:
    lines = ["# App benchmark: server-side render time per page", "",
             "Made by `python benchmarks/bench_app.py`. Times are the script run of each page through "
             "`streamlit.testing.v1.AppTest` (server side: loading, computing, building elements; not the "
             "browser's drawing). " + machine, "",
             "- **cold**: Streamlit's caches cleared and the run's disk thumbnail cache emptied (first visit "
             "after a build);",
             "- **first**: Streamlit's caches cleared, thumbnails on disk (first visit after a server restart); "
             "this is also what every rerun would cost without `st.cache_data` / `st.cache_resource` "
             "(the obvious alternative);",
             "- **cached**: a rerun of the same page (median), what a user waits for on every interaction.", "",
             "Python imports are warmed up before timing (one untimed render of every page). Pages are in their "
             "typical state: the map with 12 selected listings' galleries, Retrieve with a one-listing seed gallery "
             "(browse grid + 12 results), a listing page, the audit of the first task.", ""]
    for name, run in runs.items():
        n_photos = int(run.photo_embeddings.shape[0])
        size_gb = sum(f.stat().st_size for f in run.root.iterdir() if f.is_file()) / 1e9
        lines += [f"## Run `{name}`: {len(run.listings):,} listings, {n_photos:,} photos", "",
                  f"Verifying its {size_gb:.2f} GB of artifacts (checksums, table alignment) takes {checks[name]:.2f} s; "
                  "every cold and first render below includes it, a live server pays it once per build.", "",
                  "| page | cold (s) | first (s) | cached (s) | first / cached |", "|---|---:|---:|---:|---:|"]
        for page in PAGES:
            t = timings[name][page]
            lines.append(f"| {page} | {t['cold']:.2f} | {t['first']:.2f} | {t['cached']:.3f} | "
                         f"{t['first'] / t['cached']:.0f}x |")
        lines.append("")
    lines += map_section(maps)
    demo_name = next(iter(runs))
    slowest_page, slowest = max(timings[demo_name].items(), key=lambda item: item[1]["cached"])
    verdict = "all under" if slowest["cached"] < CACHED_BUDGET_S else "NOT all under"
    lines += ["", "## Summary", "",
              f"- Cached renders of `{demo_name}`: {verdict} {CACHED_BUDGET_S:.0f} s (slowest: {slowest_page}, "
              f"{slowest['cached']:.2f} s).",
              f"- Caching: a cached render is {_median_ratio(timings[demo_name]):.0f}x faster than an uncached one on "
              f"`{demo_name}` and {_median_ratio(timings[large_name]):.0f}x on `{large_name}` (median over pages)."]
    for m in maps:
        lines.append(f"- Map of {m['listings']:,} listings: every point drawn, {m['bytes'] / 1e6:.1f} MB sent "
                     f"({m['bytes'] / MESSAGE_CAP_BYTES:.1%} of Streamlit's message cap).")
    lines += ["", "## Thumbnails (ms per photo)", "",
              "The app reads thumbnails from the disk cache directly; an in-memory Streamlit cache in front of it "
              "is measured as the alternative.", "", "| source | ms |", "|---|---:|"]
    lines += [f"| {source} | {ms:.2f} |" for source, ms in thumbs.items()]
    return "\n".join(lines) + "\n"


LOAD_SECTION = ("<!-- bench_app_load: start -->", "<!-- bench_app_load: end -->")


def keep_load_section(path: Path) -> str:
    """The section ``bench_app_load.py`` maintains in the same file, kept as it is (empty if none)."""
    text = path.read_text() if path.is_file() else ""
    start, end = (text.find(marker) for marker in LOAD_SECTION)
    if start < 0 or end < 0:
        return ""
    return "\n" + text[start:end + len(LOAD_SECTION[1])] + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO_ROOT / "artifacts", help="where the demo run is")
    parser.add_argument("--run", default="demo", help="the run to measure and to make the large run from")
    parser.add_argument("--listings", type=int, default=100_000, help="listings of the synthetic large run")
    parser.add_argument("--large-dir", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-app")
    parser.add_argument("--repeats", type=int, default=5, help="cached renders per page (median)")
    parser.add_argument("--map-listings", type=int, nargs="*", default=list(MAP_LISTINGS),
                        help="listings of the synthetic map runs (none: no map runs)")
    parser.add_argument("--map-only", action="store_true", help="only the map runs (no page table, no thumbnails)")
    parser.add_argument("--no-browser", action="store_true", help="no headless Chromium (payload and server only)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default docs/benchmarks/app.md; with --map-only docs/benchmarks/app-map.md")
    args = parser.parse_args()
    if args.out is None:
        args.out = REPO_ROOT / "docs" / "benchmarks" / ("app-map.md" if args.map_only else "app.md")
    source_dir = args.artifacts / args.run
    Run(source_dir, verify=True)  # refuse a broken or unfinished run early
    browser = not args.no_browser
    if browser and not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} not found: install Debian's chromium (`make browser`) or pass --no-browser")
    if args.map_only:
        import streamlit  # noqa: F401  (imported before timing: the first import takes seconds)

        maps = [measure_map(source_dir, args.large_dir, n, args.repeats, browser) for n in args.map_listings]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# App benchmark: the map at scale\n\nMade by `python benchmarks/bench_app.py --map-only`."
                            "\n\n" + "\n".join(map_section(maps)))
        print(f"written to {args.out}")
        return
    large_name = f"synthetic-{args.listings // 1000}k"
    make_synthetic_run(source_dir, args.large_dir / "runs" / large_name, args.listings)

    # an artifacts root holding both runs, so the app's run picker can switch between them
    root = args.large_dir / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    for name, target in ((args.run, source_dir.resolve()), (large_name, args.large_dir / "runs" / large_name)):
        link = root / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    os.environ["GALLERY_CORE_ARTIFACTS"] = str(root)

    import streamlit  # noqa: F401  (imported before timing: the first import takes seconds)
    import torch

    machine = (f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs while "
               f"measuring), {torch.get_num_threads()} torch threads, no GPU used; Python {platform.python_version()}.")
    runs = {args.run: Run(root / args.run, verify=False), large_name: Run(root / large_name, verify=False)}
    timings: dict[str, dict[str, dict[str, float]]] = {}
    for page in PAGES:  # warm-up: the first script runs import the app's modules; not timed
        time_page(page, runs[args.run], args.run, repeats=1, cold=False)
    for name, run in runs.items():
        timings[name] = {}
        for page in PAGES:
            cold = time_page(page, run, name, repeats=1, cold=True)
            warm = time_page(page, run, name, repeats=args.repeats, cold=False)
            timings[name][page] = {"cold": cold["first"], "first": warm["first"], "cached": warm["cached"]}
            t = timings[name][page]
            print(f"{name:>16s} {page:9s} cold {t['cold']:6.2f} s  first {t['first']:6.2f} s  "
                  f"cached {t['cached']:6.3f} s", flush=True)
    checks = {name: time_run_check(run) for name, run in runs.items()}
    print("verifying the runs' files: " + ", ".join(f"{name} {s:.2f} s" for name, s in checks.items()))
    thumbs = time_thumbnails(runs[args.run])
    print("thumbnails, ms per photo: " + ", ".join(f"{k} {v:.2f}" for k, v in thumbs.items()))
    maps = [measure_map(source_dir, args.large_dir, n, args.repeats, browser) for n in args.map_listings]

    slow = [page for page, t in timings[args.run].items() if t["cached"] >= CACHED_BUDGET_S]
    print(f"cached renders of {args.run} under {CACHED_BUDGET_S:.0f} s: {'yes' if not slow else 'no: ' + ', '.join(slow)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = markdown_report(machine, runs, timings, checks, maps, thumbs, large_name)
    args.out.write_text(report + keep_load_section(args.out))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
