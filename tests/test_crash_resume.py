"""Crashes: a build killed (SIGKILL, in a subprocess) inside each step and then built again ends with the
same files, by checksum, as a build that was never interrupted; a build that finds the trunk cache
already there ends with the same model and embeddings as one that computed it. Exact on the CPU (the
builds here run there whatever the machine has); CUDA kernels promise no such thing.

The photos are taken at 64 px so that the trunk's output is 2x2, not 1x1: only then do its memory
formats (channels-last when computed, row-major when loaded from the cache) differ, which used to give
a warm or resumed build other numbers than a cold one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_config

from gallery_core.artifacts.store import STEP_FILES, read_manifest
from gallery_core.config import BuildConfig
from gallery_core.pipeline.build import run_steps

# The child builds like `gallery-core build` and SIGKILLs itself right after the n-th atomic write of
# one file (atomic_path ends every write with os.replace): a deterministic point inside a step, with no
# cleanup, as a lost machine or the OOM killer would leave it.
CHILD = r"""
import json, logging, os, signal, sys
import torch
torch.set_num_threads(2)  # as conftest: the parent's builds run with 2 threads
out, catalogue, config, target, nth = sys.argv[1:6]
logging.basicConfig(level=logging.INFO, format="%(message)s")
from gallery_core.config import BuildConfig
from gallery_core.pipeline.build import run_steps
replace, seen = os.replace, []

def replace_then_die(src, dst, *args, **kwargs):
    replace(src, dst, *args, **kwargs)
    if os.path.basename(dst) == target:
        seen.append(dst)
        if len(seen) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
run_steps(out, catalogue_dir=catalogue, config=BuildConfig.from_dict(json.loads(config)),
           device="cpu", progress=False)
sys.exit(3)  # the kill point never came
"""


def config_64px() -> BuildConfig:
    config = tiny_config()
    return dataclasses.replace(config, model=dataclasses.replace(config.model, image_size=64)).validate()


def build_killed_after(out: Path, catalogue: Path, file_name: str, nth: int = 1) -> str:
    """Run a build in a subprocess that is SIGKILLed right after the ``nth`` write of ``file_name``;
    returns its log."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(catalogue),
                           json.dumps(config_64px().to_dict()), file_name, str(nth)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == -signal.SIGKILL, f"the build was not killed after {file_name}:\n{done.stderr}"
    return done.stderr


def checksums(run_dir: Path, steps: tuple[str, ...] | None = None) -> dict[str, str]:
    files = read_manifest(run_dir)["files"]
    names = [f for step, step_files in STEP_FILES.items() if steps is None or step in steps
             for f in step_files.values()]
    return {name: files[name]["checksum"] for name in names}


@pytest.fixture(scope="module")
def uninterrupted(tiny_catalogue, tmp_path_factory) -> Path:
    """A cold build: it computes the trunk cache in-process."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_steps(out, catalogue_dir=tiny_catalogue, config=config_64px(), device="cpu",
              progress=False)
    return out


def test_a_build_killed_in_every_step_resumes_to_the_same_files(uninterrupted, tiny_catalogue, tmp_path):
    out = tmp_path / "run"

    # Training, after epoch 1's resume file: the next build resumes at epoch 2 (on the cached trunk
    # features, which this build computed), then is killed inside the embed step.
    build_killed_after(out, tiny_catalogue, "last.pt")
    assert (out / "last.pt").is_file() and read_manifest(out) is None
    log = build_killed_after(out, tiny_catalogue, "photo_embeddings.npy")
    assert "resuming after epoch 1" in log and "epoch   2" in log and "epoch   1" not in log
    manifest = read_manifest(out)
    assert set(manifest["steps"]) == {"train"} and not (out / "last.pt").exists()
    # Embed renames each file into place complete (the listing outputs first, then the photo embeddings); the
    # listing table comes after, so the step was cut short and is not recorded.
    assert (out / "photo_embeddings.npy").is_file() and not (out / "listings.parquet").exists()

    # Inside predict, after its first file (the map's steps run here: UMAP compiles once per process).
    run_steps(out, steps=("train", "embed", "index", "project"), catalogue_dir=tiny_catalogue,
              config=config_64px(), device="cpu",
              progress=False)
    log = build_killed_after(out, tiny_catalogue, "predictions.parquet")
    assert sum("up to date, skipped" in line for line in log.splitlines()) == 4
    assert "predict" not in read_manifest(out)["steps"] and not (out / "metrics.json").exists()

    run_steps(out, catalogue_dir=tiny_catalogue, config=config_64px(), device="cpu",
              progress=False)
    assert checksums(out) == checksums(uninterrupted)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_a_warm_trunk_cache_builds_what_a_cold_one_does(uninterrupted, tiny_catalogue, tmp_path):
    warm = tmp_path / "warm"
    shutil.copytree(uninterrupted / "cache", warm / "cache")
    assert any(p.name.startswith("trunk-") for p in (warm / "cache").iterdir())
    run_steps(warm, steps=("train", "embed"), catalogue_dir=tiny_catalogue, config=config_64px(), device="cpu",
              progress=False)
    assert checksums(warm, ("train", "embed")) == checksums(uninterrupted, ("train", "embed"))
