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

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# The atomic writers live in their own module (below this one and NpyRows); every step imports them from here.
from gallery_core.artifacts.atomic import (  # noqa: F401  (re-exported)
    atomic_path,
    json_default,
    write_json,
    write_npy,
    write_parquet,
)
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


# --- checksums and the manifest ---

def file_checksum(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_key(*parts: Any) -> str:
    """A short stable key of JSON-able parts (configs, fingerprints, checksums)."""
    text = json.dumps(parts, sort_keys=True, default=json_default)
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
