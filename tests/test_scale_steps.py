"""The steps after embed at scale (issue 12, part 4), on tiny inputs: the index built from a memory-mapped
array in chunks, UMAP fit on a sample, chunked predictions and sampled probes, and opening a run without
re-hashing its files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from annoy import AnnoyIndex
from sklearn.manifold import trustworthiness
from sklearn.model_selection import KFold, cross_val_predict

from gallery_core.artifacts.check import check_run
from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import ArtifactError
from gallery_core.config import IndexConfig, PredictConfig, ProjectionConfig
from gallery_core.data.tasks import TaskSpec
from gallery_core.names import oof_p_recorded_column, oof_pred_column
from gallery_core.pipeline import predict
from gallery_core.pipeline.projection import fit_projection
from gallery_core.search import index as index_module

KIND = TaskSpec("kind", "kind", "multiclass", classes=("hotel", "villa", "hostel", "chalet"))
PRICE = TaskSpec("price", "price", "regression")
# Trustworthiness (k = 10) the sampled map must keep on the clustered set below. Measured there: 0.96 for
# UMAP on all points and for the sampled fit; 0.9 leaves room for numerical noise, while a map that lost
# its neighbourhoods (random coordinates) scores about 0.5.
MIN_TRUSTWORTHINESS = 0.9


def _clusters(n: int = 600, dim: int = 16, k: int = 8, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 points in k Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, dim))).astype(np.float32)


# --- index ---

def test_index_from_a_memmap_in_chunks_is_the_index_built_in_memory(tmp_path, monkeypatch):
    vectors = _clusters(500, 24)
    np.save(tmp_path / "embeddings.npy", vectors)
    memmap = np.load(tmp_path / "embeddings.npy", mmap_mode="r")
    monkeypatch.setattr(index_module, "ADD_CHUNK_ROWS", 64)  # several chunks, the last one partial
    index_module.write_index(memmap, IndexConfig(n_trees=5), tmp_path / "chunked.ann", seed=3)
    # Today's path until this change: every row added from RAM, built in memory, then saved.
    before = AnnoyIndex(24, "angular")
    before.set_seed(3)
    for i, vector in enumerate(vectors):
        before.add_item(i, vector)
    before.build(5, n_jobs=1)
    before.save(str(tmp_path / "in_memory.ann"))
    chunked = index_module.load_index(tmp_path / "chunked.ann", 24)
    for i in range(len(vectors)):
        assert chunked.get_nns_by_item(i, 10) == before.get_nns_by_item(i, 10)
    digest = [hashlib.blake2b((tmp_path / f).read_bytes()).hexdigest() for f in ("chunked.ann", "in_memory.ann")]
    assert digest[0] == digest[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


# --- projection ---

def test_umap_fit_on_a_sample_keeps_neighbourhoods_and_is_deterministic():
    x = _clusters()
    sampled = ProjectionConfig(n_neighbors=10, fit_sample=200, transform_batch=150)
    coords = fit_projection(x, sampled, seed=0)
    assert coords.shape == (600, 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    assert trustworthiness(x, coords, n_neighbors=10) > MIN_TRUSTWORTHINESS
    assert np.array_equal(coords, fit_projection(x, sampled, seed=0))
    random = np.random.default_rng(0).normal(size=(600, 2))
    assert trustworthiness(x, random, n_neighbors=10) < 0.6  # the bound can fail


def test_below_fit_sample_umap_is_fit_on_every_point(monkeypatch):
    import umap

    fitted = []
    original = umap.UMAP.fit
    monkeypatch.setattr(umap.UMAP, "fit", lambda self, x, *a, **k: fitted.append(len(x)) or original(self, x, *a, **k))
    fit_projection(_clusters(100), ProjectionConfig(n_neighbors=5, fit_sample=100), seed=0)
    fit_projection(_clusters(100), ProjectionConfig(n_neighbors=5, fit_sample=40, transform_batch=30), seed=0)
    assert fitted == [100, 40]


# --- predict ---

def test_chunked_predictions_equal_unchunked_on_a_tiny_run(tiny_run, monkeypatch):
    run = Run(tiny_run, verify=False)
    heads = run.model.heads

    def predictions() -> pd.DataFrame:
        return predict.predict_all(heads, heads.tasks, run.listings, run.photo_embeddings,
                                   run.photos["listing_index"].to_numpy(), run.new_task_embeddings,
                                   run.config.predict, seed=0, progress=False)[0]

    whole = predictions()
    monkeypatch.setattr(predict, "CHUNK_LISTINGS", 7)  # 40 listings: 6 chunks, the last one partial
    chunked = predictions()
    pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(whole, run.predictions, check_exact=False, rtol=1e-6)  # what the build wrote


def test_probes_equal_cross_val_predict_and_sample_their_training_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    classes = np.digitize(x[:, 0], [-0.7, 0.0, 0.7]).astype(np.float32)
    classes[::9] = np.nan  # missing labels
    price = x[:, 1] * 3 + rng.normal(size=120)
    config = PredictConfig(oof_folds=4)
    # Today's path before this change: sklearn's cross_val_predict over the labelled listings.
    observed = np.flatnonzero(~np.isnan(classes))
    folds = KFold(n_splits=4, shuffle=True, random_state=0)
    expected = cross_val_predict(predict._Probe(), x[observed], classes[observed].astype(np.int64), cv=folds,
                                 method="predict_proba")
    out = predict.out_of_fold_predictions(KIND, x, classes, config)
    p_recorded = expected[np.arange(len(observed)), classes[observed].astype(np.int64)]
    np.testing.assert_allclose(out[oof_p_recorded_column("kind")][observed], p_recorded, rtol=1e-9)
    assert np.isnan(out[oof_p_recorded_column("kind")][::9]).all()
    ridge = cross_val_predict(predict.Ridge(alpha=1.0), x, price, cv=KFold(4, shuffle=True, random_state=0))
    np.testing.assert_allclose(predict.out_of_fold_predictions(PRICE, x, price, config)[oof_pred_column("price")],
                               ridge, rtol=1e-9)

    sampled = PredictConfig(oof_folds=4, probe_sample=30)
    split = predict.probe_folds(120, sampled, seed=0)
    assert all(len(train) == 30 and not np.isin(train, test).any() for train, test in split)
    assert np.array_equal(np.sort(np.concatenate([test for _, test in split])), np.arange(120))
    out = predict.out_of_fold_predictions(KIND, x, classes, sampled)
    assert np.isfinite(out[oof_p_recorded_column("kind")][observed]).all()
    assert (out[oof_pred_column("kind")][observed] == np.array(KIND.classes, dtype=object)[
        classes[observed].astype(int)]).mean() > 0.45  # the sampled probes still learn (majority class: ~0.26)


# --- opening a run ---

@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Names of the files ``file_checksum`` hashes from now on."""
    import gallery_core.artifacts.store as store

    calls: list[str] = []
    original = store.file_checksum
    monkeypatch.setattr(store, "file_checksum", lambda path: calls.append(Path(path).name) or original(path))
    return calls


