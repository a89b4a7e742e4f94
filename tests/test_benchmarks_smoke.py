"""Every script in benchmarks/ runs to the end in a quick mode on the tiny test run, so that no benchmark
breaks silently (bench_app_load.py failed for weeks on a link the app no longer had).

A new script must add its quick command to ``QUICK`` (``test_every_benchmark_script_has_a_quick_mode``
fails until it does). Outputs go to a temporary folder, never to docs/. The figures a quick run prints
measure nothing: this checks that the code runs, not how fast."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["conftest_app"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO_ROOT / "benchmarks"
# per script: each took 3 to 45 s on the 2-core machine at a load average of about 5, but up to 4 minutes at
# a load of 8 (the two representation studies timed out at 240 s there), so the limit is generous
TIMEOUT_S = 600

# script -> its arguments; {run} the tiny run (as artifacts/demo: {artifacts}/demo), {catalogue} its
# catalogue, {tmp} a folder of the test's own.
QUICK: dict[str, list[str]] = {
    "ablation_visual_search.py": ["--quick", "--catalogue", "{catalogue}", "--source-cache", "{run}/cache",
                                  "--work", "{tmp}/ablation", "--docs", "{tmp}/docs", "--run", "{run}",
                                  "--epochs", "1", "--queries", "10", "--arms", "attributes+triplet+vae"],
    "bench_ann.py": ["--quick", "--datasets", "demo_listings", "demo_photos", "--demo-run", "{run}",
                     "--docs", "{tmp}/docs"],
    # the map part only: the page table's synthetic run fails on the tiny run's Listing page (its evidence probe
    # gets the source's pretrained+learned features: "X has 1296 features, but LogisticRegression is expecting 16")
    "bench_app.py": ["--map-only", "--artifacts", "{artifacts}", "--run", "demo", "--map-listings", "1000",
                     "--repeats", "1", "--no-browser", "--large-dir", "{tmp}/large", "--out", "{tmp}/app.md"],
    "bench_app_load.py": ["--smoke", "--run", "{run}", "--work-dir", "{tmp}/load", "--timeout-s", "60"],
    "bench_build.py": ["--quick", "--catalogue", "{catalogue}", "--out", "{tmp}/build"],
    "bench_gpu.py": ["--quick", "--device", "cpu", "--parts", "encoder", "train", "product", "--no-compile",
                     "--out", "{tmp}/gpu.md"],
    "bench_retrieval_whitening.py": ["--quick", "--run", "{run}"],
    # one size and one step, both variants (tests/test_bench_scale.py runs its photo steps)
    "bench_scale.py": ["--quick", "--sizes", "150", "--steps", "index", "--source", "{run}", "--work", "{tmp}/scale",
                       "--out", "{tmp}/scale.md"],
    "bench_trunk_cache.py": ["--quick", "--catalogue", "{catalogue}"],
    "representation_study.py": ["--run", "{run}", "--catalogue", "{catalogue}", "--designs", "no_projection",
                                "--seeds", "0", "--epochs", "1", "--out", "{tmp}/study.json"],
    "representation_study_folds.py": ["--quick", "--run", "{run}", "--designs", "default", "completion"],
}


def benchmark_scripts() -> list[str]:
    """The scripts (files that run as a program), not the helper modules they import."""
    return sorted(p.name for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_every_benchmark_script_has_a_quick_mode():
    missing = sorted(set(benchmark_scripts()) - set(QUICK))
    assert not missing, f"add a quick command for {missing} to QUICK in {Path(__file__).name}"
    assert not set(QUICK) - set(benchmark_scripts()), "QUICK names scripts that are gone"


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory, tiny_run, tiny_catalogue):
    """An artifacts folder holding a copy of the tiny run as ``demo`` (a benchmark may write into its run)."""
    artifacts = tmp_path_factory.mktemp("bench") / "artifacts"
    shutil.copytree(tiny_run, artifacts / "demo")
    return artifacts, tiny_catalogue


@pytest.mark.parametrize("script", sorted(QUICK))
def test_the_benchmark_runs_in_quick_mode(script, bench_inputs, tmp_path):
    artifacts, catalogue = bench_inputs
    values = {"run": str(artifacts / "demo"), "artifacts": str(artifacts), "catalogue": str(catalogue),
              "tmp": str(tmp_path)}
    argv = [sys.executable, str(BENCHMARKS / script), *(a.format(**values) for a in QUICK[script])]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=os.environ | {"PYTHONPATH": str(REPO_ROOT)})
    seconds = time.perf_counter() - started
    assert done.returncode == 0, f"{' '.join(argv)} failed after {seconds:.0f} s:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    assert not list((REPO_ROOT / "docs").rglob(f"*{tmp_path.name}*"))
