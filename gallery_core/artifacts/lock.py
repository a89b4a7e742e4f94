"""One writer at a time: exclusive OS file locks on a run folder and on each trunk-cache entry.

Why an OS lock (``flock``) and not a PID file: the kernel releases it when the process ends, however it
ends, so a build killed with SIGKILL (or a machine that rebooted) never leaves a lock that blocks the next
build, and no one has to guess whether a recorded PID is still the same process. What makes a folder locked
is the kernel's lock on the file, not the file's existence: a killed holder leaves its file behind, unlocked,
and the next writer takes it. After taking the lock the holder writes who it is into the file (pid, host,
start time, command), so that a second writer can say who holds it; it removes the file when it is done.

``flock`` locks are per open file, so two threads or two processes of one machine exclude each other alike;
on Linux they also work on NFS (as whole-file POSIX locks). Under torchrun only rank 0 writes a run, so the
other ranks take no run lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)

RUN_LOCK_FILE = "build.lock"


class LockedError(UsageError):
    """Another process holds the lock; the message names what is locked and who holds it."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started_at: str  # UTC, 2026-12-07T10:00:00Z
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started_at} ({self.command})"


def _me() -> Holder:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    program = "gallery-core" if program == "__main__.py" else program  # python -m gallery_core
    command = " ".join([program, *sys.argv[1:]])
    return Holder(os.getpid(), socket.gethostname(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  command[:200])


def _read_holder(fd: int) -> Holder | None:
    """Who wrote the lock file last (the holder, while it is locked), or None when it is empty or unreadable."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started_at"]), str(data["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str, wait: bool = False, hint: str = "") -> Iterator[Holder]:
    """Hold an exclusive lock on ``path`` (created for the ``with`` block, removed after) and yield this
    process's ``Holder``. Held by another process: ``LockedError`` naming ``what`` and the holder (``hint``
    appended), or, with ``wait``, block until it is released (logging who is being waited for)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, what, wait, hint)
    try:
        me = _me()
        os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8"), 0)
        yield me
    finally:
        # Removed while still locked, so no process can take the lock of a file that is gone: one that opened
        # it meanwhile finds (in _acquire) that the path no longer names its file, and tries again.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)  # releases the lock


def _acquire(path: Path, what: str, wait: bool, hint: str) -> int:
    """An open, locked, empty file descriptor of ``path``."""
    said = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                held_by = f"locked by {holder}" if holder else "locked by another process"
                if not wait:
                    raise LockedError(f"{what} is {held_by}{hint}") from None
                if not said:
                    logger.info(f"{what} is {held_by}; waiting for it to finish")
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _names(path, fd):
                os.ftruncate(fd, 0)  # a killed holder's record is stale text
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file on release: lock the new one


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        on_disk, opened = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def lock_holder(path: str | Path) -> Holder | None:
    """Who holds the lock on ``path`` now, or None when no one does (or the file does not exist). Takes no lock
    that outlives the call and never creates the file, so a read-only reader (the app) can ask."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or Holder(-1, "?", "?", "another process")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RUN_LOCK_FILE


@contextlib.contextmanager
def run_lock(run_dir: str | Path, wait: bool = False) -> Iterator[None]:
    """The run folder's writer lock, held by ``build`` and every step for their whole run (rank 0 only under
    torchrun: the other ranks write nothing). ``LockedError`` when another process holds it, unless ``wait``."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with exclusive_lock(run_lock_path(run_dir), f"run {run_dir}", wait=wait,
                        hint="; run again when it has finished, or add --wait to start then"):
        yield


def run_writer(run_dir: str | Path) -> Holder | None:
    """The process writing the run now (a build or a step), or None."""
    return lock_holder(run_lock_path(run_dir))
