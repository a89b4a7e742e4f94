"""benchmarks/bench_scale.py --quick runs end to end on the tiny run and writes its table, figures and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert (in_memory_open["files_hashed"] == 13).all()  # today's check hashed every file
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


def test_quick_photo_steps_and_merge(tiny_run, tmp_path):
    """The trunk pass, training and embed, both variants, on the tiny run; --merge keeps the earlier rows this
    invocation did not measure and replaces the ones it did."""
    out, work = tmp_path / "scale.md", tmp_path / "work"
    earlier = {"listings": 60, "photos": 120, "step": "trunk", "variant": "streaming", "step_seconds": 999.0,
               "wall_seconds": 999.0, "peak_rss_gb": 9.0, "peak_anon_gb": 9.0}  # re-measured: replaced
    kept = {"listings": 500_000, "photos": 1_000_000, "step": "index", "variant": "streaming", "step_seconds": 245.0,
            "wall_seconds": 256.0, "peak_rss_gb": 5.9, "peak_anon_gb": 0.34}  # not measured here: kept
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"machine": "Machine: x86_64, 2 CPU cores; 2026-11-30.", "photos_per_listing": 2,
                                    "note": "the first invocation", "rows": [earlier, kept]}))
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--source", str(tiny_run), "--work", str(work),
                           "--out", str(out), "--sizes", "60", "--photos-per-listing", "2", "--baseline-max", "60",
                           "--steps", "trunk", "train", "embed", "--merge", str(previous), "--keep"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.DataFrame(json.loads(out.with_suffix(".json").read_text())["rows"])
    here = rows[rows["listings"] == 60]
    assert sorted(zip(here["step"], here["variant"], strict=True)) == sorted(
        (step, variant) for step in ("trunk", "train", "embed") for variant in ("streaming", "in-memory"))
    assert (here["step_seconds"] < 999).all() and here["measured"].str.contains("--merge").all()
    old = rows[rows["listings"] == 500_000]
    assert len(old) == 1 and old["measured"].iloc[0] == "2026-11-30: the first invocation"
    assert (here.loc[here["step"] == "trunk", "photos_decoded"] == 120).all()  # every photo of the table, decoded
    assert (here.loc[here["step"] == "train", "epochs_run"] == 1).all()
    # the streaming variants read the trunk cache from its file as they go (train's forced below the in-memory
    # threshold), the in-memory ones hold it whole
    learned = here[here["step"].isin(["train", "embed"])]
    assert (learned["trunk_from_file"] == (learned["variant"] == "streaming")).all()

    # Both variants compute the same things: the trunk pass's features, bit for bit, and embed's arrays.
    run = work / "run-60"
    key = json.loads((run / "manifest.json").read_text())["synthetic"]["trunk_cache_key"]
    trunk = [np.load(run / f"bench-trunk-{v}" / "cache" / f"trunk-{key}.npy") for v in ("streaming", "in-memory")]
    assert len(trunk[0]) == 120 and np.array_equal(trunk[0], trunk[1])
    for name in ("photo_embeddings.npy", "listing_embeddings.npy", "new_task_embeddings.npy"):
        streaming, in_memory = (np.load(run / f"bench-embed-{v}" / name) for v in ("streaming", "in-memory"))
        np.testing.assert_allclose(streaming, in_memory, atol=1e-6)
    # The synthetic trunk cache repeats the source's features of each photo file, jittered.
    source_key = json.loads((run / "manifest.json").read_text())["synthetic"]["source_trunk_cache_key"]
    source = np.load(tiny_run / "cache" / f"trunk-{source_key}.npy").astype(np.float32)
    source_paths = json.loads((tiny_run / "cache" / f"trunk-{source_key}.json").read_text())["paths"]
    photos = pd.read_parquet(run / "photos.parquet")
    repeated = source[pd.Index(source_paths).get_indexer(photos["path"])]
    synthetic = np.load(run / "cache" / f"trunk-{key}.npy").astype(np.float32)
    assert 0 < np.std(synthetic - repeated) < 0.1 * np.std(repeated)

    text = out.read_text()
    table = text.split("## At the largest size")[0]
    assert sum("| trunk " in line for line in table.splitlines()) == 2  # both variants, once each
    runs = [line for line in text.splitlines() if line[:3] in ("1. ", "2. ")]  # the invocations under the table
    assert len(runs) == 2 and "2026-11-30: the first invocation" in text and "--merge" in "".join(runs)


def test_merge_with_other_photos_per_listing_is_refused_up_front(tiny_run, tmp_path):
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"machine": "x", "photos_per_listing": 4, "rows": []}))
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--source", str(tiny_run), "--work",
                           str(tmp_path / "work"), "--out", str(tmp_path / "scale.md"), "--photos-per-listing", "2",
                           "--merge", str(previous)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode != 0 and "photos per listing" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()  # refused before any run was made
