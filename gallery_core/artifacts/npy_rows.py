"""Large ``.npy`` files read and written a row block at a time with plain file I/O, never memory-mapped.

``NpyRows`` reads rows (slices, gathers) and writes them in place; ``RowWriter`` appends rows to a file that
appears, by a rename, only when complete. Why plain I/O: every page of a memory map that a step touches counts
in the process's resident set (and dirty pages of a shared mapping until written back), while bytes passed
through ``read()``/``write()`` live in the page cache, not in the process, so a step's peak memory is the
chunk in hand whatever the size of the file.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from gallery_core.artifacts.atomic import write_npy
from gallery_core.artifacts.store import ArtifactError


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


class RowWriter:
    """A ``.npy`` array written row block by row block with plain file writes, resumable, renamed into place
    only when complete.

    Plain writes, not a memory map: the dirty pages of a shared file mapping count in the process's RSS
    until the kernel writes them back, bytes handed to ``write()`` do not, so peak memory stays flat
    however large the file grows. Until ``finish`` the rows live in ``<path>.partial``, whose header
    reserves room for ``max_rows``; ``finish`` writes the real row count into the header (padded to the
    same length), cuts the file there and renames it to ``path``. ``rows_done`` > 0 reopens a partial
    file and keeps only its first ``rows_done`` rows (what a progress record says is complete).
    """

    def __init__(self, path: Path, max_rows: int, rows_done: int = 0):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.max_rows = max_rows
        self.rows = 0
        self.file = None
        self.header_size = 0
        self.dtype: np.dtype | None = None
        self.row_shape: tuple[int, ...] | None = None
        if rows_done > 0:
            self._reopen(rows_done)
        else:
            self.partial.unlink(missing_ok=True)

    def _reopen(self, rows_done: int) -> None:
        with open(self.partial, "rb") as f:
            np.lib.format.read_magic(f)  # RowWriter writes version 1.0 headers
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            self.header_size = f.tell()
        self.dtype, self.row_shape = np.dtype(dtype), tuple(shape[1:])
        size = self.header_size + rows_done * self._row_bytes()
        if os.path.getsize(self.partial) < size:
            raise ValueError(f"{self.partial}: shorter than the {rows_done} rows its progress record names")
        self.file = open(self.partial, "r+b")  # noqa: SIM115 -- kept open across appends, closed by finish/close
        self.file.truncate(size)  # rows written after the last progress record are redone
        self.file.seek(size)
        self.rows = rows_done

    def _row_bytes(self) -> int:
        assert self.dtype is not None and self.row_shape is not None
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def append(self, block: np.ndarray) -> None:
        """Add rows (n, *row_shape); the first block fixes dtype and row shape."""
        if self.file is None:
            self.dtype, self.row_shape = block.dtype, tuple(block.shape[1:])
            header = _npy_header(self.dtype, (self.max_rows, *self.row_shape))
            self.header_size = len(header)
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.partial, "wb")  # noqa: SIM115 -- kept open across appends
            self.file.write(header)
        if block.dtype != self.dtype or tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"{self.partial}: rows {block.dtype} {block.shape[1:]} after {self.dtype} {self.row_shape}")
        if self.rows + len(block) > self.max_rows:
            raise ValueError(f"{self.partial}: more than the {self.max_rows} rows reserved")
        self.file.write(np.ascontiguousarray(block).tobytes())
        self.rows += len(block)

    def sync(self) -> int:
        """Rows written so far, on disk (flushed and fsynced): safe to record as complete."""
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
        return self.rows

    def finish(self, empty_shape: tuple[int, ...] = (0,), dtype: np.dtype | type = np.float32) -> Path:
        """Write the real row count into the header and rename the file into place. With no rows ever
        written: an empty array of ``empty_shape`` and ``dtype``."""
        if self.file is None:
            write_npy(self.path, np.zeros(empty_shape, dtype))
            return self.path
        self.sync()
        assert self.dtype is not None and self.row_shape is not None
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype, (self.rows, *self.row_shape), self.header_size))
        self.file.truncate(self.header_size + self.rows * self._row_bytes())
        self.sync()
        self.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int | None = None) -> bytes:
    """A .npy (version 1.0) header for a C-order array, padded with spaces to ``size`` bytes when given
    (numpy itself pads the same way, to a multiple of 64 bytes)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    header = buffer.getvalue()
    if size is None or size == len(header):
        return header
    text = header[10:].rstrip(b"\n").rstrip(b" ")  # magic (6) + version (2) + length (2), then the dict
    padding = size - 10 - len(text) - 1
    if padding < 0:
        raise ValueError(f"a .npy header for shape {shape} does not fit in {size} bytes")
    return header[:8] + struct.pack("<H", size - 10) + text + b" " * padding + b"\n"
