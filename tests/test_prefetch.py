"""The bounded read-ahead of the trunk pass's CPU work (``engine.prefetch``, issue 21): the same batches in the
same order as reading them one by one, never more than the bound held at once (counted), a reader's error raised
at its batch, a consumer that stops early stopping the reader; and the trunk pass through it on the CPU device
(no pinning there) gives the features of the plain pass."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gallery_core.data.photos import batch_spans, compute_trunk_features, decode_threads
from gallery_core.engine.device_decode import (
    decode_read_batch,
    host_pixels,
    pin_host,
    read_batch,
    to_device,
)
from gallery_core.engine.prefetch import PREFETCH_BATCHES, Prefetcher, prefetch
from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD, create_backbone

CPU = torch.device("cpu")


class Reader:
    """A read that counts the batches it has produced and the consumer has not finished with yet."""

    def __init__(self, fail_at: int | None = None, seconds: float = 0.0) -> None:
        self.outstanding = 0
        self.most = 0
        self.fail_at = fail_at
        self.seconds = seconds
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, item: int) -> list[int]:
        self.calls.append(item)
        if item == self.fail_at:
            raise OSError(f"cannot read batch {item}")
        time.sleep(self.seconds)
        with self.lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        return [item, item * item]

    def done_with(self) -> None:
        with self.lock:
            self.outstanding -= 1


@pytest.mark.parametrize("depth", [0, 1, 2, PREFETCH_BATCHES])
def test_prefetching_yields_the_batches_of_the_plain_reader_in_order_and_holds_at_most_the_bound(depth):
    reader = Reader()
    prefetcher = Prefetcher(range(40), reader, depth)
    got = []
    for batch in prefetcher:
        time.sleep(0.002)  # a slow consumer: the reader runs ahead as far as the bound lets it
        got.append(batch)
        reader.done_with()
    assert got == list(map(Reader(), range(40))) == [[i, i * i] for i in range(40)]
    assert reader.most <= max(depth, 1) and prefetcher.max_held <= max(depth, 1)
    if depth > 1:
        assert prefetcher.max_held == depth  # it did read ahead


def test_a_reader_error_reaches_the_consumer_at_its_batch_and_nothing_after_it_is_read():
    reader = Reader(fail_at=5)
    got = []
    with pytest.raises(OSError, match="cannot read batch 5"):
        for batch in prefetch(range(20), reader, depth=2):
            got.append(batch[0])
    assert got == [0, 1, 2, 3, 4]
    assert max(reader.calls) == 5  # the reader stopped at the failing batch


def test_an_error_in_the_items_reaches_the_consumer():
    def items():
        yield 1
        raise ValueError("the list of batches broke")

    with pytest.raises(ValueError, match="broke"):
        list(prefetch(items(), lambda item: item, depth=2))


def test_a_consumer_that_stops_early_stops_the_reader():
    reader = Reader()
    batches = prefetch(range(1000), reader, depth=2)
    for batch in batches:
        if batch[0] == 3:
            break
    batches.close()
    assert len(reader.calls) <= 3 + 1 + 2  # what was read: up to the batch in hand plus the bound
    assert not any(t.name == "prefetch" for t in threading.enumerate())


def test_batch_spans_never_cross_a_chunk_and_mark_its_end():
    spans = list(batch_spans(10, 0, chunk_size=4, batch_size=3))
    assert spans == [(0, 3, False), (3, 4, True), (4, 7, False), (7, 8, True), (8, 10, True)]
    assert list(batch_spans(10, 2, 4, 3)) == [(8, 10, True)]  # resumed after two chunks


def test_on_the_cpu_device_nothing_is_pinned_and_the_read_threads_stay_two(tmp_path):
    assert not pin_host(CPU) and pin_host(torch.device("cuda"))
    assert decode_threads(CPU) == 2
    pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    host = host_pixels(pixels, pin_host(CPU))
    assert not host.is_pinned() and np.array_equal(host.numpy(), pixels)
    assert to_device(host, CPU) is host
    Image.new("RGB", (32, 24), (200, 30, 30)).save(tmp_path / "a.jpg")
    (tmp_path / "b.png").write_bytes(b"not a photo")
    with ThreadPoolExecutor(2) as pool:
        batch = read_batch([str(tmp_path / "a.jpg"), str(tmp_path / "b.png")], 16, pool, pin_host(CPU))
    assert all(not j.is_pinned() for j in batch.jpegs) and not batch.cpu_pixels.is_pinned()
    x, bad = decode_read_batch(batch, 16, CPU, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (1, 3, 16, 16) and list(bad) == [1]


def _scene(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((80, 60), Image.Resampling.BICUBIC)


def test_the_trunk_pass_reading_ahead_gives_the_features_of_reading_in_step(tmp_path, monkeypatch):
    paths = []
    for i in range(11):
        path: Path = tmp_path / f"{i}.jpg"
        _scene(i).save(path, quality=90)
        paths.append(str(path))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    paths.insert(4, str(tmp_path / "bad.jpg"))
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    options = {"batch_size": 4, "progress": False, "decode_on_device": True}  # the GPU's path, on the CPU
    ahead, bad = compute_trunk_features(backbone, paths, 32, **options)
    monkeypatch.setattr("gallery_core.data.photos.PREFETCH_BATCHES", 0)  # read each batch when it is asked for
    in_step, bad_in_step = compute_trunk_features(backbone, paths, 32, **options)
    assert list(bad) == list(bad_in_step) == [4]
    assert np.array_equal(ahead, in_step)
