"""Where the Ray engine's rows go (``gallery_core.engine.ray_outputs``), without Ray: batches that arrive in
any order, cut across chunks, give the files of a run written whole; a run stopped midway keeps its complete
chunks, and the next computes only the others; a chunk is trusted only when it is complete and was computed
from the same inputs. (tests/test_ray_engine.py stops and resumes a real Ray embed.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gallery_core.engine.ray_outputs import CHUNK_FOLDER, OUTPUTS_RECORD, ChunkFiles, WholeFiles

N, CHUNK = 50, 8  # 7 chunks, the last one short
BAD = {3: "cut short", 17: "not a photo", 49: "too large"}
PATHS = [f"photo-{i:03d}.jpg" for i in range(N)]
IDENTITY = {"checkpoint": "abc", "image_size": 32, "batch_size": 5}


class Stopped(RuntimeError):
    """Stands for a kill in the middle of a run."""


def batches(positions: np.ndarray, seed: int = 0, size: int = 5) -> list[dict[str, np.ndarray]]:
    """The engine's batches for ``positions``, shuffled (Ray returns them in any order): a photo's values are
    a function of its position; the bad photos get zeros and their reason."""
    order = np.random.default_rng(seed).permutation(positions)
    out = []
    for start in range(0, len(order), size):
        index = order[start:start + size].astype(np.int64)
        good = np.array([i not in BAD for i in index])
        out.append({"index": index, "reason": np.array([BAD.get(int(i), "") for i in index], dtype=object),
                    "embedding": (index[:, None] * np.arange(1, 4) * good[:, None]).astype(np.float32),
                    "pretrained": (index[:, None, None] * np.ones((1, 2, 2)) * good[:, None, None]).astype(np.float16)})
    return out


def outputs(folder: Path) -> dict[str, Path]:
    return {"embedding": folder / "photo_embeddings.npy", "pretrained": folder / "photo_pretrained.npy"}


def run(sink: ChunkFiles | WholeFiles, seed: int = 0, stop_after_chunks: int | None = None) -> dict[int, str]:
    """Put the batches of ``sink.todo`` into ``sink`` and finish it; or stop (``Stopped``) once that many
    chunks are complete."""
    with sink:
        for batch in batches(sink.todo, seed):
            sink.put(batch)
            if stop_after_chunks is not None and len(sink.records) >= stop_after_chunks:
                raise Stopped
        return sink.finish()


@pytest.fixture
def whole(tmp_path) -> dict[str, np.ndarray]:
    files = outputs(tmp_path / "whole")
    assert run(WholeFiles(files, N)) == BAD
    return {name: np.load(path) for name, path in files.items()}


def test_chunk_files_give_the_whole_files(whole, tmp_path):
    files = outputs(tmp_path / "chunked")
    assert run(ChunkFiles(files, PATHS, CHUNK, IDENTITY), seed=1) == BAD
    for name, path in files.items():
        got = np.load(path)
        assert got.dtype == whole[name].dtype and got.tobytes() == whole[name].tobytes(), name
    assert len(whole["embedding"]) == N - len(BAD)
    # the chunks are gone, the record of the complete outputs is there
    assert sorted(p.name for p in (tmp_path / "chunked").iterdir()) == sorted(
        [OUTPUTS_RECORD, "photo_embeddings.npy", "photo_pretrained.npy"])


def test_a_stopped_run_keeps_its_complete_chunks_and_the_next_computes_the_rest(whole, tmp_path):
    files = outputs(tmp_path / "out")
    with pytest.raises(Stopped):
        run(ChunkFiles(files, PATHS, CHUNK, IDENTITY), stop_after_chunks=3)
    folder = tmp_path / "out" / CHUNK_FOLDER
    done = sorted(int(p.name[6:12]) for p in folder.glob("chunk-*.json"))
    assert len(done) == 3
    assert not list(folder.glob(".*.tmp"))  # the unfinished chunks' temporary files are removed
    assert not any(path.exists() for path in files.values())  # no output before every chunk is there

    resumed = ChunkFiles(files, PATHS, CHUNK, IDENTITY)
    expected_todo = [i for i in range(N) if i // CHUNK not in done]
    assert resumed.todo.tolist() == expected_todo  # the complete chunks are not computed again
    assert run(resumed, seed=2) == BAD
    for name, path in files.items():
        assert np.load(path).tobytes() == whole[name].tobytes(), name

    again = ChunkFiles(files, PATHS, CHUNK, IDENTITY)  # e.g. embed stopped later, after the engine's part
    assert len(again.todo) == 0 and run(again) == BAD


def stopped_run(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    """Every chunk complete, stopped before the outputs were written."""
    files = outputs(tmp_path / "out")
    with pytest.raises(Stopped):
        run(ChunkFiles(files, PATHS, CHUNK, IDENTITY), stop_after_chunks=7)
    return files, tmp_path / "out" / CHUNK_FOLDER


def test_a_chunk_is_trusted_only_when_complete_and_from_the_same_inputs(whole, tmp_path):
    files, folder = stopped_run(tmp_path)
    assert len(ChunkFiles(files, PATHS, CHUNK, IDENTITY).todo) == 0
    # another model, other settings, other photos, other chunks: every chunk again
    assert len(ChunkFiles(files, PATHS, CHUNK, IDENTITY | {"checkpoint": "def"}).todo) == N
    assert len(ChunkFiles(files, PATHS, CHUNK, IDENTITY | {"batch_size": 6}).todo) == N
    assert len(ChunkFiles(files, PATHS, CHUNK + 1, IDENTITY).todo) == N
    other_photo = PATHS[:20] + ["elsewhere.jpg"] + PATHS[21:]
    assert ChunkFiles(files, other_photo, CHUNK, IDENTITY).todo.tolist() == list(range(16, 24))
    assert len(ChunkFiles({"embedding": files["embedding"]}, PATHS, CHUNK, IDENTITY).todo) == N  # other columns

    # A file cut short (as a full disk leaves it), a file gone, a record gone, a record that is not JSON:
    # those chunks again, and only those.
    cut = folder / "chunk-000001.embedding.npy"
    cut.write_bytes(cut.read_bytes()[:-4])
    (folder / "chunk-000002.pretrained.npy").unlink()
    (folder / "chunk-000004.json").unlink()
    (folder / "chunk-000005.json").write_text("{")
    stale = folder / ".chunk-000003.embedding.npy.x1y2.tmp"  # what a killed run leaves
    stale.write_bytes(b"partial")
    resumed = ChunkFiles(files, PATHS, CHUNK, IDENTITY)
    assert sorted(set((resumed.todo // CHUNK).tolist())) == [1, 2, 4, 5]
    assert run(resumed, seed=3) == BAD
    assert not stale.exists()
    for name, path in files.items():
        assert np.load(path).tobytes() == whole[name].tobytes(), name


def test_complete_outputs_are_trusted_only_while_they_are_whole(tmp_path):
    files = outputs(tmp_path / "out")
    run(ChunkFiles(files, PATHS, CHUNK, IDENTITY))
    record = json.loads((tmp_path / "out" / OUTPUTS_RECORD).read_text())
    assert record["bad"] == {str(i): r for i, r in BAD.items()} and record["photos"] == N
    files["pretrained"].unlink()  # e.g. moved away by the step, which then stopped
    assert len(ChunkFiles(files, PATHS, CHUNK, IDENTITY).todo) == N
    assert len(ChunkFiles(outputs(tmp_path / "out"), PATHS, CHUNK, IDENTITY | {"image_size": 64}).todo) == N