def _open_as_the_app_does(root: Path) -> None:
    assert check_run(root).ok
    Run(root, verify="quick")


def test_opening_a_run_again_hashes_nothing(run_copy, hashed):
    _open_as_the_app_does(run_copy)
    assert hashed == []  # the build's own hashes count (record_step settles each file's mtime)
    (run_copy / "cache" / "checksums.json").unlink()  # e.g. a copy made without the cache
    _open_as_the_app_does(run_copy)
    assert len(hashed) == 13  # every file once ...
    hashed.clear()
    _open_as_the_app_does(run_copy)
    assert hashed == []  # ... and not again
    with open(run_copy / "predictions.parquet", "ab") as f:
        f.write(b"tampered")
    assert "predictions.parquet: checksum differs" in " ".join(check_run(run_copy).problems)
    assert hashed == ["predictions.parquet"]
    assert not check_run(run_copy, verify_checksums="full").ok and len(hashed) == 14


# --- NpyRows: the steps after embed read large .npy files with plain reads, not memory maps ---

@pytest.mark.parametrize("gap_bytes", [1, 10**9])  # runs of consecutive rows only / runs cut by the block size
@pytest.mark.parametrize("shape, dtype", [((1000, 7), np.float32), ((300, 3, 2), np.float16), ((5,), np.int64)])
def test_npy_rows_reads_what_np_load_reads(tmp_path, shape, dtype, gap_bytes, monkeypatch):
    array = np.random.default_rng(0).normal(size=shape).astype(dtype)
    np.save(tmp_path / "a.npy", array)
    monkeypatch.setattr(NpyRows, "GATHER_BLOCK_ROWS", 64)  # several reads per gather
    monkeypatch.setattr(NpyRows, "GATHER_GAP_BYTES", gap_bytes)
    rows = NpyRows(tmp_path / "a.npy")
    assert (len(rows), rows.shape, rows.dtype, rows.ndim) == (shape[0], shape, array.dtype, len(shape))
    picks = np.random.default_rng(1).integers(0, shape[0], 200)  # unsorted, with repeats
    mask = np.arange(shape[0]) % 3 == 0
    for key in (slice(10, 250), slice(None), slice(-20, None), slice(5, 5), slice(0, 100, 7), picks, picks[:0],
                mask, 3, -1, [4, 2, 4]):
        np.testing.assert_array_equal(rows[key], array[key])
    np.testing.assert_array_equal(np.asarray(rows), array)
    assert np.asarray(rows, dtype=np.float64).dtype == np.float64
    with pytest.raises(IndexError):
        rows[shape[0]]
    with pytest.raises(IndexError):
        rows[np.array([0, shape[0]])]


