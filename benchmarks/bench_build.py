"""Wall time of a full build on the demo catalogue, step by step, and of a rebuild with nothing to do.

    python benchmarks/bench_build.py [--catalogue data/demo] [--out /tmp/bench-run]
    python benchmarks/bench_build.py --quick --catalogue CATALOGUE   # 32 px, 1 epoch: a check that it runs

Writes a fresh run (the folder is emptied first), prints each step's seconds and share of the total.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from gallery_core.artifacts.store import STEPS
from gallery_core.config import (
    DEMO_IMAGE_SIZE,
    BuildConfig,
    ModelConfig,
    PredictConfig,
    ProjectionConfig,
    TrainConfig,
    demo_catalogue_dir,
)
from gallery_core.pipeline.build import run_steps

# The demo's build as `make demo-data` runs it: the defaults at the demo's photo size.
DEMO_CONFIG = BuildConfig(model=ModelConfig(image_size=DEMO_IMAGE_SIZE))
# --quick: small enough for the benchmark smoke test on the tiny test catalogue (the figures mean nothing)
QUICK_CONFIG = BuildConfig(model=ModelConfig(image_size=32),
                           train=TrainConfig(max_epochs=1, batch_size=8, min_listings_to_finetune=0),
                           projection=ProjectionConfig(n_neighbors=5), predict=PredictConfig(oof_folds=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=demo_catalogue_dir())
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gallery-core-bench-run")
    parser.add_argument("--quick", action="store_true", help="32 px photos, 1 epoch: a check that it runs")
    args = parser.parse_args()
    config = QUICK_CONFIG if args.quick else DEMO_CONFIG
    if not (args.catalogue / "listings.csv").is_file():
        raise SystemExit(f"{args.catalogue}: no catalogue; run `python -m gallery_core demo-catalogue` first")
    shutil.rmtree(args.out, ignore_errors=True)

    started = time.perf_counter()

    # The build's own log, timestamped (seconds since the start), so a long run can be watched.
    logging.basicConfig(level=logging.INFO, format="[%(relativeCreated)8.0f ms] %(message)s", stream=sys.stderr)
    manifest = run_steps(args.out, catalogue_dir=args.catalogue, config=config, progress=False)
    total = time.perf_counter() - started
    started = time.perf_counter()
    run_steps(args.out, catalogue_dir=args.catalogue, config=config, progress=False)
    rebuild = time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    print(f"catalogue: {manifest['catalogue']['n_listings']} listings, {manifest['catalogue']['n_photos']} photos")
    print(f"{'step':10s} {'seconds':>8s} {'share':>6s}")
    for step in STEPS:
        seconds = manifest["steps"][step]["seconds"]
        print(f"{step:10s} {seconds:8.1f} {seconds / total:6.1%}")
    print(f"{'total':10s} {total:8.1f}   (including catalogue loading and validation)")
    print(f"train: best epoch {manifest['steps']['train']['best_epoch']} of {manifest['steps']['train']['epochs_run']}")
    print(f"rebuild with every step up to date: {rebuild:.1f} s (vs {total:.1f} s from scratch)")


if __name__ == "__main__":
    main()
