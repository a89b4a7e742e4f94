"""Every step streams (issue 12, part 1): the trunk pass and embed work chunk by chunk, resume after an
interruption from the last complete chunk with byte-identical files, and keep memory flat."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.data import photos as photos_module
from gallery_core.data.catalogue import load_catalogue
from gallery_core.data.photos import cached_trunk_features, trunk_cache_key
from gallery_core.engine.execution import Execution
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone
from gallery_core.pipeline import embed as embed_module
from gallery_core.pipeline.embed import embed

EMBED_FILES = ("photo_embeddings.npy", "listing_embeddings.npy", "new_task_embeddings.npy", "photos.parquet",
               "listings.parquet")


class Interrupted(RuntimeError):
    """Stands for a kill in the middle of a pass."""


def counting(monkeypatch, module, name: str, fail_on_call: int | None = None) -> list[int]:
    """Wrap ``module.name`` to count its calls (and raise ``Interrupted``, once, on call ``fail_on_call``)."""
    original, calls, failed = getattr(module, name), [], []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if fail_on_call is not None and len(calls) == fail_on_call and not failed:
            failed.append(1)
            raise Interrupted(f"killed in call {len(calls)} of {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.fixture
def trunk_inputs(tiny_catalogue, tmp_path):
    """A backbone and 40-odd photo paths, one of them a cut-short JPEG (found bad only when decoded)."""
    catalogue = load_catalogue(tiny_catalogue)
    paths = catalogue.photos["path"].tolist()[:40]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(paths[0]).read_bytes()[:60])
    paths.insert(13, str(broken))
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    return backbone, paths, trunk_cache_key(catalogue.fingerprint, backbone, 32)


def test_an_interrupted_trunk_pass_resumes_to_the_same_bytes(trunk_inputs, tmp_path, monkeypatch):
    backbone, paths, key = trunk_inputs
    options = {"batch_size": 4, "chunk_size": 8, "progress": False}  # 41 photos: 6 chunks of 2 batches
    whole, bad = cached_trunk_features(tmp_path / "whole", key, backbone, paths, 32, **options)
    assert list(bad) == [13] and len(whole) == 40

    calls = counting(monkeypatch, photos_module, "decode_batch", fail_on_call=6)  # in chunk 3
    with pytest.raises(Interrupted):
        cached_trunk_features(tmp_path / "resumed", key, backbone, paths, 32, **options)
    assert not (tmp_path / "resumed" / f"trunk-{key}.npy").exists()  # no half-written cache
    assert not (tmp_path / "resumed" / f"trunk-{key}.json").exists()
    calls.clear()
    resumed, bad_resumed = cached_trunk_features(tmp_path / "resumed", key, backbone, paths, 32, **options)
    assert len(calls) == 11 - 4  # the 4 batches of chunks 1-2 are not decoded again
    assert bad_resumed == bad
    for suffix in (".npy", ".json"):
        assert (tmp_path / "resumed" / f"trunk-{key}{suffix}").read_bytes() == \
            (tmp_path / "whole" / f"trunk-{key}{suffix}").read_bytes()
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == [f"trunk-{key}.json", f"trunk-{key}.npy"]


def test_a_cache_subset_is_read_without_loading_everything(trunk_inputs, tmp_path):
    backbone, paths, key = trunk_inputs
    everything, _ = cached_trunk_features(tmp_path, key, backbone, paths, 32, batch_size=4, chunk_size=8,
                                          progress=False)
    assert isinstance(everything, NpyRows)  # all rows in order: the file itself, not a copy
    subset = paths[1::3]  # holds the broken photo (position 13 -> 4)
    rows, bad = cached_trunk_features(tmp_path, key, backbone, subset, 32, progress=False)
    good = [i for i in range(len(paths)) if i != 13]
    expected = np.asarray(everything)[[good.index(i) for i in range(1, len(paths), 3) if i != 13]]
    assert np.array_equal(rows, expected) and isinstance(rows, np.ndarray)
    assert list(bad) == [4]


def test_training_batches_are_the_same_from_memory_and_from_the_file(tiny_catalogue, tmp_path):
    from conftest import tiny_config

    from gallery_core.models.checkpoint import build_model
    from gallery_core.training.data import prepare_data

    config = tiny_config()
    catalogue = load_catalogue(tiny_catalogue)
    model = build_model(config.model, catalogue.tasks)
    backbone = model.encoder.backbone
    key = trunk_cache_key(catalogue.fingerprint, backbone, 32)
    device = torch.device("cpu")
    in_memory = prepare_data(catalogue, model, config.model, tmp_path, key, True, device, False, in_memory=True)
    mapped = prepare_data(catalogue, model, config.model, tmp_path, key, True, device, False, in_memory=False)
    assert isinstance(in_memory.trunk_features, torch.Tensor) and isinstance(mapped.trunk_features, NpyRows)
    listings = np.array([5, 0, 17, 3])
    a, ids_a, _ = in_memory.batch(listings, device)
    b, ids_b, _ = mapped.batch(listings, device)
    assert torch.equal(a, b) and torch.equal(ids_a, ids_b)
    assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous(memory_format=torch.channels_last)


# The trunk pass in a fresh process on fake photos (decoding is not what is measured) with a fake trunk whose
# features are large (64 x 32 x 32 float16 = 128 KiB a photo), so the features dominate any noise in RSS.
MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np, torch
    from gallery_core.data import photos
    from gallery_core.models.backbones import IMAGENET_MEAN, IMAGENET_STD

    torch.set_num_threads(1)
    photos.load_photo = lambda path, size: np.full((size, size, 3), len(path) % 256, np.uint8)
    torch.manual_seed(0)
    backbone = type("FakeBackbone", (), {"trunk": torch.nn.Conv2d(3, 64, 1), "mean": IMAGENET_MEAN,
                                         "std": IMAGENET_STD, "name": "fake"})()
    n, out = int(sys.argv[1]), Path(sys.argv[2])
    paths = [f"photo-{i}.jpg" for i in range(n)]
    photos.write_trunk_features(backbone, paths, 32, out, batch_size=64, chunk_size=128, progress=False)
    assert np.load(out, mmap_mode="r").shape == (n, 64, 32, 32)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
""")


