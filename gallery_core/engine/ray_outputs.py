"""Where the Ray engine's output rows go as its batches arrive, in any order (``engine.ray_engine._run``).

Two sinks, each a context manager that the driver fills with ``put(batch)`` and closes with ``finish()``:

* ``WholeFiles``: one ``.npy`` file per output column with a row for every photo, placed by position; at the
  end the rows of the good photos are moved up over those of the bad ones (``compact``) and each file is
  renamed into place (``atomic_path``). An error anywhere leaves no output. What the trunk pass uses.
* ``ChunkFiles``: the photos are cut into chunks of ``chunk_size`` (by position), and each chunk's rows go to
  chunk files of their own (``chunks/chunk-000003.<column>.npy``, each written through ``atomic_path``) and a
  record (``chunk-000003.json``, written last: its inputs, the row shape of each column and the chunk's bad
  photos). A run that is stopped keeps its complete chunks; the next one computes only the others. A chunk is
  trusted only when its record matches this run's inputs (the model's checksum, the settings that change the
  numbers, the chunk's bounds and the digest of its paths) and every file holds the rows its record names.
  When all chunks are there, the good rows are copied in order into the outputs, each renamed into place;
  then a record of the complete outputs (``ray-outputs.json``) is written and the chunks are removed, so
  that a later step of the same run interrupted after this point finds the outputs and computes nothing.
  Disk: the chunks and the outputs side by side while the one is copied into the other.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from gallery_core.artifacts.atomic import atomic_path, write_json
from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.artifacts.store import ArtifactError
from gallery_core.data.photos import paths_digest, read_progress

# Bytes moved at a time when good rows are compacted or copied out of the chunks at the end.
COPY_CHUNK_BYTES = 64 * 2**20
CHUNK_FOLDER = "chunks"
OUTPUTS_RECORD = "ray-outputs.json"


def empty_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> NpyRows:
    """A ``.npy`` file of ``shape`` (sparse until written: its length is set, no row is), to fill by index."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                 "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return NpyRows(path)


def _block_rows(rows: NpyRows) -> int:
    """Rows of about ``COPY_CHUNK_BYTES``: what is read at a time when rows are moved."""
    return max(1, COPY_CHUNK_BYTES // max(rows.nbytes // max(len(rows), 1), 1))


def compact(path: Path, is_good: np.ndarray) -> None:
    """Move the rows of the good photos of the ``.npy`` file at ``path`` up over the bad ones, in order,
    and cut the file to (N_good, ...): its header is rewritten in place (numpy pads it for exactly this)."""
    n_good = int(is_good.sum())
    rows = NpyRows(path)  # (N, ...)
    row_bytes = rows.nbytes // max(len(rows), 1)
    step, written = _block_rows(rows), 0
    for start in range(0, len(rows), step):
        keep = rows[start:start + step][is_good[start:start + step]]  # a copy: safe to write over its source
        rows[written:written + len(keep)] = keep  # written <= start: never over rows still to be read
        written += len(keep)
    shape, dtype, offset = rows.shape, rows.dtype, rows.header_bytes
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (n_good, *shape[1:])}
        f.seek(0)
        write_header = {(1, 0): np.lib.format.write_array_header_1_0, (2, 0): np.lib.format.write_array_header_2_0}
        write_header[version](f, header)
        if f.tell() != offset:
            raise RuntimeError(f"{path}: the new .npy header does not fit the old one")
        f.truncate(offset + n_good * row_bytes)


