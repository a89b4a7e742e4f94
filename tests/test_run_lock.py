"""One writer per run folder (gallery_core.artifacts.lock): a second build exits 2 naming the holder, or waits
with --wait; a SIGKILLed build's lock blocks no one; builds of different runs sharing one trunk cache
(``GALLERY_CORE_TRUNK_CACHE``) both finish with the cache a lone build makes.

Before the locks, two builds of one run died on the trunk cache's ``.partial`` rename (a traceback)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gallery_core.artifacts.lock import LockedError, exclusive_lock, lock_holder, run_lock, run_writer

REPO_ROOT = Path(__file__).resolve().parent.parent
# The tiny test run's settings as flags (tests/conftest.py's tiny_config), with training long enough to be
# interrupted: the test kills it.
TINY_FLAGS = ["--image-size", "32", "--embed-dim", "16", "--batch-size", "8", "--lr", "1e-3", "--seed", "0",
              "--min-listings-to-finetune", "0", "--n-trees", "5", "--umap-neighbors", "5", "--oof-folds", "3"]


def _cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gallery_core", *args], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _wait_for_writer(run: Path, pid: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = run_writer(run)
        if holder is not None and holder.pid == pid:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the lock of {run}")


def test_a_second_writer_exits_2_naming_the_holder_and_a_killed_holder_blocks_no_one(run_copy, tiny_catalogue):
    first = _cli("build", "--catalogue", str(tiny_catalogue), "--out", str(run_copy), "--steps", "train", "--force",
                 "--epochs", "500", "--patience", "500", "--quiet", *TINY_FLAGS)
    waiting = None
    try:
        _wait_for_writer(run_copy, first.pid, first)
        second = subprocess.run([sys.executable, "-m", "gallery_core", "index", "--out", str(run_copy)],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        message = second.stderr.strip()
        assert "\n" not in message and "Traceback" not in message  # one line
        assert message.startswith(f"error: run {run_copy} is locked by pid {first.pid} on {socket.gethostname()}")
        assert "gallery-core build" in message and "--wait" in message

        waiting = _cli("index", "--out", str(run_copy), "--wait")  # waits for the first, then runs
        said = waiting.stdout.readline()  # its first line: whom it waits for
        assert f"locked by pid {first.pid}" in said and "waiting for it to finish" in said
        time.sleep(0.5)
        assert waiting.poll() is None
        first.send_signal(signal.SIGKILL)  # mid-training: the kernel releases its lock
        first.wait(timeout=30)
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert "[index] up to date, skipped" in out
        assert run_writer(run_copy) is None
    finally:
        for process in (first, waiting):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_the_lock_names_its_holder_and_is_free_after_release(tmp_path):
    with exclusive_lock(tmp_path / "x.lock", "thing x") as me:
        assert me.pid == os.getpid()
        assert lock_holder(tmp_path / "x.lock") == me
        with pytest.raises(LockedError, match=f"thing x is locked by pid {os.getpid()} on "), \
                exclusive_lock(tmp_path / "x.lock", "thing x"):
            pass
    assert lock_holder(tmp_path / "x.lock") is None and not (tmp_path / "x.lock").exists()
    assert lock_holder(tmp_path / "absent.lock") is None  # never created by asking
    assert not (tmp_path / "absent.lock").exists()
    with run_lock(tmp_path / "run"):  # creates the run folder when needed
        assert run_writer(tmp_path / "run").pid == os.getpid()


def test_only_rank_0_locks_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with run_lock(tmp_path), run_lock(tmp_path):
        assert run_writer(tmp_path) is None


HOLD_LOCK = """
import sys, time
from gallery_core.artifacts.lock import exclusive_lock
with exclusive_lock(sys.argv[1], "thing"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_lock_of_a_killed_process_is_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "x.lock")], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert lock_holder(tmp_path / "x.lock").pid == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert lock_holder(tmp_path / "x.lock") is None  # its record is still in the file, but no one holds the lock
    with exclusive_lock(tmp_path / "x.lock", "thing", wait=False):
        pass


SHARED_CACHE_BUILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import tiny_config
from gallery_core.pipeline.build import run_steps
print("ready", flush=True)
go = Path(sys.argv[3])
while not go.exists():  # both builds start at the same moment
    time.sleep(0.005)
# train computes the trunk cache (or waits for the other build's), embed reads it again
run_steps(sys.argv[1], ("train", "embed"), catalogue_dir=sys.argv[2], config=tiny_config(max_epochs=1), progress=False)
"""


def test_builds_of_two_runs_sharing_a_trunk_cache_both_finish_with_a_lone_builds_cache(tiny_run, tiny_catalogue,
                                                                                      tmp_path):
    from gallery_core.artifacts.store import read_manifest, step_problems

    shared = tmp_path / "shared-trunk-cache"
    go = tmp_path / "go"
    env = os.environ | {"GALLERY_CORE_TRUNK_CACHE": str(shared)}
    builds = [subprocess.Popen([sys.executable, "-c", SHARED_CACHE_BUILD, str(tmp_path / f"run-{i}"),
                                str(tiny_catalogue), str(go)], cwd=REPO_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    try:
        for build in builds:
            assert build.stdout.readline().strip() == "ready"
        go.touch()
        results = [build.communicate(timeout=300) for build in builds]
    finally:
        for build in builds:
            build.kill()
    assert [b.returncode for b in builds] == [0, 0], [err[-2000:] for _, err in results]
    lone = sorted(p for p in (tiny_run / "cache").glob("trunk-*") if p.suffix in (".npy", ".json"))
    assert lone
    for path in lone:
        assert (shared / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(p.suffix for p in shared.iterdir()) == [".json", ".npy"]  # no lock left once released
    for i in range(2):
        assert not list((tmp_path / f"run-{i}" / "cache").glob("trunk-*"))  # the runs' own caches stay empty
        manifest = read_manifest(tmp_path / f"run-{i}")
        for step in ("train", "embed"):  # recorded, and the files are those recorded
            assert step_problems(tmp_path / f"run-{i}", step, manifest["steps"][step]["key"]) == []
    shutil.rmtree(shared)


def test_waiting_writers_take_turns_while_each_removes_the_lock_file(tmp_path):
    """Read-modify-write of a counter under the lock by 8 threads (separate open files, as separate processes
    have): no increment is lost although every holder removes the lock file when it is done."""
    import threading

    counter = tmp_path / "counter"
    counter.write_text("0")

    def work() -> None:
        for _ in range(25):
            with exclusive_lock(tmp_path / "c.lock", "the counter", wait=True):
                value = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert counter.read_text() == "200"
    assert not (tmp_path / "c.lock").exists()
