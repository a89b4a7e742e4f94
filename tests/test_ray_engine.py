"""The Ray engine (issue 12, part 3) gives the numbers of the single-process path, on a local Ray instance
started here with 2 CPUs; bad photos are reported, and no output appears unless it is complete."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gallery_core.cli import main
from gallery_core.config import BuildConfig
from gallery_core.data.photos import compute_trunk_features
from gallery_core.engine import ray_engine, ray_outputs
from gallery_core.engine.cpu_runtime import row_cosines
from gallery_core.engine.ray_engine import RayOptions, ray_photo_embeddings, ray_trunk_features
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.pipeline.embed import pretrained_photo_features

ray = pytest.importorskip("ray")

OPTIONS = RayOptions(batch_size=8)  # several batches (and blocks) even on a tiny catalogue


@pytest.fixture(scope="module", autouse=True)
def _ray_stopped_at_the_end():
    # The workers pickle what this module defines by value: they cannot import the tests folder.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture
def local_ray():
    """A local Ray instance, started once for the tests that share it: 2 CPUs, no dashboard, the workers'
    logs kept out of the tests' output."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture(scope="module")
def photo_paths(tiny_run) -> list[str]:
    """The tiny run's photos, in its order (the catalogue's photos that decode)."""
    return pd.read_parquet(tiny_run / "photos.parquet")["path"].tolist()


@pytest.fixture
def with_bad_photo(photo_paths, tmp_path) -> tuple[list[str], int]:
    """30 of the run's photos with a photo cut short in the middle, and its position."""
    bad = tmp_path / "cut-short.jpg"
    bad.write_bytes(Path(photo_paths[0]).read_bytes()[:200])
    paths = list(photo_paths[:30])
    paths.insert(11, str(bad))
    return paths, 11


def test_trunk_features_equal_the_single_process_ones(with_bad_photo, tmp_path):
    """On a local Ray instance that the engine starts and stops itself (as `--engine ray` without an address)."""
    ray.shutdown()
    paths, bad_position = with_bad_photo
    backbone = create_backbone("efficientnet_lite0", trainable_stages=2)
    expected, expected_bad = compute_trunk_features(backbone, paths, 32, batch_size=8, progress=False)
    out = tmp_path / "out" / "trunk.npy"

    bad = ray_trunk_features("efficientnet_lite0", 2, None, paths, 32, out, RayOptions(batch_size=8, num_cpus=2),
                             progress=False)

    assert not ray.is_initialized()  # stopped again
    assert bad == expected_bad and list(bad) == [bad_position]
    assert "cut-short.jpg" in bad[bad_position]
    got = np.load(out)
    assert got.dtype == np.float16 and got.shape == expected.shape == (len(paths) - 1, *expected.shape[1:])
    # The same float32 features rounded to float16. Where the float32 sums differ in their last bits (the
    # actor runs one thread, and batches hold other photos than here: the good photos of a decoded batch),
    # a value can round to the neighbouring float16, one step (2**-10 relative) away: <1% of them, seen here.
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-4)
    assert (got == expected).mean() > 0.98
    assert [p.name for p in out.parent.iterdir()] == ["trunk.npy"]  # no temporary file left


def test_photo_embeddings_equal_the_runs_own(local_ray, tiny_run, photo_paths, tmp_path):
    """The Ray path gives the embeddings the local embed step wrote, and the pretrained features that
    ``pretrained_photo_features`` computes from the run's trunk cache, to 1e-5: the first 64 photos, one
    batch of 64 as in the run's trunk pass, so that the same float16 trunk features enter the top stages
    (other batches can flip a trunk value to the neighbouring float16 and move an embedding by ~4e-5)."""
    _, checkpoint = load_checkpoint(tiny_run / "model.pt")
    config = BuildConfig.from_dict(checkpoint["config"])
    paths = photo_paths[:64]

    emb_path, pre_path, bad = ray_photo_embeddings(tiny_run / "model.pt", paths, config.model.image_size,
                                                   tmp_path, RayOptions(batch_size=64), with_pretrained=True,
                                                   progress=False)

    assert bad == {}
    assert (emb_path, pre_path) == (tmp_path / "photo_embeddings.npy", tmp_path / "photo_pretrained.npy")
    expected = np.load(tiny_run / "photo_embeddings.npy")[:64]
    got = np.load(emb_path)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    trunk_cache = np.load(tiny_run / "cache" / f"trunk-{checkpoint['trunk_cache_key']}.npy")
    expected_pretrained = pretrained_photo_features(config.model, trunk_cache[:64])
    got_pretrained = np.load(pre_path)
    assert got_pretrained.dtype == np.float32 and got_pretrained.shape == expected_pretrained.shape
    np.testing.assert_allclose(got_pretrained, expected_pretrained, atol=1e-5, rtol=0)