def peak_rss_of_trunk_pass(n_photos: int, out: Path) -> int:
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n_photos), str(out)], capture_output=True,
                            text=True, check=True, timeout=120)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_peak_memory_of_the_trunk_pass_does_not_grow_with_the_photos(tmp_path):
    # Peak RSS of the whole process (ru_maxrss), not tracemalloc: torch's allocations and a memory map's
    # dirty pages count there, and neither is seen by tracemalloc. Each size runs in its own process.
    small = peak_rss_of_trunk_pass(800, tmp_path / "small.npy")
    large = peak_rss_of_trunk_pass(1600, tmp_path / "large.npy")
    extra_features = 800 * 64 * 32 * 32 * 2  # bytes: 100 MiB more features in the large pass
    # Holding the features in memory (the pass before streaming) grows peak RSS by twice that (a list of
    # chunks, then their concatenation); streaming by a small fraction of it.
    assert large - small < extra_features / 2, (small, large)


# embed's listing-level work in a fresh process (the model is not what is measured): listing sums accumulated a
# chunk at a time, then the listing outputs written a block at a time, with large fake embeddings (2 photos a
# listing, 2048-d learned and pretrained = 16 KiB a listing per (L, D) array), so they dominate any noise in RSS.
EMBED_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np
    from gallery_core.pipeline import embed
    from gallery_core.search.whitening import fit_whitening

    n, out, dim = int(sys.argv[1]), Path(sys.argv[2]), 2048
    offsets = np.arange(n + 1, dtype=np.int64) * 2  # (L + 1,): listing i is photos 2i, 2i + 1
    columns = np.arange(dim, dtype=np.float32)

    def chunk(start, end):  # (rows, D) learned and pretrained, distinct per photo
        rows = np.arange(start, end, dtype=np.float32)[:, None]
        return np.cos(rows * 1e-3 + columns), np.sin(rows * 1e-3 + columns)

    sums = embed.stream_listing_sums(chunk, offsets, (dim, dim), out / "work", {"n": n}, 256,
                                     photo_out=out / "photos.npy", progress=False)
    whitening = fit_whitening(np.random.default_rng(0).standard_normal((300, dim)).astype(np.float32), 64)
    embed.write_listing_outputs(*sums, np.full(n, 2), whitening, "pretrained+learned", out / "listings.npy",
                                out / "new_task.npy", block_rows=256)
    assert np.load(out / "new_task.npy", mmap_mode="r").shape == (n, 2 * dim)
    assert np.load(out / "listings.npy", mmap_mode="r").shape == (n, 64)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
