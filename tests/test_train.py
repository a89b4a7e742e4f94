"""Training: it lowers the loss, is deterministic for a seed, resumes, and writes a self-describing checkpoint."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import tiny_config

from gallery_core.artifacts.store import file_checksum
from gallery_core.data.catalogue import load_catalogue
from gallery_core.models.checkpoint import load_checkpoint, save_checkpoint
from gallery_core.training.data import split_listings
from gallery_core.training.loop import train


def _train(catalogue_dir, run_dir, **overrides):
    # On the CPU whatever the machine has: that is where training is exactly reproducible.
    return train(load_catalogue(catalogue_dir), tiny_config(**overrides), run_dir, device="cpu", progress=False)


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


def _interrupt_after_epoch(catalogue_dir, run_dir, monkeypatch, epoch, **overrides):
    """Train, interrupting (as Ctrl-C or a lost machine would) right after ``epoch``'s resume file is saved."""
    # train looks save_checkpoint (gallery_core.models.checkpoint) up in its own module: patch it there.
    import gallery_core.training.loop as train_module

    original_save = train_module.save_checkpoint
    saved = []

    def save_then_interrupt(path, payload):
        original_save(path, payload)
        if path.name == "last.pt":
            saved.append(payload["epoch"])
            if payload["epoch"] == epoch:
                raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_checkpoint", save_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            _train(catalogue_dir, run_dir, **overrides)
    assert saved == list(range(1, epoch + 1)) and (run_dir / "last.pt").exists()


# The attribute heads alone, with the gallery-completion objective that the product trains by default (its halves
# are drawn from a generator seeded by the epoch, so a resumed epoch deals them as the uninterrupted one), and with
# the spread objective too (its memory of listing embeddings starts empty every epoch).
@pytest.mark.parametrize("objectives", [{"completion_weight": 0.0}, {"completion_weight": 1.0},
                                        {"completion_weight": 1.0, "spread_weight": 1.0}])
def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_catalogue, tmp_path, monkeypatch, caplog,
                                                                objectives):
    full = _train(tiny_catalogue, tmp_path / "full", max_epochs=3, **objectives)
    _interrupt_after_epoch(tiny_catalogue, tmp_path / "resumed", monkeypatch, epoch=2, max_epochs=3, **objectives)
    saved = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert set(saved["rng"]) >= {"torch", "numpy", "python", "batch_order"}

    caplog.set_level(logging.INFO, logger="gallery_core")
    caplog.clear()
    resumed = _train(tiny_catalogue, tmp_path / "resumed", max_epochs=3, **objectives)
    lines = caplog.messages
    assert any("resuming after epoch 2" in line for line in lines)
    assert sum(line.startswith("epoch") for line in lines) == 1  # only epoch 3 ran again
    # Exact on the CPU: the same losses, the same weights, the same files byte for byte.
    assert resumed.history == full.history and len(resumed.epoch_seconds) == 3
    for name in ("model.pt", "train_log.jsonl"):
        assert file_checksum(tmp_path / "resumed" / name) == file_checksum(tmp_path / "full" / name), name
    assert not (tmp_path / "resumed" / "last.pt").exists()


def test_a_run_that_had_stopped_early_resumes_without_more_epochs(tiny_catalogue, tmp_path, monkeypatch, caplog):
    run_dir = tmp_path / "run"
    _interrupt_after_epoch(tiny_catalogue, run_dir, monkeypatch, epoch=1, max_epochs=3, patience=2)
    # As if epoch 1 had been the second without improvement: the run had stopped when it was killed.
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    save_checkpoint(run_dir / "last.pt", {**saved, "bad_epochs": 2})
    caplog.set_level(logging.INFO, logger="gallery_core")
    caplog.clear()  # only what the resumed training logs (an earlier CLI test may have left INFO on)
    resumed = _train(tiny_catalogue, run_dir, max_epochs=3, patience=2)
    assert not any(line.startswith("epoch") for line in caplog.messages)
    assert resumed.epochs_run == 1 and len(resumed.history) == 1


def test_rng_states_round_trip_through_the_resume_file(tmp_path):
    import random

    from gallery_core.training.loop import _rng_state, _set_rng_state

    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_checkpoint(tmp_path / "last.pt", {"rng": _rng_state(generator)})
    draws = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=generator))
    other = torch.Generator()
    _set_rng_state(torch.load(tmp_path / "last.pt", weights_only=True)["rng"], other)
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=other))
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2] == again[2] and torch.equal(draws[3], again[3])


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

    monkeypatch.setattr(photos_module, "write_trunk_features", no_recompute)
    monkeypatch.setattr(photos_module, "compute_trunk_features", no_recompute)
    half = catalogue.subset(catalogue.listings["listing_id"].iloc[::2])
    result = train(half, tiny_config(max_epochs=1), tmp_path / "half", progress=False,
                   cache_dir=tmp_path / "full" / "cache")
    assert len(result.catalogue.listings) == 20
