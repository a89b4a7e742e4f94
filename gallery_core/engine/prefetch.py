"""Batches read ahead on a CPU thread, a bounded number at a time.

Why: when the model runs on a GPU, the GPU would wait while CPU threads read the next batch's files (and decode
what the device cannot take); reading ahead lets both work at once. The bound keeps memory flat, whatever the
number of photos: at most ``depth`` batches are read (or being read) and not yet done with.

``prefetch(items, read, depth)`` yields ``read(item)`` for each item, in order, as ``map`` would. A batch counts
as held from the moment its read starts until the consumer asks for the next one; ``depth`` 0 reads each batch
when it is asked for, in the consumer's thread (no thread, nothing held ahead). An exception raised by ``read``
(or by ``items``) reaches the consumer at that batch, with its traceback; a consumer that stops early (``break``,
an exception of its own) stops the reader thread too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Batches read ahead of the device: 2 would already keep a GPU fed when reading a batch takes about as long as
# computing one; one more absorbs storage's jitter. Each is one model batch's files (~100 KB a photo) plus what
# the CPU decoder took, so three stay in the tens of MB at batch 256.
PREFETCH_BATCHES = 3


class Prefetcher(Generic[T, R]):
    """``read`` over ``items`` on one reader thread, at most ``depth`` batches held (see the module docstring).
    ``max_held`` is the most batches that were held at once: what the bound promises, for the tests to check."""

    def __init__(self, items: Iterable[T], read: Callable[[T], R], depth: int = PREFETCH_BATCHES) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.items, self.read, self.depth = items, read, depth
        self.held = 0
        self.max_held = 0
        self._lock = threading.Lock()

    def _count(self, change: int) -> None:
        with self._lock:
            self.held += change
            self.max_held = max(self.max_held, self.held)

    def __iter__(self) -> Iterator[R]:
        if self.depth == 0:
            for item in self.items:
                self._count(+1)
                result = self.read(item)
                yield result
                self._count(-1)
            return
        slots = threading.Semaphore(self.depth)  # one per batch held: taken before a read, given back after use
        results: queue.Queue[tuple[str, object]] = queue.Queue()  # never more than `depth` entries: the slots
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self.items:
                    slots.acquire()
                    if stop.is_set():
                        return
                    self._count(+1)
                    results.put(("batch", self.read(item)))
            except BaseException as err:  # the consumer raises it, at the batch that failed
                results.put(("error", err))
                return
            results.put(("done", None))

        reader = threading.Thread(target=produce, name="prefetch", daemon=True)
        reader.start()
        try:
            while True:
                kind, value = results.get()
                if kind == "done":
                    return
                if kind == "error":
                    assert isinstance(value, BaseException)
                    raise value
                yield value  # type: ignore[misc]
                del value  # the consumer is done with it: its memory may go before the next read
                self._count(-1)
                slots.release()
        finally:
            stop.set()
            slots.release(self.depth)  # a reader waiting for a slot wakes, sees `stop` and ends
            reader.join()


def prefetch(items: Iterable[T], read: Callable[[T], R], depth: int = PREFETCH_BATCHES) -> Iterator[R]:
    """``read(item)`` for each of ``items``, in order, read up to ``depth`` batches ahead (``Prefetcher``)."""
    return iter(Prefetcher(items, read, depth))
