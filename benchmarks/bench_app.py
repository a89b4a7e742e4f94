"""Server-side time of each page of the app, first and cached render, on the demo run and a 100k run; the map
at 100k, 500k and 1M listings, the WebGL scatter beside the plotly map (``bench_app_map.py``): payload, server
render, the browser's time to a drawn map, a colour change and a selection round trip.

    python benchmarks/bench_app.py [--artifacts artifacts] [--run demo] [--listings 100000]
                                   [--map-listings 100000 500000 1000000] [--map-only] [--no-browser]
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
(the Map page reads listings, coordinates and predictions, no embedding; this keeps a 1M run small); what is
measured on them is described in ``bench_app_map.py``.
Further comparison: thumbnails made from the photos vs read from the disk and memory caches.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it

from gallery_core.app import thumbnails  # noqa: E402
from gallery_core.artifacts.check import check_run  # noqa: E402
from gallery_core.artifacts.run import Run  # noqa: E402
from gallery_core.search.seed_gallery import SeedGallery  # noqa: E402
from ui import navigation  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own modules
from bench_app_map import MAP_LISTINGS, VARIANTS, map_section, measure_map  # noqa: E402
from synthetic_run import make_synthetic_run  # noqa: E402

PAGES = tuple(Path(p.script).stem for p in navigation.PAGES)  # the app's pages, in sidebar order
CACHED_BUDGET_S = 1.0
MESSAGE_CAP_BYTES = 200 * 10**6  # Streamlit's server.maxMessageSize default: 200 MB (it multiplies by 1e6)
CHROMIUM = Path("/usr/bin/chromium")


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
        lines.append(f"- Map of {m['listings']:,} listings: every point drawn, {m['bytes'] / 1e6:.1f} MB sent by the "
                     f"WebGL scatter on a first view ({m['bytes'] / MESSAGE_CAP_BYTES:.1%} of Streamlit's message cap; "
                     f"the plotly map {m['plotly']['bytes'] / 1e6:.1f} MB).")
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
    parser.add_argument("--map-variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="which maps to measure (default both: the WebGL scatter beside the plotly map)")
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

        maps = [measure_map(source_dir, args.large_dir, n, args.repeats, browser, tuple(args.map_variants))
                for n in args.map_listings]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/bench_app.py --map-only --map-listings " + " ".join(map(str, args.map_listings))
        if tuple(args.map_variants) != VARIANTS:
            command += " --map-variants " + " ".join(args.map_variants)
        args.out.write_text(f"# App benchmark: the map at scale\n\nMade by `{command}` on "
                            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, headless Chromium drawing WebGL "
                            "in software (SwiftShader): browser times are an upper bound for a desktop with a GPU."
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
