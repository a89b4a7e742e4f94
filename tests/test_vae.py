"""The VAE objective against hand computations, and training with the triplet + VAE objectives."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_config

from gallery_core.data.catalogue import load_catalogue
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.models.vae import VAEDecoder, cached_thumbnails, kl_divergence, vae_loss
from gallery_core.training.loop import train


def test_kl_divergence_matches_a_hand_computation():
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    log_var = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # 0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1): row 1 = 0.5 * (1 + 0 - 0 - 1 ... ) per dim:
    # dim 1: 1 + 1 - 0 - 1 = 1; dim 2: 0 + 2 - log 2 - 1 = 1 - log 2.  Row 2: N(0, I) itself -> 0.
    expected = torch.tensor([0.5 * (1.0 + 1.0 - math.log(2.0)), 0.0])
    assert torch.allclose(kl_divergence(mu, log_var), expected)


def test_vae_loss_matches_a_hand_computation():
    reconstruction = torch.full((2, 3, 2, 2), 0.5)
    target = torch.zeros(2, 3, 2, 2)
    target[1] = 1.0
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    log_var = torch.zeros(2, 2)
    # Squared errors: 12 values x 0.25 = 3 per photo. KL: 0.5 (photo 1), 0 (photo 2). 12 values each.
    expected = ((3.0 + 0.5) / 12 + (3.0 + 0.0) / 12) / 2
    assert vae_loss(reconstruction, target, mu, log_var).item() == pytest.approx(expected)
    assert vae_loss(reconstruction, target, mu, log_var, beta=0.0).item() == pytest.approx(3.0 / 12)
    assert vae_loss(reconstruction[:0], target[:0], mu[:0], log_var[:0]).item() == 0.0


@pytest.mark.parametrize("size", [8, 16, 32])
def test_decoder_shapes_range_and_determinism(size):
    torch.manual_seed(0)
    decoder = VAEDecoder(embed_dim=12, image_size=size, width=16)
    mu = torch.randn(5, 12)
    reconstruction, out_mu, log_var = decoder(mu, sample=False)
    assert reconstruction.shape == (5, 3, size, size) and log_var.shape == (5, 12)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert torch.equal(decoder(mu, sample=False)[0], reconstruction)  # z = mu without sampling
    assert torch.equal(out_mu, mu)
    with pytest.raises(ValueError, match="image_size"):
        VAEDecoder(12, image_size=24)


def test_thumbnails_are_cached(tiny_catalogue, tmp_path):
    paths = sorted(str(p) for p in (tiny_catalogue / "photos").rglob("*.jpg"))[:5]
    first = cached_thumbnails(tmp_path, paths, 8)
    assert first.shape == (5, 3, 8, 8) and first.dtype == np.uint8
    assert len(list(tmp_path.glob("vae-targets-*.npy"))) == 1
    assert np.array_equal(cached_thumbnails(tmp_path, paths, 8), first)


def test_training_with_triplet_and_vae_lowers_the_loss_and_checkpoints_the_decoder(tiny_catalogue, tiny_run,
                                                                                    tmp_path):
    cache = shutil.copytree(tiny_run / "cache", tmp_path / "cache")  # the tiny run's trunk features: no recompute
    config = tiny_config(max_epochs=3, lr=3e-3, triplet_weight=1.0, vae_weight=1.0, vae_image_size=8)
    result = train(load_catalogue(tiny_catalogue), config, tmp_path / "run", progress=False,
                   cache_dir=cache)
    history = result.history
    assert history[-1]["train_loss"] < 0.9 * history[0]["train_loss"]
    for name in ("triplet", "vae"):
        assert name in history[0]["train_task_losses"] and name in history[0]["val_task_losses"]
        assert history[0]["task_weights"][name] == 1.0
        assert all(math.isfinite(h["train_task_losses"][name]) for h in history)

    raw = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert raw["config"]["train"]["vae_weight"] == 1.0 and raw["config"]["train"]["triplet_weight"] == 1.0
    assert any(key.startswith("decoder.") for key in raw["model"])
    assert raw["triplet_mining"]["anchors_with_a_triplet"] > 0
    model, _ = load_checkpoint(tmp_path / "run" / "model.pt")
    assert isinstance(model.decoder, VAEDecoder) and model.decoder.image_size == 8


def test_augmented_training_runs(tiny_catalogue, tmp_path):
    catalogue = load_catalogue(tiny_catalogue)
    small = catalogue.subset(catalogue.listings["listing_id"].tolist()[:12])
    result = train(small, tiny_config(max_epochs=1, augment=True), tmp_path / "run", progress=False)
    assert result.epochs_run == 1 and math.isfinite(result.history[0]["train_loss"])
    assert not (tmp_path / "run" / "cache").exists()  # augmentation decodes photos; no trunk cache is made