def test_actors_that_decode_the_bytes_give_the_embeddings_of_the_decoding_tasks(local_ray, tiny_run, photo_paths,
                                                                                 tmp_path):
    """What the engine does when its actors have a GPU: the tasks only read the files and the actors decode the
    bytes (here with decode_jpeg on the CPU device): the embeddings of the pixel path, to the JPEG decoders'
    rounding."""
    _, checkpoint = load_checkpoint(tiny_run / "model.pt")
    size = BuildConfig.from_dict(checkpoint["config"]).model.image_size
    paths = photo_paths[:32]
    results = {}
    for name, bytes_to_actors in (("pixels", False), ("bytes", True)):
        embeddings, _, bad = ray_photo_embeddings(tiny_run / "model.pt", paths, size, tmp_path / name,
                                                  RayOptions(batch_size=16, bytes_to_actors=bytes_to_actors),
                                                  with_pretrained=False, progress=False)
        assert bad == {}
        results[name] = torch.from_numpy(np.load(embeddings))
    assert results["bytes"].shape == results["pixels"].shape == (32, results["pixels"].shape[1])
    assert float(row_cosines(results["bytes"], results["pixels"]).min()) >= 0.99


class _FailsOnItsSecondBatch(ray_engine._PhotoEmbedder):
    """The real actor, failing on its second batch."""

    batches_done = 0

    def __call__(self, batch):
        if self.batches_done:
            raise RuntimeError("an actor fails")
        self.batches_done += 1
        return super().__call__(batch)


