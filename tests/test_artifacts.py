"""Built runs: round-trip of every artifact, skipping done work, atomic writes, refusing mixed runs."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import ArtifactError, atomic_path, file_checksum, load_manifest
from gallery_core.pipeline.build import run_steps


def test_run_round_trip(tiny_run):
    run = Run(tiny_run)
    n = len(run.listings)
    assert run.listing_embeddings.shape == (n, 16)
    assert np.allclose(np.linalg.norm(run.listing_embeddings, axis=1), 1.0, atol=1e-5)
    assert run.photo_embeddings.shape == (len(run.photos), 16)
    # listing embedding = L2-normalised mean of its photos' embeddings
    photos = run.listing_photos(run.listings["listing_id"].iloc[3])
    mean = np.asarray(run.photo_embeddings[photos["photo_index"].to_numpy()]).mean(0)
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
