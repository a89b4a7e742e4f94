"""Scale benchmark: each step after embed, and opening the run in the app, at 10k / 50k / 500k listings.

    python benchmarks/bench_scale.py [--sizes 10000 50000 500000] [--source artifacts/demo]
                                     [--photos-per-listing 4] [--baseline-max 50000] [--work DIR]
                                     [--out docs/benchmarks/scale.md] [--quick] [--keep]

What it measures, per size: a synthetic run is made from a built run (``--source``): its listings
repeated with new ids (so the labels and tasks are real ones), each with at most
``--photos-per-listing`` photos whose embeddings are the source's, jittered, written chunk by chunk into
memory-mapped ``.npy`` files; listing embeddings are their normalised means (no photo is rendered or
decoded: the steps after embed only read embeddings). Then each step runs in its own subprocess:

* ``index``   Annoy build (``search.index.write_index``: a memory-mapped array added in chunks, on-disk build),
* ``project`` the 2-D map (``pipeline.projection.fit_projection``: UMAP on a sample + ``transform`` above
              ``ProjectionConfig.fit_sample``),
* ``predict`` head predictions in chunks and out-of-fold probes on at most ``PredictConfig.probe_sample``
              listings per fold (``pipeline.predict.predict_all``),
* ``open``    the app's start-up: the run's check (sizes + checksum cache), ``Run`` and the Overview page's
              first server-side render (``streamlit.testing.v1.AppTest``), right after the build.

Each is measured against the obvious alternative, today's in-memory path, on sizes up to ``--baseline-max``
(the in-memory path at 500k would need tens of GB and hours): arrays read whole with ``np.load``; Annoy
built in memory then saved; UMAP fit on every point; probes trained on every labelled listing (what
``cross_val_predict`` did before); the app hashing every file on every start (``check_run`` "full").

Per step and variant: wall time of the subprocess (Python start-up and imports included), the time of the
step itself, the peak resident set (``VmHWM``: includes pages of memory-mapped files, which the kernel can
drop under pressure) and the peak anonymous memory (``RssAnon`` polled every 20 ms: what the step really
needs). Then the slope of time and memory against size (a power law fitted in log-log) and an
extrapolation to the paper's catalogue. The trunk pass, training and embed (photos through the network)
are not measured by this script yet: it starts from embeddings.

Writes the Markdown (``--out``), the raw figures beside it (``.json``) and a log-log plot (``.png``).
``--quick`` runs tiny sizes with small sample thresholds in seconds (tests/test_bench_scale.py).
Do not run the big sizes on a busy machine: the figures are only meaningful on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it

from gallery_core.artifacts.store import (  # noqa: E402
    RunPaths,
    atomic_path,
    hash_key,
    record_step,
    write_json,
    write_parquet,
)
from gallery_core.config import BuildConfig  # noqa: E402
from gallery_core.vectors import l2_normalise  # noqa: E402

STEPS = ("index", "project", "predict", "open")
VARIANTS = ("streaming", "in-memory")
DEFAULT_SIZES = (10_000, 50_000, 500_000)
QUICK_SIZES = (150, 300)
GENERATE_CHUNK = 20_000  # listings per chunk while writing the synthetic embeddings
POLL_S = 0.02
PAPER_LISTINGS = 520_000  # the gallery-encoder paper's catalogue: 520k listings, ~10M photos
TARGET_PHOTOS = 10_000_000
RSS_BUDGET_GB = 8.0
OPEN_BUDGET_S = 3.0
SYNTHETIC_RUN_NAME = "scale"


# --- the synthetic run ---

def make_scale_run(source_dir: Path, out: Path, n_listings: int, photos_per_listing: int,
                   config: BuildConfig, seed: int = 0) -> dict[str, int]:
    """A run folder with the train and embed steps' files of ``n_listings`` listings (see the module
    docstring), recorded in its manifest; the later steps are left to the benchmark."""
    from gallery_core.artifacts.run import Run

    source = Run(source_dir, verify=False, steps=("train", "embed"))  # all it reads
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    paths, rng = RunPaths(out), np.random.default_rng(seed)
    src_rows = rng.integers(0, len(source.listings), n_listings)  # (L,) source listing of each new one
    listings = source.listings.iloc[src_rows].reset_index(drop=True)
    listings["listing_id"] = [f"S{i + 1:07d}" for i in range(n_listings)]
    sizes = np.minimum(listings["n_photos"].to_numpy(np.int64), photos_per_listing)  # (L,)
    first_photo = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    listings["n_photos"], listings["first_photo"] = sizes, first_photo
    n_photos = int(sizes.sum())
    within = np.arange(n_photos) - np.repeat(first_photo, sizes)  # (P,) position in its gallery
    src_photo_rows = np.repeat(source.listings["first_photo"].to_numpy(np.int64)[src_rows], sizes) + within
    write_parquet(paths.listing_table, listings)
    write_parquet(paths.photo_table, pd.DataFrame({
        "photo_index": np.arange(n_photos), "listing_id": np.repeat(listings["listing_id"].to_numpy(), sizes),
        "path": source.photos["path"].to_numpy()[src_photo_rows], "listing_index": np.repeat(np.arange(n_listings), sizes)}))

    dim, new_dim = source.photo_embeddings.shape[1], source.new_task_embeddings.shape[1]
    noise = 0.05 * float(np.asarray(source.photo_embeddings[:10_000]).std())
    with atomic_path(paths.photo_embeddings) as photo_tmp, atomic_path(paths.listing_embeddings) as listing_tmp, \
            atomic_path(paths.new_task_embeddings) as new_tmp:
        photo_out = np.lib.format.open_memmap(photo_tmp, mode="w+", dtype=np.float32, shape=(n_photos, dim))
        listing_out = np.lib.format.open_memmap(listing_tmp, mode="w+", dtype=np.float32, shape=(n_listings, dim))
        new_out = np.lib.format.open_memmap(new_tmp, mode="w+", dtype=np.float32, shape=(n_listings, new_dim))
        for start in range(0, n_listings, GENERATE_CHUNK):
            stop = min(start + GENERATE_CHUNK, n_listings)
            lo, hi = first_photo[start], first_photo[stop - 1] + sizes[stop - 1]
            chunk = np.asarray(source.photo_embeddings[src_photo_rows[lo:hi]], dtype=np.float32)  # (chunk P, D)
            chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * noise
            photo_out[lo:hi] = chunk
            means = np.add.reduceat(chunk, first_photo[start:stop] - lo, axis=0) / sizes[start:stop, None]
            listing_out[start:stop] = l2_normalise(means)
            transfer = np.asarray(source.new_task_embeddings[src_rows[start:stop]], dtype=np.float32)
            new_out[start:stop] = l2_normalise(transfer + rng.standard_normal(transfer.shape, dtype=np.float32) * 0.05
                                               / np.sqrt(new_dim))
        for array in (photo_out, listing_out, new_out):
            array.flush()
        del photo_out, listing_out, new_out
    for name in ("checkpoint", "train_log", "catalogue_report"):
        shutil.copyfile(getattr(source.paths, name), getattr(paths, name))
    base = {key: source.manifest[key] for key in ("tasks", "holdout", "backbone") if key in source.manifest}
    base |= {"config": config.to_dict(), "synthetic": {"source": str(source_dir), "n_listings": n_listings},
             "catalogue": {"root": f"synthetic, from {source_dir}", "n_listings": n_listings, "n_photos": n_photos}}
    for step in ("train", "embed"):
        record_step(out, step, hash_key("bench_scale", step, n_listings), 0.0, {"synthetic": True},
                    base=base if step == "train" else None)
    return {"listings": n_listings, "photos": n_photos, "dim": int(dim)}


# --- the steps, each run in a subprocess of its own (``--step``) ---

def _load(path: Path, variant: str) -> np.ndarray:
    return np.load(path, mmap_mode="r") if variant == "streaming" else np.load(path)


def run_step(step: str, run_dir: Path, variant: str) -> dict[str, Any]:
    """Do one step on the run; returns what the parent records besides time and memory."""
    paths = RunPaths(run_dir)
    manifest = json.loads(paths.manifest.read_text())
    config = BuildConfig.from_dict(manifest["config"])
    seed = config.train.seed
    started = time.perf_counter()
    info: dict[str, Any] = {}
    if step == "index":
        from gallery_core.search.index import build_index, save_index, write_index

        embeddings = _load(paths.listing_embeddings, variant)
        if variant == "streaming":
            write_index(embeddings, config.index, paths.index, seed=seed)
        else:
            save_index(build_index(embeddings, config.index, seed=seed), run_dir / "index-in-memory.ann")
    elif step == "project":
        from gallery_core.pipeline.projection import fit_projection

        embeddings = _load(paths.listing_embeddings, variant)
        projection = config.projection if variant == "streaming" else \
            replace(config.projection, fit_sample=len(embeddings))  # UMAP on every point
        coords = fit_projection(embeddings, projection, seed=seed)
        ids = pd.read_parquet(paths.listing_table, columns=["listing_id"])["listing_id"]
        target = paths.umap if variant == "streaming" else run_dir / "umap-in-memory.parquet"
        write_parquet(target, pd.DataFrame({"listing_id": ids, "x": coords[:, 0], "y": coords[:, 1]}))
    elif step == "predict":
        import gallery_core.pipeline.predict as predict
        from gallery_core.models.checkpoint import load_checkpoint

        model, _ = load_checkpoint(paths.checkpoint, device="cpu")
        listings = pd.read_parquet(paths.listing_table)
        listing_index = pd.read_parquet(paths.photo_table, columns=["listing_index"])["listing_index"].to_numpy()
        predict_config = config.predict
        if variant == "in-memory":  # one chunk, every labelled listing in every probe
            predict.CHUNK_LISTINGS = len(listings)
            predict_config = replace(predict_config, probe_sample=len(listings))
        predictions, metrics = predict.predict_all(
            model.heads, model.heads.tasks, listings, _load(paths.photo_embeddings, variant), listing_index,
            _load(paths.new_task_embeddings, variant), predict_config, seed=seed, progress=False)
        if variant == "streaming":
            write_parquet(paths.predictions, predictions)
            write_json(paths.metrics, {"split": "val", "tasks": metrics,
                                       "n_val_listings": int((listings["split"] == "val").sum())})
    elif step == "open":
        info = open_in_app(run_dir, variant)
    else:
        raise ValueError(f"unknown step {step!r}")
    seconds = info.get("render_seconds", time.perf_counter() - started)
    if step != "open" and variant == "streaming":  # the run's manifest records it, as the build would
        record_step(run_dir, step, hash_key("bench_scale", step, manifest["synthetic"]), seconds, {"synthetic": True})
    return {"step_seconds": seconds, **info}


def complete_run(run_dir: Path, measured: list[str]) -> None:
    """Give the run the files of the steps after embed that were not measured (``--steps``), so the app can
    open it: index and predict done here, unmeasured; the map a stand-in (the first two embedding
    dimensions), since UMAP's compilation alone takes minutes in a fresh process."""
    for step in ("index", "predict"):
        if step not in measured:
            run_step(step, run_dir, "streaming")
    if "project" not in measured:
        paths = RunPaths(run_dir)
        embeddings = np.load(paths.listing_embeddings, mmap_mode="r")
        ids = pd.read_parquet(paths.listing_table, columns=["listing_id"])["listing_id"]
        write_parquet(paths.umap, pd.DataFrame({"listing_id": ids, "x": embeddings[:, 0], "y": embeddings[:, 1]}))
        record_step(run_dir, "project", hash_key("bench_scale", "stand-in map"), 0.0, {"stand_in": True})


