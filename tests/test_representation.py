"""The representation choices of issue 10: no projection, frozen BatchNorm statistics, backbone learning
rate, L2-SP, the embedding for new tasks, and the leave-tasks-out protocol's pieces."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_config
from torch import nn

from gallery_core.config import BuildConfig, ModelConfig, TrainConfig
from gallery_core.data.catalogue import load_catalogue
from gallery_core.evaluation.metrics import mean_interval, participation_ratio
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import build_model
from gallery_core.models.encoder import GalleryEncoder
from gallery_core.pipeline.embed import new_task_embeddings
from gallery_core.training.finetune import L2SP, param_groups
from gallery_core.training.loop import train
from gallery_core.weighting import create_weighting

# --- participation ratio (effective rank) on hand-made matrices ---


def test_participation_ratio_of_isotropic_data_is_its_dimension():
    # Rows +-e_i: every direction carries the same variance.
    x = np.concatenate([np.eye(6), -np.eye(6)])
    assert participation_ratio(x) == pytest.approx(6.0)


def test_participation_ratio_of_a_line_is_one():
    t = np.linspace(-1, 1, 50)[:, None]
    assert participation_ratio(t * np.array([[3.0, -1.0, 2.0]])) == pytest.approx(1.0)


def test_participation_ratio_of_unequal_variances():
    # Eigenvalues proportional to 4 and 1 (standard deviations 2 and 1): (4 + 1)^2 / (16 + 1) = 25 / 17.
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert participation_ratio(x) == pytest.approx(25 / 17)
    with pytest.raises(ValueError, match="no variance"):
        participation_ratio(np.ones((5, 3)))


def test_mean_interval_uses_the_t_distribution():
    ci = mean_interval([1.0, 2.0, 3.0])
    # sd 1, n 3: t(0.975, 2) = 4.303 -> half width 4.303 / sqrt(3) = 2.484.
    assert ci["mean"] == 2.0 and ci["high"] - ci["mean"] == pytest.approx(2.484, abs=1e-3)
    assert math.isnan(mean_interval([0.5])["low"])


# --- the encoder without a projection ---


def test_no_projection_means_the_heads_read_the_pooled_backbone():
    backbone = create_backbone("efficientnet_lite0", trainable_stages=1, pretrained=False)
    encoder = GalleryEncoder(backbone, embed_dim=0)
    assert encoder.embed_dim == backbone.feature_dim == 1280
    photos = torch.randn(3, 3, 32, 32)
    encoder.eval()
    assert torch.allclose(encoder.embed_photos(photos), backbone(photos))
    model = build_model(ModelConfig(image_size=32, embed_dim=0), load_catalogue_tasks(), pretrained=False)
    assert all(head.layers[0].in_features == 1280 for head in model.heads.heads.values())


def load_catalogue_tasks():
    from gallery_core.data.tasks import TaskSpec

    return (TaskSpec(name="a", column="a", kind="binary"),)


# --- BatchNorm statistics ---


def _batchnorm_stats(module: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("freeze", [True, False])
def test_batchnorm_statistics_stay_fixed_only_where_configured(freeze):
    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0", trainable_stages=2, pretrained=False, freeze_batchnorm=freeze)
    before_top, before_trunk = _batchnorm_stats(backbone.top), _batchnorm_stats(backbone.trunk)
    backbone.train()
    optimizer = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        out = backbone(torch.randn(4, 3, 32, 32) * 3 + 1)
        optimizer.zero_grad()
        out.pow(2).mean().backward()
        optimizer.step()
    after_top = _batchnorm_stats(backbone.top)
    assert all(torch.equal(a, b) for a, b in zip(before_trunk, _batchnorm_stats(backbone.trunk), strict=True))
    unchanged = all(torch.equal(a, b) for a, b in zip(before_top, after_top, strict=True))
    assert unchanged == freeze
    # Frozen statistics, but the affine weights of the top still train.
    assert any(p.requires_grad for m in backbone.top.modules() if isinstance(m, nn.BatchNorm2d)
               for p in m.parameters())


# --- L2-SP and the backbone's learning rate ---


def test_l2sp_matches_a_hand_computation():
    top = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    penalty = L2SP(top, weight=0.5)
    assert float(penalty().detach()) == 0.0  # at the pretrained weights
    with torch.no_grad():
        top[0].weight.add_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # squared distance 1 + 4
        top[1].bias.add_(3.0)  # + 9
    assert float(penalty().detach()) == pytest.approx(0.5 * 0.5 * 14)
    penalty().backward()
    assert torch.allclose(top[0].weight.grad, 0.5 * torch.tensor([[1.0, 0.0], [0.0, 2.0]]))


def test_backbone_learning_rate_multiplier_makes_its_own_group():
    tasks = load_catalogue_tasks()
    model = build_model(ModelConfig(image_size=32, embed_dim=0, trainable_stages=1), tasks, pretrained=False)
    weighting = create_weighting("uncertainty", tasks, {})
    groups = param_groups(model, weighting, TrainConfig(lr=1e-3, backbone_lr_mult=0.1))
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(1e-4)]
    top = {id(p) for p in model.encoder.backbone.top.parameters()}
    assert {id(p) for p in groups[1]["params"]} == top
    assert not top & {id(p) for p in groups[0]["params"]}
    assert {id(p) for p in weighting.parameters()} <= {id(p) for p in groups[0]["params"]}


def test_l2sp_training_stays_closer_to_the_pretrained_weights(tiny_catalogue, tmp_path):
    catalogue = load_catalogue(tiny_catalogue)
    distances = {}
    for weight in (0.0, 100.0):
        config = tiny_config(max_epochs=2, l2sp_weight=weight)
        config = replace(config, model=replace(config.model, embed_dim=0, trainable_stages=1))
        result = train(catalogue, config, tmp_path / f"l2sp-{weight}", progress=False)
        state = torch.load(result.checkpoint_path, weights_only=True)["model"]
        reference = create_backbone("efficientnet_lite0", 1, pretrained=True).state_dict()
        distances[weight] = sum(float(((state[f"encoder.backbone.{k}"] - v.float()) ** 2).sum())
                                for k, v in reference.items() if k.startswith("top.") and v.is_floating_point()
                                and "running" not in k)
    assert distances[100.0] < distances[0.0]


# --- the embedding for new tasks ---


def test_new_task_embedding_puts_normalised_parts_side_by_side():
    learned = np.array([[3.0, 4.0], [0.0, 2.0]])
    pretrained = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    both = new_task_embeddings(learned, pretrained, "pretrained+learned")
    assert both.shape == (2, 5)
    assert np.allclose(np.linalg.norm(both, axis=1), 1.0)
    assert np.allclose(both[0], np.array([1, 0, 0, 0.6, 0.8]) / np.sqrt(2))
    assert np.allclose(new_task_embeddings(learned, None, "learned")[0], [0.6, 0.8])
    with pytest.raises(ValueError, match="needs the pretrained"):
        new_task_embeddings(learned, None, "pretrained+learned")
    with pytest.raises(ValueError, match="unknown new_task_features"):
        new_task_embeddings(learned, pretrained, "both")


def test_a_built_run_exposes_its_new_task_embedding(tiny_run):
    from gallery_core.artifacts.run import open_run

    run = open_run(tiny_run)
    assert run.config.embed.new_task_features == "pretrained+learned"
    # [pretrained 1280 | learned 16], unit rows
    assert run.new_task_embeddings.shape == (len(run.listings), 1280 + 16)
    assert np.allclose(np.linalg.norm(run.new_task_embeddings, axis=1), 1.0, atol=1e-5)


# --- image size follows the backbone unless given ---


def test_image_size_defaults_to_the_backbones_native_resolution():
    assert BuildConfig().validate().model.image_size == 224
    assert BuildConfig(model=ModelConfig(image_size=128)).validate().model.image_size == 128
    assert BuildConfig(model=ModelConfig(backbone="efficientnet_lite2")).validate().model.image_size == 260


# --- small catalogues ---


def test_a_small_catalogue_is_told_so_and_keeps_the_pretrained_features(tiny_catalogue, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gallery_core")
    catalogue = load_catalogue(tiny_catalogue)
    config = tiny_config(min_listings_to_finetune=300)
    config = replace(config, model=replace(config.model, embed_dim=0, trainable_stages=1))
    result = train(catalogue, config, tmp_path / "small", progress=False)
    text = "\n".join(caplog.messages)
    assert "only 36 training listings" in text and "fewer than min_listings_to_finetune=300" in text
    assert "validation split has only 4 listings" in text
    checkpoint = torch.load(result.checkpoint_path, weights_only=True)
    assert checkpoint["backbone_finetuned"] is False
    reference = create_backbone("efficientnet_lite0", 1, pretrained=True).state_dict()
    state = checkpoint["model"]
    # Weights and BatchNorm statistics of the top are exactly the pretrained ones.
    assert all(torch.equal(state[f"encoder.backbone.{k}"], v) for k, v in reference.items() if k.startswith("top."))


def test_the_validation_table_marks_tiny_splits():
    from gallery_core.pipeline.predict import metrics_table, small_split_warning

    metrics = {"a": {"kind": "binary", "primary": "accuracy", "accuracy": 1.0, "baseline_accuracy": 0.5,
                     "beats_baseline": True, "n": 3},
               "b": {"kind": "binary", "primary": "accuracy", "accuracy": 0.8, "baseline_accuracy": 0.5,
                     "beats_baseline": True, "n": 200}}
    table = metrics_table(metrics)
    assert table["note"].tolist() == ["only 3 validation listings: too few to judge", ""]
    assert "1 of 2 tasks" in small_split_warning(table) and "as few as 3" in small_split_warning(table)
    assert small_split_warning(table[table["task"] == "b"]) is None


def test_a_derived_trunk_cache_equals_the_trunk_on_pixels(tiny_catalogue, tmp_path):
    from gallery_core.data.photos import (
        cached_trunk_features,
        compute_trunk_features,
        derive_trunk_cache,
        trunk_cache_key,
    )

    catalogue = load_catalogue(tiny_catalogue)
    paths = catalogue.photos["path"].tolist()[:24]
    source = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    source_key = trunk_cache_key(catalogue.fingerprint, source, 32)
    cached_trunk_features(tmp_path, source_key, source, paths, 32, progress=False)
    for stages in (1, 0):
        target = create_backbone("efficientnet_lite0", stages, pretrained=True).eval()
        target_key = trunk_cache_key(catalogue.fingerprint, target, 32)
        derive_trunk_cache(tmp_path, source, source_key, target, target_key, progress=False)
        derived, bad = cached_trunk_features(tmp_path, target_key, target, paths, 32, progress=False)
        direct, _ = compute_trunk_features(target, paths, 32, progress=False)
        assert not bad
        if stages == 0:  # stored pooled: all a frozen backbone's top (the average pool) needs
            direct = direct.astype(np.float32).mean(axis=(2, 3), keepdims=True)
        # float16 storage on both sides: equal to a few parts in a thousand of the features' scale
        scale = np.abs(direct.astype(np.float32)).max()
        assert np.abs(np.asarray(derived, dtype=np.float32) - direct.astype(np.float32)).max() < 0.01 * scale


# --- leave tasks out: a held-out task never reaches training ---


def test_a_held_out_task_never_reaches_the_model_it_is_held_out_of(tiny_run, tmp_path, monkeypatch):
    # label_tensors and task_loss are patched where train and run_epoch look them up (the loop module);
    # GalleryData.batch on the class itself (gallery_core.training.data).
    import gallery_core.training.loop as train_module
    from gallery_core.artifacts.run import open_run
    from gallery_core.evaluation.context import Context
    from gallery_core.evaluation.transfer import choose_transfer_tasks, retrain_without
    from gallery_core.training.data import GalleryData

    run = open_run(tiny_run)
    ctx = Context(run=run, work_dir=tmp_path / "work", report_dir=tmp_path, progress=False)
    held, columns = choose_transfer_tasks(run.tasks, run.listings, ctx.is_val, run.holdout, n_binary=2)
    held_names = {t.name for t in held}
    assert len(held) == 4 and [c.name for c in columns] == ["star_rating"]

    label_keys, loss_tasks, batch_rows = [], set(), []
    real_labels, real_loss, real_batch = train_module.label_tensors, train_module.task_loss, GalleryData.batch

    def spy_labels(catalogue):
        out = real_labels(catalogue)
        label_keys.append(set(out))
        return out

    def spy_loss(task, output, labels):
        loss_tasks.add(task.name)
        return real_loss(task, output, labels)

    def spy_batch(self, listing_idx, device):
        batch_rows.append(self.catalogue.listings["listing_id"].to_numpy()[listing_idx])
        return real_batch(self, listing_idx, device)

    monkeypatch.setattr(train_module, "label_tensors", spy_labels)
    monkeypatch.setattr(train_module, "task_loss", spy_loss)
    monkeypatch.setattr(GalleryData, "batch", spy_batch)
    trained = retrain_without(ctx, held, ctx.baseline_config(1), "spy")

    assert label_keys and all(not keys & held_names for keys in label_keys)  # no label tensor of a held-out task
    assert loss_tasks and not loss_tasks & held_names  # no loss computed on one
    assert not {t.name for t in trained.model.heads.tasks} & held_names  # no head for one
    assert {"star_rating"} & {t.column for t in trained.model.heads.tasks} == set()
    # The run's validation listings (the test set) never enter the retrained model's batches.
    seen = set(np.concatenate(batch_rows))
    assert not seen & set(run.listings["listing_id"][ctx.is_val])


def test_the_end_to_end_baseline_trains_its_task_alone_without_the_extra_objectives(tiny_run, tmp_path, monkeypatch):
    # A run trains with the completion objective (on by default; the tiny run turns it off for speed, so it is
    # turned on here), weighted against its whole set of tasks; a model of one task must not inherit it, or the
    # objective outweighs the task's own loss (the baseline fell from 0.583 to 0.486 at 20% of the labels in the
    # demo's report when it did).
    from dataclasses import replace

    import gallery_core.training.loop as loop
    from gallery_core.artifacts.run import open_run
    from gallery_core.evaluation.context import Context
    from gallery_core.evaluation.transfer import choose_transfer_tasks, end_to_end_rows, held_out_tasks

    run = open_run(tiny_run)
    run.__dict__["config"] = replace(run.config, train=replace(run.config.train, completion_weight=1.0))
    ctx = Context(run=run, work_dir=tmp_path / "work", report_dir=tmp_path, progress=False)
    tasks, columns = choose_transfer_tasks(run.tasks, run.listings, ctx.is_val, run.holdout, n_binary=1)
    held = held_out_tasks(tasks, columns, run.listings, ctx.is_val)[:1]
    objectives_seen = []
    real = loop.prepare_objectives

    def spy(config, *args, **kwargs):
        objectives_seen.append(loop.objective_weights(config.train))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(loop, "prepare_objectives", spy)
    config = ctx.baseline_config(1)
    assert loop.objective_weights(config.train) == {"completion": run.config.train.completion_weight}
    rows = end_to_end_rows(ctx, held, (1.0,), config, seed=0)
    assert len(rows) == 1 and np.isfinite(rows[0]["score"])
    assert objectives_seen == [{}]  # trained, and on its attribute loss alone