""")


def peak_rss_of_embed_listings(n_listings: int, out: Path) -> int:
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", EMBED_MEMORY_SCRIPT, str(n_listings), str(out)],
                            capture_output=True, text=True, check=True, timeout=300)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_peak_memory_of_embed_does_not_grow_with_the_listings(tmp_path):
    small = peak_rss_of_embed_listings(3000, tmp_path / "small")
    large = peak_rss_of_embed_listings(6000, tmp_path / "large")
    one_array = 3000 * 2048 * 4  # bytes: 24 MiB more of one (L, D) float32 array in the large run
    # The listing arrays held whole (embed before issue 21: sums, means and the new-task embedding, ~6 such
    # arrays) grow peak RSS by several times that; read and written a block at a time, by a fraction of it.
    assert large - small < one_array / 2, (small, large)


@pytest.fixture
def two_runs(tiny_run, tmp_path):
    import shutil

    return [Path(shutil.copytree(tiny_run, tmp_path / name)) for name in ("a", "b")]


def test_an_interrupted_embed_resumes_to_the_same_bytes(two_runs, tiny_catalogue, monkeypatch):
    catalogue = load_catalogue(tiny_catalogue)
    options = {"device": "cpu", "progress": False, "batch_size": 8, "execution": Execution(chunk_size=16)}
    whole, resumed = two_runs
    embed(catalogue, whole, **options)
    n_chunks = -(-len(np.load(whole / "photo_embeddings.npy", mmap_mode="r")) // 16)
    assert n_chunks >= 4

    calls = counting(monkeypatch, embed_module, "encode_trunk_features", fail_on_call=3)
    before = (resumed / "photo_embeddings.npy").read_bytes()
    with pytest.raises(Interrupted):
        embed(catalogue, resumed, **options)
    assert (resumed / "photo_embeddings.npy").read_bytes() == before  # the old file, untouched until complete
    assert json.loads((resumed / "cache" / "embed-work" / "progress.json").read_text())["chunks"] == 2
    calls.clear()
    embed(catalogue, resumed, **options)
    assert len(calls) == n_chunks - 2  # chunks 1-2 are not embedded again
    for name in EMBED_FILES:
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    assert not (resumed / "cache" / "embed-work").exists()


def in_memory_embed(run: Path, catalogue, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embed step as it was before it streamed: every photo's embedding and features in memory."""
    from gallery_core.config import BuildConfig
    from gallery_core.models.checkpoint import load_checkpoint
    from gallery_core.pipeline.embed import (
        encode_trunk_features,
        mean_per_listing,
        new_task_embeddings,
        pretrained_photo_features,
    )
    from gallery_core.search.whitening import fit_retrieval_whitening
    from gallery_core.training.data import prepare_data
    from gallery_core.vectors import l2_normalise

    cpu = torch.device("cpu")
    model, checkpoint = load_checkpoint(run / "model.pt", device="cpu")
    config = BuildConfig.from_dict(checkpoint["config"])
    data = prepare_data(catalogue, model, config.model, run / "cache", checkpoint["trunk_cache_key"], True, cpu,
                        False, in_memory=True)
    photos = encode_trunk_features(model.encoder, data.trunk_features, cpu, batch_size)  # (P, D)
    sizes = np.diff(data.photo_offsets)
    listing_index = np.repeat(np.arange(len(sizes)), sizes)
    learned = mean_per_listing(photos, listing_index, len(sizes))
    pretrained = mean_per_listing(pretrained_photo_features(config.model, data.trunk_features, cpu, batch_size),
                                  listing_index, len(sizes))
    # The retrieval space: whitening fitted on the training listings' photos, as embed fits it.
    is_train = ~data.catalogue.listings["listing_id"].isin(set(checkpoint["val_listing_ids"])).to_numpy()
    whitening = fit_retrieval_whitening(photos, np.repeat(is_train, sizes), listing_index, config.train.seed,
                                        config.embed)
    return photos, l2_normalise(whitening.transform(learned)), \
        new_task_embeddings(learned, pretrained, config.embed.new_task_features)


def test_streaming_embed_equals_the_in_memory_computation(run_copy, tiny_catalogue):
    catalogue = load_catalogue(tiny_catalogue)
    result = embed(catalogue, run_copy, device="cpu", progress=False, batch_size=8,
                   execution=Execution(chunk_size=16))
    photos, listings, transfer = in_memory_embed(run_copy, catalogue, batch_size=8)
    # Bit for bit: the same batches of the same float16 features, and listing sums added in the same order.
    assert np.array_equal(np.load(run_copy / "photo_embeddings.npy"), photos)
    assert np.array_equal(result.listing_embeddings, listings)
    assert np.array_equal(result.new_task_embeddings, transfer)
    assert result.new_task_embeddings.shape[1] > listings.shape[1]  # the pretrained part is there


