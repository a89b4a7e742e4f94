"""A run's folder: file names, atomic writes and the manifest that ties the files together.

Every step records in ``manifest.json`` the key of its inputs (config + upstream checksums), the
files it wrote with their checksums, and how long it took. A step whose key is unchanged and whose
files pass ``check_step`` (present, same checksums, built from the upstream files present) is skipped;
``load_manifest(verify=True)`` refuses a folder whose files do not match their checksums or whose steps
were built from different upstream files. The build and the readers judge through the same
``check_step``, so whatever loading refuses, the next build redoes.

Hashing every file on every build would make a no-op build of a large run slow, so the build reads
checksums through ``ChecksumCache`` (``cache/checksums.json``): a file whose size and mtime_ns are those it
had when hashed is not hashed again. The cache lives beside the run's other caches, not in the
manifest: mtimes are facts of one copy of the folder on one file system (a copy or an rsync changes
them), while the manifest describes the files' content wherever they are; the cache may be deleted at
any time and only costs one hash per file to rebuild.

Readers choose how hard to look (``VERIFY_MODES``): ``"full"`` (``verify=True``, the default of
``load_manifest`` and ``Run``) hashes every file and writes what it finds into the cache, so a file that
loading refuses is redone by the next build even if a tool kept its size and mtime; ``"quick"`` (the
app's start-up, ``check_run``) compares sizes and trusts the cache, so a file is hashed once per build,
not on every server start (a 500k-listing run holds gigabytes of embeddings); ``"none"`` (``False``)
only checks that the files are there. ``record_step`` makes the build's own hash count: it sets a file's
mtime ``_RACY_NS`` into the past before hashing it (``settle_mtime``), so the cache entry is not "racy"
(below) and the first quick check after a build hashes nothing; any later write gives the file a newer
mtime, which the cache sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.config import SCHEMA_VERSION
from gallery_core.names import build_command, step_command

MANIFEST = "manifest.json"
# What `evaluate` writes into a run (the app's Model page reads it back).
EVALUATION_DIR = "evaluation"
REPORT_MARKDOWN = "report.md"
REPORT_JSON = "report.json"

# One source of truth for the files of a run, by step. Each step's files are what its record lists.
STEP_FILES: dict[str, dict[str, str]] = {
    "train": {"checkpoint": "model.pt", "train_log": "train_log.jsonl", "catalogue_report": "catalogue_report.json"},
    "embed": {"photo_table": "photos.parquet", "photo_embeddings": "photo_embeddings.npy",
              "listing_table": "listings.parquet", "listing_embeddings": "listing_embeddings.npy",
              "new_task_embeddings": "new_task_embeddings.npy", "whitening": "retrieval_whitening.npz"},
    "index": {"index": "index.ann"},
    "project": {"umap": "umap.parquet"},
    "predict": {"predictions": "predictions.parquet", "metrics": "metrics.json"},
}
STEPS: tuple[str, ...] = tuple(STEP_FILES)
# Which earlier files each step reads: their checksums are part of the step's input key.
STEP_INPUTS: dict[str, tuple[str, ...]] = {
    "train": (),
    "embed": ("checkpoint",),
    "index": ("listing_embeddings",),
    "project": ("listing_embeddings",),
    "predict": ("checkpoint", "listing_table", "listing_embeddings", "photo_table", "photo_embeddings",
                "new_task_embeddings"),
}
FILE_NAMES: dict[str, str] = {k: v for files in STEP_FILES.values() for k, v in files.items()}
PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "scikit-learn", "umap-learn", "annoy")


class ArtifactError(RuntimeError):
    """A run folder is missing, incomplete or inconsistent; the message says which file and why."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __getattr__(self, name: str) -> Path:
        if name in FILE_NAMES:
            return self.root / FILE_NAMES[name]
        raise AttributeError(name)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def ui_thumbnails(self) -> Path:
        """The app's JPEG thumbnails of catalogue photos (a cache; see ``gallery_core.app.thumbnails``)."""
        return self.cache_dir / "ui-thumbnails"

    @property
    def resume_checkpoint(self) -> Path:
        return self.root / "last.pt"


# --- atomic writes: a temp file in the same folder, then os.replace ---

