"""Built runs: round-trip of every artifact, skipping done work, atomic writes, refusing mixed runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import FILE_NAMES, ArtifactError, atomic_path, file_checksum, load_manifest
from gallery_core.pipeline.build import run_steps


def test_run_round_trip(tiny_run):
    run = Run(tiny_run)
    n = len(run.listings)
    assert run.listing_embeddings.shape == (n, 16)
    assert np.allclose(np.linalg.norm(run.listing_embeddings, axis=1), 1.0, atol=1e-5)
    assert run.photo_embeddings.shape == (len(run.photos), 16)
    # listing embedding = L2-normalised mean of its photos' embeddings, in the whitened retrieval space
    photos = run.listing_photos(run.listings["listing_id"].iloc[3])
    mean = run.retrieval_vectors(np.asarray(run.photo_embeddings[photos["photo_index"].to_numpy()]).mean(0))
    assert np.allclose(mean / np.linalg.norm(mean), run.listing_embeddings[3], atol=1e-5)
    assert list(run.coordinates["listing_id"]) == list(run.listings["listing_id"])
    assert np.isfinite(run.coordinates[["x", "y"]].to_numpy()).all()
    assert list(run.predictions["listing_id"]) == list(run.listings["listing_id"])
    for task in run.tasks:
        assert task.name in run.metrics["tasks"]
        assert f"{task.name}__oof_pred" in run.predictions.columns
    assert run.predictions["pool__prob"].between(0, 1).all()
    assert set(run.listings["split"]) == {"train", "val"}
    manifest = run.manifest
    assert manifest["backbone"]["name"] == "efficientnet_lite0"
    assert "efficientnet-lite0" in manifest["backbone"]["weight_source"]
    assert manifest["catalogue"]["fingerprint"] and manifest["packages"]["torch"]
    assert all(record["checksum"] for record in manifest["files"].values())


def test_rebuild_skips_work_already_done(tiny_run, tiny_catalogue, caplog):
    caplog.set_level(logging.INFO, logger="gallery_core")
    before = (tiny_run / "manifest.json").read_text()
    run_steps(tiny_run, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    lines = caplog.messages
    assert sum("up to date, skipped" in line for line in lines) == 5
    assert json.loads(before)["steps"] == json.loads((tiny_run / "manifest.json").read_text())["steps"]


def test_changing_a_step_config_reruns_only_that_step_and_later(run_copy, tiny_catalogue, caplog):
    caplog.set_level(logging.INFO, logger="gallery_core")
    config = tiny_config()
    config.index.n_trees = 7
    run_steps(run_copy, catalogue_dir=tiny_catalogue, config=config, progress=False)
    lines = caplog.messages
    ran = [line.split("]")[0].strip("[") for line in lines if line.endswith("running")]
    assert ran == ["index"]


def test_a_file_from_another_run_is_refused(run_copy, tmp_path):
    other = Run(run_copy)
    fake = np.asarray(other.listing_embeddings)[::-1].copy()
    np.save(run_copy / "listing_embeddings.npy", fake)
    with pytest.raises(ArtifactError, match="listing_embeddings.npy: checksum differs"):
        load_manifest(run_copy)


def test_steps_built_from_different_inputs_are_refused(run_copy):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["steps"]["index"]["inputs"]["listing_embeddings.npy"] = "0" * 32  # index built from other vectors
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="step 'index' was built from a different listing_embeddings.npy"):
        Run(run_copy)


def test_missing_file_and_missing_manifest(run_copy, tmp_path):
    (run_copy / "index.ann").unlink()
    with pytest.raises(ArtifactError, match="index.ann: missing"):
        Run(run_copy)
    with pytest.raises(ArtifactError, match="no manifest.json; build the run"):
        Run(tmp_path)


def test_schema_version_mismatch_is_refused(run_copy):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["schema_version"] = 999
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="schema version 999"):
        Run(run_copy)


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(target)
    checksum = file_checksum(target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed mid-write")
    assert file_checksum(target) == checksum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.parquet"]


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # readable by a server running as another user


@pytest.mark.parametrize("cache_trunk", [True, False])
def test_undecodable_photo_is_skipped_and_reported(catalogue_copy, tmp_path, cache_trunk):
    photos = pd.read_csv(catalogue_copy / "photos.csv")
    bad = catalogue_copy / photos["path"].iloc[0]
    bad.write_bytes(b"this is not a jpeg")
    truncated = catalogue_copy / photos["path"].iloc[1]
    truncated.write_bytes(truncated.read_bytes()[:40])
    out = tmp_path / "run"
    run_steps(out, steps=("train", "embed"), catalogue_dir=catalogue_copy, config=tiny_config(max_epochs=1, cache_trunk=cache_trunk),
              progress=False)
    report = json.loads((out / "catalogue_report.json").read_text())
    assert report["n_skipped_photos"] == 2
    assert {p["path"] for p in report["skipped_photos"]} == {str(bad), str(truncated)}
    assert all("cannot decode" in p["reason"] for p in report["skipped_photos"])
    table = pd.read_parquet(out / "photos.parquet")
    assert str(bad) not in set(table["path"]) and len(table) == len(photos) - 2
    shutil.rmtree(out)


# --- the build repairs what loading refuses ---

def _ran(caplog) -> list[str]:
    return [line.split("]")[0].strip("[") for line in caplog.messages if line.endswith("running")]


def _assert_repaired(run_dir, caplog, manifest, step):
    """``step`` ran again and the run loads; on the CPU, where a step gives the same bytes again, nothing
    else ran and every file is the one recorded before the damage."""
    ran = _ran(caplog)
    assert ran[0] == step
    Run(run_dir)
    if not torch.cuda.is_available():
        assert ran == [step] and load_manifest(run_dir)["files"] == manifest["files"]


def test_build_redoes_a_step_whose_file_was_changed(run_copy, tiny_catalogue, caplog):
    manifest = load_manifest(run_copy)
    path = run_copy / "listing_embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one flipped bit in the last vector, same size
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="listing_embeddings.npy: checksum differs"):
        load_manifest(run_copy)
    caplog.set_level(logging.INFO, logger="gallery_core")
    run_steps(run_copy, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    assert any("redoing the step" in line and "checksum differs" in line for line in caplog.messages)
    _assert_repaired(run_copy, caplog, manifest, "embed")


def test_build_redoes_a_step_whose_file_comes_from_another_run(run_copy, tiny_catalogue, caplog):
    manifest = load_manifest(run_copy)
    path = run_copy / "photo_embeddings.npy"
    size = path.stat().st_size
    np.save(path, np.load(path)[::-1])  # another run's embeddings of the same photos: the same size
    assert path.stat().st_size == size
    caplog.set_level(logging.INFO, logger="gallery_core")
    run_steps(run_copy, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    _assert_repaired(run_copy, caplog, manifest, "embed")


def test_a_no_op_build_hashes_each_file_once(run_copy, tiny_catalogue, monkeypatch):
    import gallery_core.artifacts.store as store

    monkeypatch.setattr(store, "_RACY_NS", 0)  # files just written count as settled
    hashed = []
    original = store.file_checksum
    monkeypatch.setattr(store, "file_checksum", lambda path: hashed.append(Path(path).name) or original(path))
    for _ in range(2):
        run_steps(run_copy, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    # The fixture's build recorded every file's checksum in the cache (and the copy kept the mtimes).
    assert hashed == [] and set(json.loads((run_copy / "cache" / "checksums.json").read_text())) == set(FILE_NAMES.values())


def test_the_resume_file_is_removed_only_after_the_manifest_records_training(tiny_catalogue, tmp_path, monkeypatch,
                                                                             caplog):
    import gallery_core.pipeline.build as build

    original = build.record_step

    def record_then_die(root, step, *args, **kwargs):
        original(root, step, *args, **kwargs)
        assert (root / "last.pt").exists()  # a kill before this point must still find it
        raise KeyboardInterrupt  # a kill between recording the step and removing last.pt

    monkeypatch.setattr(build, "record_step", record_then_die)
    out, config = tmp_path / "run", tiny_config(max_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        run_steps(out, steps=("train",), catalogue_dir=tiny_catalogue, config=config, progress=False)
    monkeypatch.undo()
    assert (out / "last.pt").exists()
    caplog.set_level(logging.INFO, logger="gallery_core")
    run_steps(out, steps=("train",), catalogue_dir=tiny_catalogue, config=config, progress=False)
    assert "[train] up to date, skipped" in caplog.messages and not (out / "last.pt").exists()


def test_a_file_changed_without_a_new_mtime_is_caught_by_loading_then_rebuilt(run_copy, tiny_catalogue, caplog,
                                                                              monkeypatch):
    import gallery_core.artifacts.store as store

    monkeypatch.setattr(store, "_RACY_NS", 0)  # the cache trusts every entry: only loading can tell
    path = run_copy / "index.ann"
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a tool that keeps the mtime (or bit rot)
    with pytest.raises(ArtifactError, match="index.ann: checksum differs"):
        Run(run_copy)  # loading always hashes, and tells the cache
    caplog.set_level(logging.INFO, logger="gallery_core")
    run_steps(run_copy, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    assert _ran(caplog) == ["index"]
    Run(run_copy)


@pytest.mark.parametrize("content", ['{"schema_version": 1, "steps": {"tr', "", "[]"])
def test_an_unreadable_manifest_says_how_to_recover(run_copy, content):
    (run_copy / "manifest.json").write_text(content)
    with pytest.raises(ArtifactError, match=r"manifest.json: not (valid JSON \(truncated|a gallery-core manifest).*--force"):
        Run(run_copy)
    with pytest.raises(ArtifactError, match="--force"):
        run_steps(run_copy, steps=("index",), progress=False)


def test_build_force_sets_an_unreadable_manifest_aside(run_copy, caplog):
    (run_copy / "manifest.json").write_text('{"schema_version": 1, "steps": {"tr')
    caplog.set_level(logging.INFO, logger="gallery_core")
    manifest = run_steps(run_copy, steps=("index",), force=True, progress=False)
    assert _ran(caplog) == ["index"] and set(manifest["steps"]) == {"index"}
    assert (run_copy / "manifest.json.unreadable").read_text().startswith('{"schema_version": 1')