def test_npy_rows_refuses_a_truncated_or_object_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((100, 4), np.float32))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with pytest.raises(ArtifactError, match="truncated"):
        NpyRows(tmp_path / "cut.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match="numeric"):
        NpyRows(tmp_path / "obj.npy")


READ_SCRIPT = """
import sys
import numpy as np
from gallery_core.artifacts.npy_rows import NpyRows
path, how = sys.argv[1], sys.argv[2]
rows = NpyRows(path) if how == "reads" else np.load(path, mmap_mode="r")
total = 0.0
for start in range(0, len(rows), 2000):  # a chunk at a time, as predict reads photo embeddings
    total += float(np.asarray(rows[start:start + 2000]).sum())
sample = np.asarray(rows[np.random.default_rng(0).choice(len(rows), 5000, replace=False)])  # as the probes do
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(int(status["VmHWM"].split()[0]) * 1024)
"""


def _peak_rss_reading(path: Path, how: str) -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", READ_SCRIPT, str(path), how], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_reading_a_file_in_chunks_keeps_it_out_of_the_peak_rss(tmp_path):
    # 240 MB of float32 read once in chunks plus a random sample: through a memory map every page read counts
    # in the peak RSS (the 500k predict's 16 GB); through NpyRows only the chunk in hand does.
    n, dim = 60_000, 1000
    with open(tmp_path / "big.npy", "wb") as f:  # written in pieces: the test process itself stays small
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        for start in range(0, n, 5000):
            f.write(np.full((5000, dim), start, np.float32).tobytes())
    file_bytes = n * dim * 4
    baseline = _peak_rss_reading(tmp_path / "big.npy", "reads")
    mapped = _peak_rss_reading(tmp_path / "big.npy", "mmap")
    assert mapped - baseline > file_bytes // 2, "the memory map should have shown the file's pages"
    assert baseline < file_bytes // 2 + 200 * 2**20  # interpreter + numpy (~100 MB) + one chunk, not the file


def test_npy_rows_writes_rows_in_place(tmp_path):
    array = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "a.npy", np.zeros_like(array))
    rows = NpyRows(tmp_path / "a.npy")
    rows[[7, 2, 3, 9]] = array[[7, 2, 3, 9]]  # unsorted: runs 2-3 and 7, 9 written
    rows[0:2] = array[0:2]
    rows[4] = array[4]
    expected = np.zeros_like(array)
    expected[[0, 1, 2, 3, 4, 7, 9]] = array[[0, 1, 2, 3, 4, 7, 9]]
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)
