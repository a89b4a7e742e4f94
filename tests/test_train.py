"""Training: it lowers the loss, is deterministic for a seed, resumes, and writes a self-describing checkpoint."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import tiny_config

from gallery_core.data.catalogue import load_catalogue
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.training.data import split_listings
from gallery_core.training.loop import train


def _train(catalogue_dir, run_dir, **overrides):
    return train(load_catalogue(catalogue_dir), tiny_config(**overrides), run_dir, progress=False)


def test_training_lowers_the_loss(tiny_catalogue, tmp_path):
    result = _train(tiny_catalogue, tmp_path / "run", max_epochs=6, lr=3e-3)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == list(range(1, 7))
    assert set(log[0]["task_weights"]) == set(log[0]["val_task_losses"])  # per-task losses and weights logged


def test_checkpoint_loads_with_weights_only_and_carries_its_config(tiny_catalogue, tmp_path):
    _train(tiny_catalogue, tmp_path / "run", max_epochs=1)
    raw = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert raw["config"]["model"]["embed_dim"] == 16
    assert {t["name"] for t in raw["tasks"]} >= {"pool", "price", "country"}
    assert raw["val_listing_ids"] and not (tmp_path / "run" / "last.pt").exists()
    model, checkpoint = load_checkpoint(tmp_path / "run" / "model.pt")
    assert model.encoder.embed_dim == 16
    assert checkpoint["backbone"]["weight_source"].startswith(str(raw["backbone"]["weight_source"])[:10])


def test_deterministic_for_a_seed(tiny_catalogue, tmp_path):
    a = _train(tiny_catalogue, tmp_path / "a", max_epochs=2)
    b = _train(tiny_catalogue, tmp_path / "b", max_epochs=2)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_catalogue, tmp_path, monkeypatch, caplog):
    full = _train(tiny_catalogue, tmp_path / "full", max_epochs=3)

    # Interrupt a 3-epoch run (as Ctrl-C or a lost machine would) right after epoch 2's resume file is saved.
    # train looks save_checkpoint (gallery_core.models.checkpoint) up in its own module: patch it there.
    import gallery_core.training.loop as train_module

    original_save = train_module.save_checkpoint
    saved = []

    def save_then_interrupt(path, payload):
        original_save(path, payload)
        if path.name == "last.pt":
            saved.append(payload["epoch"])
            if payload["epoch"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_catalogue, tmp_path / "resumed", max_epochs=3)
    monkeypatch.setattr(train_module, "save_checkpoint", original_save)
    assert saved == [1, 2] and (tmp_path / "resumed" / "last.pt").exists()

    caplog.set_level(logging.INFO, logger="gallery_core")
    caplog.clear()
    resumed = train(load_catalogue(tiny_catalogue), tiny_config(max_epochs=3), tmp_path / "resumed",
                    progress=False)
    lines = caplog.messages
    assert any("resuming after epoch 2" in line for line in lines)
    assert sum(line.startswith("epoch") for line in lines) == 1  # only epoch 3 ran again
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history],
                                                                       rel=1e-5)


def test_split_is_by_listing_and_seeded():
    ids = [f"L{i}" for i in range(100)]
    a, b = split_listings(ids, 0.1, seed=3), split_listings(ids, 0.1, seed=3)
    assert a.sum() == 10 and np.array_equal(a, b)
    assert not np.array_equal(a, split_listings(ids, 0.1, seed=4))


def test_a_subset_reuses_the_parents_trunk_cache(tiny_catalogue, tmp_path, monkeypatch):
    import gallery_core.data.photos as photos_module

    catalogue = load_catalogue(tiny_catalogue)
    train(catalogue, tiny_config(max_epochs=1), tmp_path / "full", progress=False)

    def no_recompute(*args, **kwargs):
        raise AssertionError("the trunk was recomputed although the cache covers the subset")

    monkeypatch.setattr(photos_module, "compute_trunk_features", no_recompute)
    half = catalogue.subset(catalogue.listings["listing_id"].iloc[::2])
    result = train(half, tiny_config(max_epochs=1), tmp_path / "half", progress=False,
                   cache_dir=tmp_path / "full" / "cache")
    assert len(result.catalogue.listings) == 20