def open_in_app(run_dir: Path, variant: str) -> dict[str, Any]:
    """A server's first page after start-up: the run's check, ``Run`` and the Overview page, rendered by
    AppTest; "in-memory" = today's full check (every file hashed on every start)."""
    import gallery_core.artifacts.store as store
    from gallery_core.artifacts.check import check_run

    hashed: list[str] = []
    original = store.file_checksum
    store.file_checksum = lambda path: hashed.append(Path(path).name) or original(path)
    if variant == "in-memory":
        check_run.__defaults__ = ("full",)  # the app's check as it was: every file hashed
    root = Path(tempfile.mkdtemp(prefix="bench-scale-artifacts-"))
    (root / SYNTHETIC_RUN_NAME).symlink_to(run_dir.resolve(), target_is_directory=True)
    os.environ["GALLERY_CORE_ARTIFACTS"] = str(root)
    from streamlit import logger

    import ui.loaders  # noqa: F401  (the app's modules, imported before timing as a running server has them)
    from gallery_core.app import summary  # noqa: F401
    from ui.testing import app_test

    logger.set_log_level("error")
    at = app_test(timeout_s=3600)
    at.session_state["run_name"] = SYNTHETIC_RUN_NAME
    started = time.perf_counter()
    at.run()
    render = time.perf_counter() - started
    shutil.rmtree(root)
    if at.exception:
        raise RuntimeError(f"Overview: {at.exception[0].value}")
    if at.error:
        raise RuntimeError(f"Overview: {at.error[0].value}")
    return {"render_seconds": render, "files_hashed": len(hashed)}


