"""Set-up of ``bench_app_load.py``: the run seen through an artifacts folder of its own, thumbnails made
before measuring, an earlier revision of the app to compare with, and a description of the machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def shadow_artifacts(run: Path, work_dir: Path) -> Path:
    """An artifacts root whose run is the given one through symbolic links, with a cache folder of its own
    (kept between invocations, so the photos' thumbnails are made once) and a ``user/`` folder of its own,
    emptied now: the decisions the benchmark makes never reach the run's own database."""
    root = work_dir / "artifacts"
    target = root / run.name
    (target / "cache").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target / "user", ignore_errors=True)
    for folder in (target, target / "cache"):
        for entry in folder.iterdir():
            if entry.is_symlink():
                entry.unlink()
    for entry in run.iterdir():
        if entry.name in ("user", "build.lock"):
            continue
        if entry.name == "cache" and entry.is_dir():
            for item in entry.iterdir():
                (target / "cache" / item.name).symlink_to(item.resolve())
        else:
            (target / entry.name).symlink_to(entry.resolve())
    return root


# Run with an app's own code (its folder first on the path): the thumbnails its pages show, made into the
# run's disk cache before measuring, so that no measured action pays for making thumbnails (only the fresh
# server's first visits would, after a build).
PREWARM = """
import sys
import pandas as pd
from gallery_core.app import thumbnails
run_root = sys.argv[1]
photos = pd.read_parquet(run_root + "/photos.parquet", columns=["listing_id", "path"])
cache = thumbnails.thumbnail_dir(run_root)
for path in photos["path"]:
    thumbnails.thumbnail_bytes(path, thumbnails.SMALL_THUMBNAIL, cache)
for path in photos.groupby("listing_id", sort=False).head(4)["path"]:
    thumbnails.thumbnail_bytes(path, 64, cache)  # the Audit page's gallery strips
"""


def prewarm_thumbnails(app_dir: Path, run_root: Path) -> None:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PREWARM, str(run_root)], cwd=app_dir, check=True,
                   env=os.environ | {"PYTHONPATH": str(app_dir)})
    print(f"thumbnails on disk for {app_dir} ({time.perf_counter() - started:.0f} s)", flush=True)


def export_revision(rev: str, work_dir: Path) -> Path:
    """The repository at ``rev`` (``git archive``) in a folder of its own; the working tree is not touched."""
    out = work_dir / f"rev-{rev.replace('/', '_')}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    archive = work_dir / "rev.tar"
    subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    archive.unlink()
    return out


def describe_revision(rev: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %s", rev], check=True,
                          capture_output=True, text=True).stdout.strip()


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import streamlit

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores ({model}), load average {load} at the start; "
            f"Python {platform.python_version()}, Streamlit {streamlit.__version__}, Chromium {chromium_version()}")


def chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
        found = re.search(r"\d+(\.\d+)+", out)
        return found.group(0) if found else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"