class WholeFiles(AbstractContextManager):
    """Every output column in one file of N rows, compacted and renamed into place by ``finish``."""

    def __init__(self, outputs: dict[str, Path], n: int) -> None:
        self.outputs, self.n = outputs, n
        self.todo = np.arange(n, dtype=np.int64)  # every photo is computed
        self.seen = np.zeros(n, dtype=bool)  # (N,)
        self.bad: dict[int, str] = {}
        self.files: dict[str, NpyRows] = {}
        self.stack = ExitStack()

    def __enter__(self) -> WholeFiles:
        self.tmp = {name: self.stack.enter_context(atomic_path(path)) for name, path in self.outputs.items()}
        return self

    def put(self, batch: dict[str, np.ndarray]) -> None:
        index = np.asarray(batch["index"], dtype=np.int64)  # (B,)
        for name in self.outputs:
            column = batch[name]  # (B, ...)
            if name not in self.files:  # the first batch tells the row shape
                self.files[name] = empty_npy(self.tmp[name], column.dtype, (self.n, *column.shape[1:]))
            self.files[name][index] = column
        self.bad.update({int(i): str(r) for i, r in zip(index, batch["reason"], strict=True) if r})
        self.seen[index] = True

    def finish(self) -> dict[int, str]:
        if not self.seen.all():
            raise RuntimeError(f"Ray returned {int(self.seen.sum())} of {self.n} photos")
        if self.bad:
            is_good = np.ones(self.n, dtype=bool)
            is_good[list(self.bad)] = False
            for name in self.outputs:
                compact(self.tmp[name], is_good)
        self.stack.close()  # renamed into place
        return self.bad

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)  # after an error: the temporary files are removed


class _OpenChunk:
    """A chunk whose rows are arriving: its temporary files (``atomic_path``, renamed when it is complete)."""

    def __init__(self, files: dict[str, Path], batch: dict[str, np.ndarray], rows: int) -> None:
        self.stack = ExitStack()
        self.columns = {name: [str(batch[name].dtype), list(batch[name].shape[1:])] for name in files}
        self.files = {name: empty_npy(self.stack.enter_context(atomic_path(path)), batch[name].dtype,
                                      (rows, *batch[name].shape[1:])) for name, path in files.items()}
        self.seen = np.zeros(rows, dtype=bool)
        self.bad: dict[str, str] = {}