def test_an_error_in_an_actor_leaves_no_output(local_ray, tiny_run, photo_paths, tmp_path):
    out = tmp_path / "out"
    kwargs = {"checkpoint_path": str(tiny_run / "model.pt"), "with_pretrained": False, "batch_size": 8}
    with pytest.raises(Exception, match="an actor fails"):
        ray_engine._run(_FailsOnItsSecondBatch, kwargs, photo_paths[:64], 32,
                        {"embedding": out / "photo_embeddings.npy"}, OPTIONS, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


class _StopsAfterOneBatch:
    """A progress bar that stops the run (as Ctrl-C would) once the first batch's rows are written."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        raise KeyboardInterrupt


def test_a_run_stopped_midway_leaves_no_output(local_ray, tiny_run, photo_paths, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_engine, "tqdm", _StopsAfterOneBatch)
    with pytest.raises(KeyboardInterrupt):
        ray_photo_embeddings(tiny_run / "model.pt", photo_paths[:16], 32, tmp_path / "out", OPTIONS,
                             with_pretrained=True, progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # the temporary files, written into, are gone


def test_a_bad_checkpoint_is_refused_before_ray_starts(tmp_path):
    with pytest.raises(UsageError, match="no such checkpoint"):
        ray_photo_embeddings(tmp_path / "missing.pt", ["a.jpg"], 32, tmp_path, OPTIONS, with_pretrained=False)
    with pytest.raises(UsageError, match="no photos"):
        ray_trunk_features("efficientnet_lite0", 2, None, [], 32, tmp_path / "t.npy", OPTIONS)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    with pytest.raises(UsageError, match=r"pip install 'gallery-core\[distributed\]'") as err:
        ray_engine.require_ray()
    assert "\n" not in str(err.value)


def test_embed_with_the_ray_engine_without_ray_says_how_to_install_it(run_copy, tiny_catalogue, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["embed", "--catalogue", str(tiny_catalogue), "--out", str(run_copy), "--engine", "ray",
                 "--force", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "pip install 'gallery-core[distributed]'" in err


def test_compaction_keeps_the_good_rows_in_order(tmp_path, monkeypatch):
    """The end of every run with bad photos: rows moved up over the bad ones, the file cut to its shape."""
    path = tmp_path / "rows.npy"
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(1000, 3, 2))  # 12 bytes a row
    rows[:] = np.arange(1000, dtype=np.float16).reshape(-1, 1, 1)
    del rows
    is_good = np.ones(1000, dtype=bool)
    is_good[[0, 5, 6, 999]] = False
    monkeypatch.setattr(ray_outputs, "COPY_CHUNK_BYTES", 7 * 12)  # 7 rows a chunk: moves cross chunks

    ray_outputs.compact(path, is_good)

    got = np.load(path, mmap_mode="r")
    assert got.shape == (996, 3, 2)
    np.testing.assert_array_equal(got[:, 0, 0], np.arange(1000, dtype=np.float16)[is_good])
    assert path.stat().st_size == got.offset + 996 * 12  # cut: nothing after the last row


def test_the_training_trunk_cache_by_the_ray_engine(local_ray, tiny_catalogue, tmp_path):
    """`train --engine ray`: a missing trunk cache is written by the Ray engine, with its index, and reads back
    as the features the single-process pass computes (to one float16 step)."""
    import torch

    from gallery_core.config import ModelConfig
    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.data.photos import trunk_cache_key
    from gallery_core.engine.execution import Execution
    from gallery_core.models.checkpoint import build_model
    from gallery_core.training.data import prepare_data

    catalogue = load_catalogue(tiny_catalogue)
    config = ModelConfig(image_size=32)
    model = build_model(config, catalogue.tasks)
    key = trunk_cache_key(catalogue.fingerprint, model.encoder.backbone, 32)
    data = prepare_data(catalogue, model, config, tmp_path / "cache", key, use_cache=True,
                        device=torch.device("cpu"), progress=False, in_memory=False,
                        execution=Execution(engine="ray", ray_batch_size=16))
    assert (tmp_path / "cache" / f"trunk-{key}.json").is_file()
    expected, bad = compute_trunk_features(model.encoder.backbone, catalogue.photos["path"].tolist(), 32,
                                           batch_size=16, progress=False)
    got = np.asarray(data.trunk_features, dtype=np.float32)
    assert len(data.catalogue.photos) == len(catalogue.photos) - len(bad) == len(got)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=2 ** -9, atol=1e-3)


class _Stopped(RuntimeError):
    """Stands for a kill in the middle of a run."""


def test_an_interrupted_ray_embed_resumes_from_its_chunks(local_ray, tiny_run, tiny_catalogue, tmp_path,
                                                         monkeypatch):
    """Stopped right after Ray's second complete chunk (its record written, as the crash-resume tests stop
    right after an atomic write), the embed resumes: Ray computes only the photos of the other chunks, and the
    run ends with the files of an uninterrupted Ray embed, byte for byte."""
    import shutil

    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.engine.execution import Execution
    from gallery_core.pipeline.embed import embed

    catalogue = load_catalogue(tiny_catalogue)
    whole, resumed = (Path(shutil.copytree(tiny_run, tmp_path / name)) for name in ("whole", "resumed"))
    chunk = 10  # not whole Ray batches: the resumed run's batches are cut elsewhere (see _PhotoEmbedder.compute)
    options = {"device": "cpu", "progress": False, "batch_size": 8,
               "execution": Execution(engine="ray", ray_batch_size=8, chunk_size=chunk)}
    n_chunks = -(-len(catalogue.photos) // chunk)
    assert n_chunks >= 4
    embed(catalogue, whole, **options)

    computed: list[np.ndarray] = []  # the photo positions each run hands to Ray
    compute = ray_engine._compute

    def recording(stage, stage_kwargs, paths, sink, *args):
        computed.append(sink.todo.copy())
        return compute(stage, stage_kwargs, paths, sink, *args)

    monkeypatch.setattr(ray_engine, "_compute", recording)
    write_json, records = ray_outputs.write_json, []

    def write_then_stop(path, data):
        write_json(path, data)
        if path.name.startswith("chunk-"):
            records.append(path)
            if len(records) == 2:
                raise _Stopped

    monkeypatch.setattr(ray_outputs, "write_json", write_then_stop)
    with pytest.raises(_Stopped):
        embed(catalogue, resumed, **options)
    chunks = resumed / "cache" / "embed-work" / "ray" / "chunks"
    done = sorted(int(p.name[6:12]) for p in chunks.glob("chunk-*.json"))
    assert len(done) == 2 and not list(chunks.glob(".*.tmp"))

    monkeypatch.setattr(ray_outputs, "write_json", write_json)
    embed(catalogue, resumed, **options)
    assert len(computed) == 2 and len(computed[0]) == len(catalogue.photos)
    assert set((computed[1] // chunk).tolist()) == set(range(n_chunks)) - set(done)  # the done chunks: skipped
    for name in ("photo_embeddings.npy", "listing_embeddings.npy", "new_task_embeddings.npy", "photos.parquet",
                 "listings.parquet"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    assert not (resumed / "cache" / "embed-work").exists()