def _poll_memory(pid: int, peak: dict[str, int], done: threading.Event) -> None:
    """Peak RssAnon (kB) of a process, polled until ``done``."""
    while not done.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak["anon_kb"] = max(peak.get("anon_kb", 0), int(line.split()[1]))
        except (OSError, ValueError):
            pass
        done.wait(POLL_S)


def measure(step: str, run_dir: Path, variant: str) -> dict[str, Any]:
    """Run one step in a subprocess: its wall time, peak RSS (its ``VmHWM``), peak anonymous RSS (polled)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--run", str(run_dir),
               "--variant", variant]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    peak: dict[str, int] = {}
    done = threading.Event()
    poller = threading.Thread(target=_poll_memory, args=(process.pid, peak, done), daemon=True)
    poller.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    if process.returncode != 0:
        raise RuntimeError(f"step {step} ({variant}) failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"step": step, "variant": variant, "wall_seconds": wall, **result,
            "peak_rss_gb": result["peak_rss_kb"] / 1e6, "peak_anon_gb": peak.get("anon_kb", 0) / 1e6}


def child_main(step: str, run_dir: Path, variant: str) -> None:
    result = run_step(step, run_dir, variant)
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a child's would include the
    # resident set of the parent it was forked from.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    result["peak_rss_kb"] = int(status["VmHWM"].split()[0])
    print(json.dumps(result))


# --- the report ---

def power_law(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """(slope, intercept) of log(value) = slope * log(size) + intercept; None with fewer than 2 sizes."""
    ok = (values > 0) & np.isfinite(values)
    if len(np.unique(sizes[ok])) < 2:
        return None
    slope, intercept = np.polyfit(np.log(sizes[ok]), np.log(values[ok]), 1)
    return float(slope), float(intercept)


def scaling_table(rows: pd.DataFrame, photos_per_listing: float) -> pd.DataFrame:
    """Per step and variant: slope of time and of peak memory against listings, extrapolated to the paper's
    520k listings and to 10M photos at this benchmark's photos per listing."""
    targets = {"paper": PAPER_LISTINGS, "10M photos": TARGET_PHOTOS / photos_per_listing}
    out = []
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        entry: dict[str, Any] = {"step": step, "variant": variant}
        for measure_name, column in (("time", "step_seconds"), ("anon memory", "peak_anon_gb")):
            fit = power_law(group["listings"].to_numpy(float), group[column].to_numpy(float))
            entry[f"{measure_name} slope"] = None if fit is None else round(fit[0], 2)
            for target_name, target in targets.items():
                unit = "s" if measure_name == "time" else "GB"
                entry[f"{measure_name} at {target_name} ({unit})"] = None if fit is None else \
                    float(np.exp(fit[1]) * target ** fit[0])
        out.append(entry)
    return pd.DataFrame(out)