def fake_ray_engine(trunk_source: Path, key: str, require=None) -> types.ModuleType:
    """A stand-in for gallery_core.engine.ray_engine that keeps its contract (files, rows, return value)
    but computes in this process, from the run's trunk cache."""
    from gallery_core.config import BuildConfig
    from gallery_core.models.checkpoint import load_checkpoint
    from gallery_core.pipeline.embed import encode_trunk_features, pretrained_photo_features

    module = types.ModuleType("gallery_core.engine.ray_engine")
    module.INSTALL_HINT = "pip install 'gallery-core[distributed]'"
    module.require_ray = require or (lambda: None)
    module.RayOptions = lambda **options: types.SimpleNamespace(**options)
    module.seen = {}

    def ray_photo_embeddings(checkpoint_path, paths, image_size, out_dir, options, with_pretrained, progress=True,
                             chunk_size=None):
        module.seen.update(address=options.address, n_paths=len(paths))
        model, checkpoint = load_checkpoint(checkpoint_path, device="cpu")
        features, bad = cached_trunk_features(trunk_source, key, model.encoder.backbone, paths, image_size,
                                              progress=False)
        out_dir.mkdir(parents=True)
        np.save(out_dir / "photo_embeddings.npy", encode_trunk_features(model.encoder, features,
                                                                         torch.device("cpu"), 8))
        pretrained = None
        if with_pretrained:
            config = BuildConfig.from_dict(checkpoint["config"]).model
            pretrained = out_dir / "photo_pretrained.npy"
            np.save(pretrained, pretrained_photo_features(config, features, torch.device("cpu"), 8))
        return out_dir / "photo_embeddings.npy", pretrained, bad

    module.ray_photo_embeddings = ray_photo_embeddings
    return module


def test_the_ray_engine_path_assembles_the_same_artifacts(two_runs, tiny_catalogue, monkeypatch):
    catalogue = load_catalogue(tiny_catalogue)
    local, ray = two_runs
    from gallery_core.models.checkpoint import load_checkpoint

    key = load_checkpoint(local / "model.pt", device="cpu")[1]["trunk_cache_key"]
    embed(catalogue, local, device="cpu", progress=False, batch_size=8, execution=Execution(chunk_size=16))
    fake = fake_ray_engine(local / "cache", key)
    monkeypatch.setitem(sys.modules, "gallery_core.engine.ray_engine", fake)
    monkeypatch.setattr("gallery_core.engine.ray_engine", fake, raising=False)
    embed(catalogue, ray, device="cpu", progress=False, batch_size=8,
          execution=Execution(engine="ray", ray_address="auto", chunk_size=16))
    assert fake.seen == {"address": "auto", "n_paths": len(catalogue.photos)}
    for name in EMBED_FILES:
        assert (ray / name).read_bytes() == (local / name).read_bytes(), name


def test_the_cli_says_how_to_install_ray(run_copy, tiny_catalogue, monkeypatch, capsys):
    from gallery_core.cli import main

    def no_ray():
        raise UsageError("--engine ray needs Ray: pip install 'gallery-core[distributed]'")

    fake = fake_ray_engine(run_copy / "cache", "unused", require=no_ray)
    monkeypatch.setitem(sys.modules, "gallery_core.engine.ray_engine", fake)
    monkeypatch.setattr("gallery_core.engine.ray_engine", fake, raising=False)
    code = main(["embed", "--catalogue", str(tiny_catalogue), "--out", str(run_copy), "--force", "--quiet",
                 "--engine", "ray"])
    assert code == 2 and "pip install 'gallery-core[distributed]'" in capsys.readouterr().err
    assert main(["embed", "--out", str(run_copy), "--ray-address", "auto", "--quiet"]) == 2
    assert "--ray-address needs --engine ray" in capsys.readouterr().err


def test_the_photos_table_is_read_with_the_columns_needed(tiny_catalogue, tmp_path, monkeypatch):
    import pandas as pd

    from gallery_core.data import tables

    read_csv, seen = pd.read_csv, []

    def recording(*args, **kwargs):
        table = read_csv(*args, **kwargs)
        seen.append(list(table.columns))
        return table

    monkeypatch.setattr(tables.pd, "read_csv", recording)
    assert "kind" in (tiny_catalogue / "photos.csv").read_text().split("\n", 1)[0]  # a column no step needs
    catalogue = load_catalogue(tiny_catalogue)
    assert ["listing_id", "path"] in seen and not any("kind" in columns for columns in seen)
    assert list(catalogue.photos.columns[:2]) == ["listing_id", "path"]

    parquet = Path(tmp_path / "parquet")
    import shutil

    shutil.copytree(tiny_catalogue, parquet)
    pd.read_csv(parquet / "photos.csv").to_parquet(parquet / "photos.parquet")
    (parquet / "photos.csv").unlink()
    from_parquet = load_catalogue(parquet)
    assert [str(Path(p).relative_to(from_parquet.root)) for p in from_parquet.photos["path"]] == \
        [str(Path(p).relative_to(catalogue.root)) for p in catalogue.photos["path"]]