@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def write_parquet(path: str | Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


class NpyRows:
    """The rows of a C-ordered ``.npy`` file, read on demand with plain file reads: ``rows[i:j]``,
    ``rows[index_array]`` (any order, repeats allowed), ``rows[i]``, ``np.asarray(rows)``, ``len``, ``shape``,
    ``dtype``; and written in place with plain writes, ``rows[index_array] = values``.

    Why not ``np.load(mmap_mode="r")``: every page of a memory map that a step touches counts in the process's
    resident set until the kernel reclaims it, so a step that reads 10 GB of photo embeddings once, a chunk at
    a time, shows a 10+ GB peak RSS (``VmHWM``) however little it holds (issue 12: predict at 500k listings,
    16.4 GB). Pages read with ``read()`` live in the page cache, not in the process, and a chunk read this
    way is an ordinary array that is freed with it. Gathers (a training batch's galleries, a probe's sample)
    read the sorted rows in runs of nearby rows, so they cost at most one block (``GATHER_BLOCK_ROWS``) of
    memory beyond the result.
    """

    GATHER_BLOCK_ROWS = 4096
    # Reading a gap costs its bytes (a copy from the page cache at a few GB/s), skipping it costs another read
    # call (microseconds): about 32 KiB is where the two meet.
    GATHER_GAP_BYTES = 32 * 1024

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(f)
            self._offset = f.tell()
        if fortran_order or dtype.hasobject or len(shape) == 0:
            raise ArtifactError(f"{self.path}: expected a C-ordered numeric array with rows, got shape {shape}, "
                                f"dtype {dtype}, fortran_order={fortran_order}")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self._offset + self.shape[0] * self._row_bytes
        if self.path.stat().st_size < expected:
            raise ArtifactError(f"{self.path}: truncated ({self.path.stat().st_size:,} bytes, the header "
                                f"promises {expected:,}); rebuild the step that wrote it")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self._row_bytes

    @property
    def header_bytes(self) -> int:
        """Where the rows start in the file."""
        return self._offset

    def _read_into(self, f: Any, start: int, out: np.ndarray) -> None:
        """Fill ``out`` (C-contiguous rows) with the rows from ``start`` through the open unbuffered file ``f``:
        one ``preadv`` where the system has it (no seek, no copy through a buffer). A regular file returns
        short only at its end."""
        view, offset = memoryview(out).cast("B"), self._offset + start * self._row_bytes
        if hasattr(os, "preadv"):
            got = os.preadv(f.fileno(), [view], offset)
        else:
            f.seek(offset)
            got = f.readinto(view)
        if got != out.nbytes:
            raise ArtifactError(f"{self.path}: rows {start}..{start + len(out)} could not be read whole")

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a new array."""
        out = np.empty((max(stop - start, 0), *self.shape[1:]), dtype=self.dtype)
        if out.size:
            with open(self.path, "rb", buffering=0) as f:
                self._read_into(f, start, out)
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows in any order: sorted, then read as runs of nearby rows (one read spans a gap of up to
        ``GATHER_GAP_BYTES``, cheaper than another system call) of at most ``GATHER_BLOCK_ROWS`` rows."""
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]  # (n,) sorted
        max_gap = max(1, self.GATHER_GAP_BYTES // max(self._row_bytes, 1))
        # Runs, found in one vectorised pass: a new run starts after a gap of more than max_gap rows, and
        # every GATHER_BLOCK_ROWS rows from the start of a gap-free stretch.
        stretch = np.concatenate([[0], np.cumsum(np.diff(ordered) > max_gap)])  # (n,) stretch of each row
        stretch_first = ordered[np.flatnonzero(np.diff(stretch, prepend=-1))][stretch]  # (n,) its first row
        block = (ordered - stretch_first) // self.GATHER_BLOCK_ROWS  # (n,)
        starts = np.flatnonzero((np.diff(stretch, prepend=-1) != 0) | (np.diff(block, prepend=-1) != 0))
        in_order = np.empty_like(out)  # (n, ...) the rows in sorted order, scattered back at the end
        ends = np.append(starts[1:], len(ordered))
        breaks = np.concatenate([[0], np.cumsum(np.diff(ordered) != 1)])  # (n,) steps other than +1 so far
        consecutive = breaks[ends - 1] == breaks[starts]  # (runs,) every row of the run follows the previous
        with open(self.path, "rb", buffering=0) as f:
            for lo, hi, whole in zip(starts.tolist(), ends.tolist(), consecutive.tolist(), strict=True):
                first, last = int(ordered[lo]), int(ordered[hi - 1])
                if whole:  # the common case: read straight into place
                    self._read_into(f, first, in_order[lo:hi])
                else:  # gaps or repeats: read the span, keep the rows wanted
                    span = np.empty((last + 1 - first, *self.shape[1:]), dtype=self.dtype)
                    self._read_into(f, first, span)
                    in_order[lo:hi] = span[ordered[lo:hi] - first]
        out[order] = in_order
        return out

    def _positions(self, key: Any) -> slice | int | np.ndarray:
        """A key as a step-1 slice, one row number, or an (n,) int64 array of row numbers, checked."""
        n = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            return slice(start, max(start, stop)) if step == 1 else np.arange(start, stop, step)
        if isinstance(key, (int, np.integer)):
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"row {key} out of range for {n} rows of {self.path.name}")
            return index
        rows = np.asarray(key)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise IndexError(f"boolean mask of shape {rows.shape} for {n} rows of {self.path.name}")
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise IndexError(f"rows of {self.path.name} are addressed by a slice, an integer, an integer array "
                             f"or a boolean mask, not {key!r}")
        rows = np.where(rows < 0, rows + n, rows).astype(np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows of {self.path.name}")
        return rows

    def __getitem__(self, key: Any) -> np.ndarray:
        where = self._positions(key)
        if isinstance(where, slice):
            return self._read(where.start, where.stop)
        if isinstance(where, int):
            return self._read(where, where + 1)[0]
        return self._gather(where)

    def __setitem__(self, key: Any, values: Any) -> None:
        """Write rows in place (the file must exist at its full shape, e.g. made by ``open_memmap(mode="w+")``):
        each run of consecutive rows is one write, and nothing is mapped (dirty pages of a shared mapping count
        in the process's RSS until written back; bytes handed to ``write()`` do not)."""
        where = self._positions(key)
        rows = np.arange(where.start, where.stop) if isinstance(where, slice) else np.atleast_1d(where)
        values = np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=self.dtype),
                                                      (len(rows), *self.shape[1:])))
        order = np.argsort(rows, kind="stable")
        ordered, values = rows[order], values[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        with open(self.path, "r+b") as f:
            for lo, hi in zip([0, *breaks], [*breaks, len(ordered)], strict=True):
                if hi > lo:
                    f.seek(self._offset + int(ordered[lo]) * self._row_bytes)
                    f.write(memoryview(values[lo:hi]).cast("B"))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self._read(0, self.shape[0])
        return whole if dtype is None else whole.astype(dtype, copy=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


# --- checksums and the manifest ---

def file_checksum(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_key(*parts: Any) -> str:
    """A short stable key of JSON-able parts (configs, fingerprints, checksums)."""
    text = json.dumps(parts, sort_keys=True, default=_json_default)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class UnreadableManifestError(ArtifactError):
    """``manifest.json`` exists but cannot be used (not JSON, not a manifest, another schema version).
    ``build --force`` sets it aside and redoes every step (``run_steps(force=True)``)."""


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The run's manifest, or None when there is none. Raises ``UnreadableManifestError`` for one that
    cannot be used, saying how to recover."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    recover = (f"run `{build_command(Path(root))} --force` to set it aside and redo every step (the trunk "
               "cache is kept), or restore it from a backup")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UnreadableManifestError(f"{path}: not valid JSON (truncated? {err}); {recover}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("steps", {}), dict) \
            or not isinstance(manifest.get("files", {}), dict):
        raise UnreadableManifestError(f"{path}: not a gallery-core manifest; {recover}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise UnreadableManifestError(
            f"{path}: schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}; rebuild the "
            f"run with this version of gallery-core: {recover}")
    return manifest


def set_aside_manifest(root: str | Path) -> Path:
    """Rename an unusable ``manifest.json`` to ``manifest.json.unreadable`` (kept for inspection), so that
    the run is rebuilt as if it had none. Returns the new path."""
    path = Path(root) / MANIFEST
    aside = path.with_name(MANIFEST + ".unreadable")
    os.replace(path, aside)
    return aside


# --- the checksum cache: hash a file once per (size, mtime_ns) ---

CHECKSUM_CACHE = "checksums.json"
# A file modified within this many ns of being hashed may change again without its mtime moving (the
# file system's clock is coarse); such an entry is not trusted, so the next check hashes it once more.
_RACY_NS = 2_000_000_000


class ChecksumCache:
    """Checksums of a run's files by name, valid while the file keeps the size and mtime_ns it had when
    hashed. ``trust=False`` always hashes (and records what it found); ``trust=True`` reuses an entry
    whose size and mtime still match. Call it like ``file_checksum``; ``save`` writes the cache back
    (best effort: a read-only run folder just goes uncached)."""

    def __init__(self, root: str | Path, trust: bool = True):
        self.root = Path(root)
        self.trust = trust
        self.path = RunPaths(self.root).cache_dir / CHECKSUM_CACHE
        self.entries: dict[str, dict[str, Any]] = {}
        self._changed = False
        try:
            entries = json.loads(self.path.read_text())
            if isinstance(entries, dict):
                self.entries = entries
        except (OSError, ValueError):
            pass  # no cache yet, or an unreadable one: start empty

    def __call__(self, path: str | Path) -> str:
        path = Path(path)
        stat = path.stat()
        entry = self.entries.get(path.name)
        if (self.trust and isinstance(entry, dict) and entry.get("bytes") == stat.st_size
                and entry.get("mtime_ns") == stat.st_mtime_ns
                and stat.st_mtime_ns <= entry.get("hashed_at_ns", 0) - _RACY_NS):
            return entry["checksum"]
        hashed_at = time.time_ns()
        checksum = file_checksum(path)
        self.entries[path.name] = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "hashed_at_ns": hashed_at,
                                   "checksum": checksum}
        self._changed = True
        return checksum

    def save(self) -> None:
        if not self._changed:
            return
        try:
            write_json(self.path, self.entries)
            self._changed = False
        except OSError:
            pass


def settle_mtime(path: str | Path) -> None:
    """Set a file just written to an mtime ``_RACY_NS`` in the past, so that hashing it now makes a cache
    entry that is trusted at once (a write after this call moves the mtime forward again, which the cache
    sees). Only for files this process has just finished writing (``record_step``)."""
    stat = Path(path).stat()
    os.utime(path, ns=(stat.st_atime_ns, min(stat.st_mtime_ns, time.time_ns() - _RACY_NS)))


# How thoroughly a reader compares a run's files with the manifest (see the module docstring).
VERIFY_MODES = ("full", "quick", "none")


def verify_mode(verify: bool | str) -> str:
    """``True`` -> "full", ``False`` -> "none", a name of ``VERIFY_MODES`` as it is."""
    mode = {True: "full", False: "none"}.get(verify, verify) if isinstance(verify, bool) else verify
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be True, False or one of {VERIFY_MODES}, got {verify!r}")
    return mode


def checksum_reader(root: str | Path, verify: bool | str) -> ChecksumCache | None:
    """What reads checksums for a verify mode: a hashing cache ("full"), a trusting one ("quick"), or None
    ("none": checksums are not compared). Call ``save`` on it afterwards."""
    mode = verify_mode(verify)
    return None if mode == "none" else ChecksumCache(root, trust=mode == "quick")


def step_input_key(root: str | Path, step: str, config_part: Any, extra: Any = None) -> str:
    """Key of a step's inputs: its config, extra facts, and the recorded checksums of upstream files."""
    manifest = read_manifest(root) or {}
    checksums = manifest.get("files", {})
    upstream = {name: checksums.get(FILE_NAMES[name], {}).get("checksum") for name in STEP_INPUTS[step]}
    return hash_key(step, config_part, extra, upstream)


def step_problems(root: str | Path, step: str, key: str, checksum: Callable[[Path], str] | None = None,
                  ) -> list[str] | None:
    """What is wrong with a step recorded with input key ``key``: None when the manifest does not record
    it with this key (it has to run anyway), else the problems ``check_step`` finds with its files (empty:
    the step is done).

    ``checksum`` (default: a trusting ``ChecksumCache`` of the run, saved afterwards) reads file checksums.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None or manifest.get("steps", {}).get(step, {}).get("key") != key:
        return None
    cache = ChecksumCache(root) if checksum is None else None
    try:
        return check_step(root, manifest, step, verify=True, checksum=checksum or cache).problems
    finally:
        if cache is not None:
            cache.save()


def step_is_done(root: str | Path, step: str, key: str, checksum: Callable[[Path], str] | None = None) -> bool:
    """True when the manifest records ``step`` with this input key and ``check_step`` finds its files intact."""
    return step_problems(root, step, key, checksum) == []


def record_step(root: str | Path, step: str, key: str, seconds: float, info: dict[str, Any],
                base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the step's files' checksums into the manifest (atomically) and drop later steps' records
    whose inputs this step just changed."""
    root = Path(root)
    manifest = read_manifest(root) or {"schema_version": SCHEMA_VERSION, "steps": {}, "files": {}}
    checksums = ChecksumCache(root, trust=False)  # the files were just written: hash them, and remember
    if base:
        manifest.update(base)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["packages"] = package_versions()
    manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for file_name in STEP_FILES[step].values():
        path = root / file_name
        settle_mtime(path)  # so this hash is the one a reader's quick check trusts: once per build
        manifest["files"][file_name] = {"step": step, "checksum": checksums(path), "bytes": path.stat().st_size}
    inputs = {FILE_NAMES[n]: manifest["files"].get(FILE_NAMES[n], {}).get("checksum") for n in STEP_INPUTS[step]}
    manifest["steps"][step] = {"key": key, "seconds": round(seconds, 2), "inputs": inputs,
                               "finished_at": manifest["updated_at"], **info}
    write_json(root / MANIFEST, manifest)
    checksums.save()
    return manifest


@dataclasses.dataclass
class StepCheck:
    """One step of a run against its manifest: a row per file it wrote, and what is wrong, in words."""

    step: str
    recorded: bool  # the manifest records the step as run
    inputs_ok: bool | None  # its recorded inputs are the files now present (None: step not recorded)
    files: list[dict[str, Any]]  # file, present, bytes, checksum_ok (None: not checked)
    problems: list[str]


def check_step(root: str | Path, manifest: dict[str, Any], step: str, verify: bool = True,
               checksum: Callable[[Path], str] | None = None) -> StepCheck:
    """Check one step's files against ``manifest``: recorded, present, (with ``verify``) the same bytes as
    recorded, and built from the upstream files now present. The one place a run's integrity is judged
    (``load_manifest`` raises on the first problem; ``artifacts.check.check_run`` lists them all; the build
    redoes a step it finds a problem with).

    ``checksum`` reads a file's checksum (default ``file_checksum``; the build passes a ``ChecksumCache``)."""
    root = Path(root)
    checksum = checksum or file_checksum
    recorded_files = manifest.get("files", {})
    record = manifest.get("steps", {}).get(step)
    problems: list[str] = []
    if record is None:
        problems.append(f"{root}: step {step!r} has not been run (run `{step_command(step, root)}` or "
                        f"`{build_command(root)}`)")
    files: list[dict[str, Any]] = []
    for file_name in STEP_FILES[step].values():
        path = root / file_name
        expected = recorded_files.get(file_name)
        present = path.is_file()
        checksum_ok: bool | None = None
        if record is not None and (expected is None or not present):
            problems.append(f"{path}: missing (written by step {step!r})")
        elif present and expected is not None and verify:
            checksum_ok = checksum(path) == expected.get("checksum")
            if not checksum_ok:
                problems.append(f"{path}: checksum differs from {MANIFEST}; the file was changed or comes "
                                "from another run. Rebuild this step.")
        files.append({"file": file_name, "present": present, "bytes": path.stat().st_size if present else 0,
                      "checksum_ok": checksum_ok})
    inputs_ok = None
    if record is not None:
        stale = [name for name, checksum in record.get("inputs", {}).items()
                 if recorded_files.get(name, {}).get("checksum") != checksum]
        inputs_ok = not stale
        problems.extend(f"{root}: step {step!r} was built from a different {name} than the one present; the "
                        "artifacts do not belong together. Rebuild it." for name in stale)
    return StepCheck(step, record is not None, inputs_ok, files, problems)


def load_manifest(root: str | Path, verify: bool | str = True, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    """Read a run's manifest and check that the named steps' files exist and belong together.

    ``verify`` (``VERIFY_MODES``): True / "full" recomputes every file's checksum (what is found goes into
    the checksum cache, so a file refused here is seen as changed by the next build even if it kept its
    size and mtime); "quick" trusts the cache for files whose size and mtime are unchanged; False / "none"
    only checks presence. Every step's recorded inputs must be the files now present: an embedding table
    from one build next to an index from another is refused.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise ArtifactError(f"{root}: no {MANIFEST}; build the run with `{build_command(root)}`")
    checksums = checksum_reader(root, verify)
    try:
        for step in steps:
            if problems := check_step(root, manifest, step, checksums is not None, checksums).problems:
                raise ArtifactError(problems[0])
    finally:
        if checksums is not None:
            checksums.save()
    return manifest