class ChunkFiles(AbstractContextManager):
    """The outputs written chunk by chunk, resumable (see the module docstring). ``identity``: what, besides
    the photos, decides the numbers (model checksum, image size, settings)."""

    def __init__(self, outputs: dict[str, Path], paths: list[str], chunk_size: int, identity: dict[str, Any]) -> None:
        self.outputs, self.n, self.chunk_size = outputs, len(paths), chunk_size
        folder = next(iter(outputs.values())).parent
        self.folder, self.record_path = folder / CHUNK_FOLDER, folder / OUTPUTS_RECORD
        self.identity = identity | {"photos": self.n, "paths": paths_digest(paths), "chunk_size": chunk_size,
                                    "outputs": {name: path.name for name, path in outputs.items()}}
        self.bounds = [(start, min(start + chunk_size, self.n)) for start in range(0, self.n, chunk_size)]
        self.chunk_identity = [identity | {"chunk": k, "start": start, "end": end, "paths": paths_digest(paths[start:end])}
                               for k, (start, end) in enumerate(self.bounds)]
        self.open: dict[int, _OpenChunk] = {}
        self.complete = self._outputs_complete()
        self.records: dict[int, dict] = {} if self.complete is not None else \
            {k: r for k in range(len(self.bounds)) if (r := self._trusted(k)) is not None}
        todo = [np.arange(*self.bounds[k], dtype=np.int64) for k in range(len(self.bounds))
                if self.complete is None and k not in self.records]
        self.todo = np.concatenate(todo) if todo else np.zeros(0, dtype=np.int64)

    def chunk_file(self, k: int, name: str) -> Path:
        return self.folder / f"chunk-{k:06d}.{name}.npy"

    def chunk_record(self, k: int) -> Path:
        return self.folder / f"chunk-{k:06d}.json"

    def _files_match(self, files: dict[str, Path], columns: dict[str, list], rows: int) -> bool:
        """Every file there, whole, with the dtype and shape its record names."""
        try:
            found = {name: NpyRows(path) for name, path in files.items()}
        except (OSError, ValueError, ArtifactError):  # missing, not a .npy, or cut short
            return False
        return set(columns) == set(files) and all(
            str(f.dtype) == columns[name][0] and f.shape == (rows, *columns[name][1]) for name, f in found.items())

    def _trusted(self, k: int) -> dict | None:
        """Chunk ``k``'s record when the chunk is complete and computed from this run's inputs, else None."""
        record = read_progress(self.chunk_record(k), self.chunk_identity[k])
        start, end = self.bounds[k]
        if record is None or not self._files_match({name: self.chunk_file(k, name) for name in self.outputs},
                                                   record.get("columns", {}), end - start):
            return None
        return record

    def _outputs_complete(self) -> dict | None:
        """The record of outputs already complete for these inputs (a resumed step after the engine's part)."""
        record = read_progress(self.record_path, self.identity)
        if record is None or not self._files_match(self.outputs, record.get("columns", {}),
                                                   self.n - len(record.get("bad", {}))):
            return None
        return record

    def __enter__(self) -> ChunkFiles:
        if self.complete is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(".*.tmp"):  # what a killed run left of its unfinished chunks
                stale.unlink(missing_ok=True)
        return self

    def put(self, batch: dict[str, np.ndarray]) -> None:
        index = np.asarray(batch["index"], dtype=np.int64)  # (B,)
        chunk_of = index // self.chunk_size
        for k in np.unique(chunk_of).tolist():
            start, end = self.bounds[k]
            rows = chunk_of == k
            if k not in self.open:
                self.open[k] = _OpenChunk({name: self.chunk_file(k, name) for name in self.outputs}, batch,
                                          end - start)
            chunk, local = self.open[k], index[rows] - start
            for name, file in chunk.files.items():
                file[local] = batch[name][rows]
            chunk.bad.update({str(i): str(r) for i, r in zip(index[rows], batch["reason"][rows], strict=True) if r})
            chunk.seen[local] = True
            if chunk.seen.all():
                self._close(k)

    def _close(self, k: int) -> None:
        """Chunk ``k`` is complete: its files renamed into place, then its record (the mark of trust)."""
        chunk = self.open.pop(k)
        chunk.stack.close()
        self.records[k] = self.chunk_identity[k] | {"columns": chunk.columns, "bad": chunk.bad}
        write_json(self.chunk_record(k), self.records[k])

    def finish(self) -> dict[int, str]:
        """The outputs from the chunks (good rows, in order), renamed into place; -> {position: reason} of the
        bad photos."""
        if self.complete is not None:
            return {int(i): r for i, r in self.complete["bad"].items()}
        missing = [k for k in range(len(self.bounds)) if k not in self.records]
        if missing:
            raise RuntimeError(f"Ray returned fewer photos than asked: chunks {missing[:5]} are incomplete")
        bad = {int(i): r for record in self.records.values() for i, r in record["bad"].items()}
        columns = self.records[0]["columns"]
        with ExitStack() as stack:
            for name, path in self.outputs.items():
                dtype, row_shape = columns[name]
                out = empty_npy(stack.enter_context(atomic_path(path)), np.dtype(dtype),
                                (self.n - len(bad), *row_shape))
                written = 0
                for k, (start, end) in enumerate(self.bounds):
                    rows = NpyRows(self.chunk_file(k, name))
                    is_good = np.ones(end - start, dtype=bool)
                    is_good[[int(i) - start for i in self.records[k]["bad"]]] = False
                    step = _block_rows(rows)
                    for lo in range(0, len(rows), step):
                        keep = rows[lo:lo + step][is_good[lo:lo + step]]
                        out[written:written + len(keep)] = keep
                        written += len(keep)
        # Then the record of the complete outputs, then the chunks go: a crash in between leaves outputs that
        # the record vouches for, or chunks to copy again.
        write_json(self.record_path, self.identity | {"columns": columns, "bad": {str(i): r for i, r in bad.items()}})
        shutil.rmtree(self.folder, ignore_errors=True)
        return bad

    def __exit__(self, *exc: Any) -> None:
        for chunk in self.open.values():  # unfinished chunks: their temporary files are removed
            chunk.stack.__exit__(*exc)
        self.open.clear()

