"""Scale benchmark: every step of the build, and opening the run in the app, at 10k / 50k / 500k listings.

    python benchmarks/bench_scale.py [--sizes 10000 50000 500000] [--source artifacts/demo]
                                     [--photos-per-listing 4] [--baseline-max 50000] [--photo-max 50000]
                                     [--steps trunk train embed index project predict open]
                                     [--merge PREVIOUS.json] [--work DIR] [--out docs/benchmarks/scale.md]
                                     [--quick] [--keep] [--template]

What it measures, per size: a synthetic run is made from a built run (``--source``): its listings
repeated with new ids (so the labels and tasks are real ones), each with at most
``--photos-per-listing`` photos. Its photo table names the source catalogue's real photo files (repeated
across the synthetic listings); its photo embeddings are the source's, jittered, written chunk by chunk into
memory-mapped ``.npy`` files; listing embeddings are their normalised means. Then each step runs in its own
subprocess:

* ``trunk``   the frozen-trunk pass over real photos (``data.photos.cached_trunk_features``, as training calls
              it, with the source run's backbone and image size): every photo of the photo table decoded and
              run through the trunk, features appended chunk by chunk to ``cache/trunk-<key>.npy.partial``,
* ``train``   training from the trunk cache (``training.loop.train``) for exactly one epoch (``max_epochs`` 1:
              one training and one validation pass over the listings, no early stop), with synthetic trunk
              features: the source run's cached ones repeated to the synthetic photos and jittered, written
              in the cache format under the key ``train`` looks up (decoding every photo again would dominate),
* ``embed``   the embed step (``pipeline.embed.embed``) from that trunk cache: photo embeddings a chunk at a
              time, listing sums accumulated,
* ``index``   Annoy build (the build's own step: embeddings read in chunks, on-disk build),
* ``project`` the 2-D map (``pipeline.projection.fit_projection``: UMAP on a sample + ``transform`` above
              ``ProjectionConfig.fit_sample``),
* ``predict`` head predictions in chunks and out-of-fold probes on at most ``PredictConfig.probe_sample``
              listings per fold (``pipeline.predict.predict_all``),
* ``open``    the app's start-up: the run's check (sizes + checksum cache), ``Run`` and the Overview page's
              first server-side render (``streamlit.testing.v1.AppTest``), right after the build.

The trunk pass, training and embed run at sizes up to ``--photo-max`` (the issue asks for them at 10k and
50k; the 500k rows are of the steps after embed only). Each step is measured against the obvious
alternative, the in-memory path of before issue 12, on sizes up to ``--baseline-max`` (at 500k it would need
tens of GB and hours): the trunk pass's features gathered in one array, then saved with ``np.save`` (the
product's pass run a chunk at a time through ``compute_trunk_features``, chunks concatenated); training and
embed with the whole trunk cache copied into memory (embed then computes every photo embedding in one array
and saves it, as before issue 12); arrays read whole with ``np.load``; Annoy built in memory then saved; UMAP
fit on every point; probes trained on every labelled listing (what ``cross_val_predict`` did before); the app
hashing every file on every start (``check_run`` "full"). The product keeps trunk caches below
``training.data.TRUNK_IN_MEMORY_MAX_BYTES`` (2 GiB) in memory, and the caches at 10k and 50k are below it:
``train``'s streaming child sets it to 0, so the product's path for large caches (rows read from the cache
file per batch) is the one measured, and its in-memory child raises it above the cache's size. The streaming
variants of index, project and predict are the build's own steps (``pipeline.build.STEP_FUNCTIONS``).

Per step and variant: wall time of the subprocess (Python start-up and imports included), the time of the
step itself, the peak resident set (``VmHWM``: includes pages of memory-mapped files, which the kernel can
drop under pressure) and the peak anonymous memory (``RssAnon`` polled every 20 ms: what the step really
needs). Then the slope of time and memory against size (a power law fitted in log-log) and an
extrapolation to the paper's catalogue.

Writes the Markdown (``--out``), the raw figures beside it (``.json``) and a log-log plot (``.png``). Every row
records when and by which command it was measured (``measured``); ``--merge PREVIOUS.json`` keeps the rows of
an earlier results file whose (listings, step, variant) this invocation did not measure, so the document can
be completed by several invocations. ``--quick`` runs tiny sizes with small sample thresholds and chunks in
seconds (tests/test_bench_scale.py). Do not run the big sizes on a busy machine: the figures are only
meaningful on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the app's ui/ package sits beside gallery_core, not inside it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark's own modules, beside this script

from scale_measure import child_main, complete_run, measure  # noqa: E402
from scale_report import COMMAND, markdown_report, merge_rows, plot, read_previous  # noqa: E402
from scale_synthetic import (  # noqa: E402
    AFTER_EMBED,
    PHOTO_STEPS,
    STEPS,
    VARIANTS,
    make_scale_run,
    make_trunk_cache,
    step_folder,
)

from gallery_core.artifacts.store import atomic_path, write_json  # noqa: E402
from gallery_core.config import BuildConfig  # noqa: E402
from gallery_core.errors import UsageError  # noqa: E402

DEFAULT_SIZES = (10_000, 50_000, 500_000)
QUICK_SIZES = (150, 300)
QUICK_CHUNK = 32  # photos per chunk of the trunk pass and embed in --quick, so tiny runs have several chunks


def quick_config(config: BuildConfig) -> BuildConfig:
    """Small thresholds, so that a tiny run takes the sampled paths."""
    return replace(config, index=replace(config.index, n_trees=5),
                   projection=replace(config.projection, n_neighbors=5, fit_sample=100, transform_batch=60),
                   predict=replace(config.predict, probe_sample=60))


def main() -> None:
    from gallery_core.data.photos import TRUNK_CHUNK_SIZE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"listings per run (default {DEFAULT_SIZES})")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "artifacts" / "demo",
                        help="the built run whose listings, photos, trunk cache and embeddings the synthetic runs "
                             "are made from")
    parser.add_argument("--photos-per-listing", type=int, default=4,
                        help="at most this many photos per listing (disk: 500k x 4 x 1280 floats = 10 GB)")
    parser.add_argument("--baseline-max", type=int, default=50_000,
                        help="largest size at which the in-memory path of before issue 12 is run too")
    parser.add_argument("--photo-max", type=int, default=50_000,
                        help="largest size at which the trunk pass, training and embed are run")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--merge", type=Path, metavar="PREVIOUS.json",
                        help="keep the rows of this earlier results file that this invocation does not measure")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-scale")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "scale.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, thresholds and chunks: a check that it runs")
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
    previous = read_previous(args.merge, args.photos_per_listing) if args.merge is not None else None

    from gallery_core.artifacts.run import Run

    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    args.source = args.source.resolve()  # recorded in the synthetic runs, read again by their steps
    config = Run(args.source, verify=False, steps=("train", "embed")).config
    if args.quick:
        config = quick_config(config)
    chunk_size = QUICK_CHUNK if args.quick else TRUNK_CHUNK_SIZE
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    measured = f"{time.strftime('%Y-%m-%d')}: `{' '.join([COMMAND, *map(shlex.quote, sys.argv[1:])])}`"
    rows = []
    for n in sorted(sizes):
        steps = [s for s in STEPS if s in args.steps and (s not in PHOTO_STEPS or n <= args.photo_max)]
        if not steps:
            continue
        run_dir = args.work / f"run-{n}"
        started = time.perf_counter()
        # the run's own embedding files only where a step after embed reads them (18 GB of disk at 500k)
        facts = make_scale_run(args.source, run_dir, n, args.photos_per_listing, config, chunk_size,
                               embeddings=any(step in AFTER_EMBED for step in steps))
        if "train" in steps or "embed" in steps:
            make_trunk_cache(run_dir)
        print(f"{n:,} listings: synthetic run made in {time.perf_counter() - started:.0f} s "
              f"({facts['photos']:,} photos, {facts['dim']}-d)", flush=True)
        for step in steps:
            if step == "open":
                complete_run(run_dir, args.steps)
            for variant in VARIANTS if n <= args.baseline_max else VARIANTS[:1]:
                row = facts | measure(step, run_dir, variant) | {"measured": measured}
                if not args.keep:
                    shutil.rmtree(step_folder(run_dir, step, variant), ignore_errors=True)
                rows.append(row)
                print(f"  {step:8s} {variant:10s} step {row['step_seconds']:8.2f} s  wall {row['wall_seconds']:8.2f} s  "
                      f"peak RSS {row['peak_rss_gb']:6.2f} GB  peak anon {row['peak_anon_gb']:6.2f} GB", flush=True)
        if not args.keep:
            shutil.rmtree(run_dir)
    if not rows:
        raise SystemExit("nothing measured: every step asked for is a photo step above --photo-max")
    table = pd.DataFrame(rows)
    print(table[["listings", "step", "variant", "step_seconds", "wall_seconds", "peak_rss_gb",
                 "peak_anon_gb"]].to_string(index=False))
    if previous is not None:
        rows = merge_rows(rows, previous)
    results = {"machine": machine, "photos_per_listing": args.photos_per_listing,
               "photo_config": {"backbone": config.model.backbone, "image_size": config.model.image_size,
                                "trainable_stages": config.model.trainable_stages, "chunk_size": chunk_size},
               "sizes": sorted({int(r["listings"]) for r in rows}), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)
    plot(pd.DataFrame(rows), args.out.with_suffix(".png"))
    with atomic_path(args.out) as tmp:
        tmp.write_text(markdown_report(results))
    print(f"written to {args.out} (+ .json, .png)")


if __name__ == "__main__":
    try:
        main()
    except UsageError as err:  # bad input: one line, no traceback
        raise SystemExit(f"bench_scale: {err}") from None