def markdown_report(results: dict[str, Any] | None) -> str:
    """The document; with ``results`` None, the same prose with placeholders where the numbers go."""
    def number(value: Any, fmt: str = "{:,.1f}") -> str:
        return "_(to be measured)_" if value is None else fmt.format(value)

    rows = pd.DataFrame(results["rows"]) if results else pd.DataFrame()
    p = results["photos_per_listing"] if results else None
    lines = ["# Scale benchmark: the steps after embed, and opening the run, at 10k to 500k listings", "",
             "Made by `python benchmarks/bench_scale.py --sizes "
             + (" ".join(str(n) for n in results["sizes"]) if results else " ".join(str(n) for n in DEFAULT_SIZES))
             + "` (the module docstring says what is measured and how). "
             + (results["machine"] if results else "Machine: _(to be measured)_"), "",
             "**What is synthetic.** No photo is rendered or decoded: the runs are made from the demo run's "
             "listings (repeated with new ids: real labels and tasks) and its photo embeddings (jittered), written "
             "chunk by chunk into memory-mapped `.npy` files, at most "
             f"{number(p, '{:d}')} photos per listing. Every step after embed reads only these files, so they "
             "see what a real catalogue of that size would give them. The trunk pass, training and embed are "
             "not measured by this script yet.", "",
             "**Columns.** `wall` is the subprocess (Python start-up and imports included); `step` the step "
             "itself; `peak RSS` the kernel's high-water mark (`VmHWM`), which counts pages of memory-mapped "
             "files the step read (the kernel drops those under memory pressure); `peak anon` the anonymous "
             "memory polled every 20 ms, what the step really needs. For `open`, `step` is the first render "
             "of the Overview page in a fresh process whose app modules are already imported, as in a started "
             "server (the run's check, opening it, the page). `streaming` is the product's path; "
             "`in-memory` today's path before issue 12 (arrays read whole, Annoy built in memory then saved, "
             "UMAP on every point, probes trained on every labelled listing, every file hashed when the app "
             "starts), run only where it fits.", ""]
    if results:
        table = rows[["listings", "photos", "step", "variant", "wall_seconds", "step_seconds", "peak_rss_gb",
                      "peak_anon_gb"]].rename(columns={"wall_seconds": "wall (s)", "step_seconds": "step (s)",
                                                       "peak_rss_gb": "peak RSS (GB)", "peak_anon_gb": "peak anon (GB)"})
        lines += ["## Time and memory per step", "", table.to_markdown(index=False, floatfmt=".2f",
                                                                          intfmt=","), ""]
    else:
        lines += ["## Time and memory per step", "", "_(to be measured)_", ""]
    largest = rows["listings"].max() if results else None
    streaming = rows[(rows["variant"] == "streaming")] if results else pd.DataFrame()
    at_largest = streaming[streaming["listings"] == largest] if results else pd.DataFrame()
    peak = at_largest["peak_anon_gb"].max() if results else None
    peak_rss = at_largest["peak_rss_gb"].max() if results else None
    open_row = at_largest[at_largest["step"] == "open"] if results else pd.DataFrame()
    render = float(open_row["render_seconds"].iloc[0]) if len(open_row) else None
    hashed = int(open_row["files_hashed"].iloc[0]) if len(open_row) else None
    verdict_memory = "" if peak is None else (" (under" if peak < RSS_BUDGET_GB else " (NOT under") + \
        f" the {RSS_BUDGET_GB:.0f} GB budget)"
    verdict_open = "" if render is None else (" (under" if render < OPEN_BUDGET_S else " (NOT under") + \
        f" the {OPEN_BUDGET_S:.0f} s budget)"
    lines += ["## At the largest size", "",
              f"- {number(largest, '{:,}')} listings: the largest peak anonymous memory of a step after embed is "
              f"{number(peak, '{:.2f}')} GB{verdict_memory}; the largest peak RSS counting mapped file pages "
              f"{number(peak_rss, '{:.2f}')} GB.",
              f"- The app's first page (Overview, server side, right after the build: the run's check, opening "
              f"it, rendering) takes {number(render, '{:.2f}')} s{verdict_open}, hashing "
              f"{number(hashed, '{:d}')} files: the build's hashes are trusted through the run's checksum cache "
              "(sizes and mtimes), and full checksums are computed once per build or on demand "
              "(`check_run(root, 'full')`).", ""]
    lines += ["## Slope and extrapolation", "",
              "A power law `value = a * listings^slope` fitted per step over the sizes measured (slope 1: linear). "
              f"Extrapolated to the paper's catalogue ({PAPER_LISTINGS:,} listings, ~10M photos) and to "
              f"{TARGET_PHOTOS:,} photos at this benchmark's {number(p, '{:d}')} photos per listing "
              "(more listings; predict reads photos in proportion). Extrapolations beyond the sizes measured are "
              "estimates, not measurements.", ""]
    if results:
        lines += [scaling_table(rows, p).to_markdown(index=False, floatfmt=".2f"), ""]
    else:
        lines += ["_(to be measured)_", ""]
    lines += ["![time and peak anonymous memory against listings](scale.png)", ""]
    return "\n".join(lines)


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        style = "-o" if variant == "streaming" else "--x"
        axes[0].plot(group["listings"], group["step_seconds"], style, label=f"{step} ({variant})")
        axes[1].plot(group["listings"], group["peak_anon_gb"], style, label=f"{step} ({variant})")
    for axis, label in zip(axes, ("time of the step (s)", "peak anonymous memory (GB)"), strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("listings")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].axhline(RSS_BUDGET_GB, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def quick_config(config: BuildConfig) -> BuildConfig:
    """Small thresholds, so that a tiny run takes the sampled paths."""
    return replace(config, index=replace(config.index, n_trees=5),
                   projection=replace(config.projection, n_neighbors=5, fit_sample=100, transform_batch=60),
                   predict=replace(config.predict, probe_sample=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"listings per run (default {DEFAULT_SIZES})")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "artifacts" / "demo",
                        help="the built run whose listings and embeddings the synthetic runs are made from")
    parser.add_argument("--photos-per-listing", type=int, default=4,
                        help="at most this many photos per listing (disk: 500k x 4 x 1280 floats = 10 GB)")
    parser.add_argument("--baseline-max", type=int, default=50_000,
                        help="largest size at which today's in-memory path is run too")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-scale")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "scale.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and thresholds: a check that it runs")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic runs (default: removed)")
    parser.add_argument("--template", action="store_true", help="write the document with placeholders only")
    # internal: one step in this process (what the parent runs in a subprocess)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="streaming", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child_main(args.step, args.run, args.variant)
        return
    if args.template:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown_report(None))
        print(f"written to {args.out}")
        return

    from gallery_core.artifacts.run import Run

    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    config = Run(args.source, verify=False, steps=("train", "embed")).config
    if args.quick:
        config = quick_config(config)
    machine = (f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; "
               f"{time.strftime('%Y-%m-%d')}.")
    rows = []
    for n in sorted(sizes):
        run_dir = args.work / f"run-{n}"
        started = time.perf_counter()
        facts = make_scale_run(args.source, run_dir, n, args.photos_per_listing, config)
        print(f"{n:,} listings: synthetic run made in {time.perf_counter() - started:.0f} s "
              f"({facts['photos']:,} photos, {facts['dim']}-d)", flush=True)
        for step in (s for s in STEPS if s in args.steps):
            if step == "open":
                complete_run(run_dir, args.steps)
            for variant in VARIANTS if n <= args.baseline_max else VARIANTS[:1]:
                row = facts | measure(step, run_dir, variant)
                rows.append(row)
                print(f"  {step:8s} {variant:10s} step {row['step_seconds']:8.2f} s  wall {row['wall_seconds']:8.2f} s  "
                      f"peak RSS {row['peak_rss_gb']:6.2f} GB  peak anon {row['peak_anon_gb']:6.2f} GB", flush=True)
        if not args.keep:
            shutil.rmtree(run_dir)
    results = {"machine": machine, "photos_per_listing": args.photos_per_listing, "sizes": sorted(sizes),
               "rows": rows}
    table = pd.DataFrame(rows)
    print(table[["listings", "step", "variant", "step_seconds", "wall_seconds", "peak_rss_gb",
                 "peak_anon_gb"]].to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)
    plot(table, args.out.with_suffix(".png"))
    with atomic_path(args.out) as tmp:
        tmp.write_text(markdown_report(results))
    print(f"written to {args.out} (+ .json, .png)")


if __name__ == "__main__":
    main()
