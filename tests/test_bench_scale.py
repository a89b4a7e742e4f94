"""benchmarks/bench_scale.py --quick runs end to end on the tiny run and writes its table, figures and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "bench_scale.py"


def test_quick_scale_benchmark_writes_its_report(tiny_run, tmp_path):
    out = tmp_path / "scale.md"
    # Two of the steps, to stay quick: in a fresh process UMAP spends minutes compiling (numba) whatever the
    # size, and predict imports torch; their chunked and sampled paths are tested in tests/test_scale_steps.py.
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--source", str(tiny_run), "--work",
                           str(tmp_path / "work"), "--out", str(out), "--baseline-max", "150",
                           "--steps", "index", "open"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "written to" in done.stdout
    results = json.loads(out.with_suffix(".json").read_text())
    rows = pd.DataFrame(results["rows"])
    # every step at both sizes; today's in-memory path only up to --baseline-max
    assert sorted(rows[rows["variant"] == "streaming"]["listings"].unique()) == [150, 300]
    assert set(rows["step"]) == {"index", "open"}
    assert set(rows[rows["variant"] == "in-memory"]["listings"]) == {150}
    assert (rows["peak_rss_gb"] > 0).all() and (rows["step_seconds"] > 0).all()
    opened = rows[(rows["step"] == "open") & (rows["variant"] == "streaming")]
    assert (opened["files_hashed"] == 0).all()  # the app trusts the build's checksums
    in_memory_open = rows[(rows["step"] == "open") & (rows["variant"] == "in-memory")]
    assert (in_memory_open["files_hashed"] == 12).all()  # today's check hashed every file
    text = out.read_text()
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert "listings" in table_lines[0] and sum("| index " in line for line in table_lines) >= 3
    assert "to be measured" not in text and "## Slope and extrapolation" in text
    assert out.with_suffix(".png").stat().st_size > 0
    assert not (tmp_path / "work" / "run-150").exists()  # removed without --keep


def test_template_has_placeholders_only_where_numbers_go(tmp_path):
    out = tmp_path / "scale.md"
    subprocess.run([sys.executable, str(SCRIPT), "--template", "--out", str(out)], check=True, cwd=REPO_ROOT,
                   capture_output=True, timeout=120)
    text = out.read_text()
    assert text.count("_(to be measured)_") >= 5 and "## Slope and extrapolation" in text
