"""The designs that keep the embedding general: gallery completion, distillation, spread, LP-FT and the head
projector."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gallery_core.config import ModelConfig
from gallery_core.data.catalogue import load_catalogue
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import ConfigError
from gallery_core.evaluation.metrics import participation_ratio
from gallery_core.models.checkpoint import build_model, load_checkpoint
from gallery_core.models.encoder import MultiTaskHeads
from gallery_core.training.data import label_tensors, prepare_data
from gallery_core.training.finetune import set_probe_phase
from gallery_core.training.loop import run_epoch, train
from gallery_core.training.self_supervised import (
    EmbeddingMemory,
    completion_loss,
    distillation_loss,
    info_nce,
    participation_loss,
    split_halves,
)
from gallery_core.weighting import PseudoUniformWeighting
from tests.conftest import tiny_config


def test_halves_are_disjoint_random_and_balanced():
    owner = np.repeat(np.arange(5), [1, 2, 3, 6, 7])
    half, usable = split_halves(owner, 6, np.random.default_rng(0))
    assert usable.tolist() == [False, True, True, True, True, False]  # gallery 5 has no photo
    for g, k in enumerate([1, 2, 3, 6, 7]):
        assert (half[owner == g] == 0).sum() == k // 2 and (half[owner == g] == 1).sum() == k - k // 2
    draws = {tuple(split_halves(owner, 6, np.random.default_rng(s))[0]) for s in range(5)}
    assert len(draws) > 1  # the deal depends on the generator...
    again, _ = split_halves(owner, 6, np.random.default_rng(0))
    assert np.array_equal(half, again)  # ...and only on it


def test_info_nce_is_low_when_halves_match_and_high_when_they_do_not():
    a = torch.nn.functional.one_hot(torch.arange(6), 8).float()
    assert info_nce(a, a, 0.1) < 0.01
    assert info_nce(a, a.roll(1, dims=0), 0.1) > 5


def test_completion_loss_uses_galleries_with_two_photos_and_passes_gradients():
    owner = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    x = torch.randn(8, 4, requires_grad=True)
    loss, n = completion_loss(x, owner, 4, 0.1, np.random.default_rng(0))
    assert n == 3 and torch.isfinite(loss)
    loss.backward()
    assert torch.all(x.grad[5] == 0) and torch.any(x.grad[0] != 0)  # gallery 2's single photo takes no part
    lone, n = completion_loss(x[:4], owner[:4], 2, 0.1, np.random.default_rng(0))
    assert n == 0 and float(lone.detach()) == 0.0  # one usable gallery: nothing to contrast


def test_distillation_loss_is_zero_on_the_teacher_and_grows_with_distance():
    t = torch.randn(5, 16)
    assert distillation_loss(t.clone(), t) == (pytest.approx(0.0, abs=1e-6), 5)
    assert distillation_loss(-t, t)[0] == pytest.approx(2.0)
    assert distillation_loss(t + 0.1 * torch.randn(5, 16), t)[0] < distillation_loss(torch.randn(5, 16), t)[0]
    t[0] = 0  # no direction to keep: left out
    assert distillation_loss(torch.randn(5, 16), t)[1] == 4
    assert distillation_loss(torch.randn(2, 16), torch.zeros(2, 16))[1] == 0


def _task(name: str, kind: str = "binary") -> TaskSpec:
    return TaskSpec(name=name, column=name, kind=kind)


def test_participation_loss_is_the_log_of_the_ratio_the_rows_could_have_over_the_one_they_have():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 32)) * np.linspace(3, 0.1, 32)  # variance on a few directions
    memory = rng.normal(size=(40, 32)) * np.linspace(3, 0.1, 32)
    loss, n = participation_loss(torch.tensor(rows), torch.tensor(memory))
    both = np.concatenate([rows, memory])
    assert n == 6
    assert loss.item() == pytest.approx(np.log((len(both) - 1) / participation_ratio(both)), rel=1e-5)
    simplex = torch.eye(8)  # centred: 7 directions of equal variance, the most 8 rows allow
    assert participation_loss(simplex)[0].item() == pytest.approx(0.0, abs=1e-5)
    line = torch.arange(8.0)[:, None] * torch.ones(1, 4)  # all variance on one direction
    assert participation_loss(line)[0].item() == pytest.approx(np.log(7.0), rel=1e-5)
    assert participation_loss(torch.ones(2, 4))[1] == 0  # too few rows to have a spectrum


def test_participation_loss_moves_the_batch_into_the_directions_the_memory_leaves_empty():
    rng = np.random.default_rng(1)
    memory = torch.tensor(rng.normal(size=(60, 16)) * np.r_[np.ones(4), np.full(12, 0.01)], dtype=torch.float32)
    rows = torch.tensor(rng.normal(size=(8, 16)) * np.r_[np.ones(4), np.full(12, 0.01)], dtype=torch.float32,
                        requires_grad=True)
    before = participation_loss(rows, memory)[0]
    before.backward()
    with torch.no_grad():
        moved = rows - 0.5 * rows.grad
    assert participation_loss(moved, memory)[0] < before
    # the step puts variance on the 12 directions the memory barely uses
    assert moved[:, 4:].var(dim=0).sum() > rows[:, 4:].detach().var(dim=0).sum()
    assert memory.grad is None


def test_embedding_memory_keeps_the_latest_rows_of_the_epoch():
    memory = EmbeddingMemory(5)
    assert memory.rows() is None
    for i in range(4):
        memory.push(torch.full((2, 3), float(i), requires_grad=True))
    kept = memory.rows()
    assert len(kept) <= 5 and kept[-1, 0] == 3 and not kept.requires_grad
    assert set(kept[:, 0].tolist()) == {2.0, 3.0}  # the oldest batches go first
    memory.reset(epoch=1)
    assert memory.rows() is None and memory.epoch == 1
    with pytest.raises(ValueError, match="size"):
        EmbeddingMemory(0)


def test_projector_sits_between_the_embedding_and_every_head():
    torch.manual_seed(0)
    heads = MultiTaskHeads((_task("a"), _task("b")), embed_dim=12, hidden=8, projector=5).eval()
    x = torch.randn(3, 12)
    assert heads.heads["a"].layers[0].in_features == 5
    z = heads.project(x)
    assert z.shape == (3, 5) and torch.all(z >= 0)  # Linear -> ReLU
    out, predicted = heads(x), heads.predict(x)
    assert torch.allclose(torch.sigmoid(out["a"]), predicted["a"]) and torch.equal(out["b"], heads.heads["b"](z))
    plain = MultiTaskHeads((_task("a"),), embed_dim=12, hidden=8)
    assert torch.equal(plain.project(x), x)  # 0: no projector


def test_config_refuses_bad_design_settings():
    with pytest.raises(ConfigError, match="lp_epochs"):
        tiny_config(max_epochs=2, lp_epochs=2)
    with pytest.raises(ConfigError, match="completion_temperature"):
        tiny_config(completion_weight=1.0, completion_temperature=0.0)
    with pytest.raises(ConfigError, match="spread_weight"):
        tiny_config(spread_weight=-1.0)
    with pytest.raises(ConfigError, match="head_projector"):
        ModelConfig(head_projector=-1).validate()


def test_probe_phase_trains_the_heads_alone_and_keeps_the_top_statistics(tiny_catalogue, tmp_path):
    config = tiny_config()
    catalogue = load_catalogue(tiny_catalogue)
    model = build_model(config.model, catalogue.tasks)
    data = prepare_data(catalogue, model, config.model, tmp_path / "cache", "key", True, torch.device("cpu"), False)
    labels = label_tensors(data.catalogue)
    weighting = PseudoUniformWeighting(data.catalogue.tasks, {t.name: 1.0 for t in data.catalogue.tasks
                                                              if t.kind == "regression"})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    top = {k: v.clone() for k, v in model.encoder.backbone.top.state_dict().items()}
    head = model.heads.heads[data.catalogue.tasks[0].name].layers[0].weight.clone()
    set_probe_phase(model, True, freeze_batchnorm=False)
    run_epoch(model, weighting, data, np.arange(len(data.catalogue.listings)), labels, 8, torch.device("cpu"),
              optimizer, torch.Generator().manual_seed(0))
    for name, value in model.encoder.backbone.top.state_dict().items():
        assert torch.equal(value, top[name]), name  # weights and BatchNorm statistics alike
    assert not torch.equal(model.heads.heads[data.catalogue.tasks[0].name].layers[0].weight, head)
    set_probe_phase(model, False, freeze_batchnorm=False)
    run_epoch(model, weighting, data, np.arange(len(data.catalogue.listings)), labels, 8, torch.device("cpu"),
              optimizer, torch.Generator().manual_seed(0))
    assert any(not torch.equal(v, top[k]) for k, v in model.encoder.backbone.top.state_dict().items())


def test_training_with_every_design_logs_its_objectives_and_reloads(tiny_catalogue, tmp_path):
    config = tiny_config(max_epochs=2, lp_epochs=1, completion_weight=1.0, distill_weight=5.0, spread_weight=1.0)
    config.model.head_projector = 8
    result = train(load_catalogue(tiny_catalogue), config, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    for entry in log:
        for name in ("completion", "distill", "spread"):
            assert np.isfinite(entry["train_task_losses"][name]) and np.isfinite(entry["val_task_losses"][name])
    assert log[0]["task_weights"]["completion"] == 1.0 and log[0]["task_weights"]["distill"] == 5.0
    assert log[0]["task_weights"]["spread"] == 1.0 and log[0]["train_task_losses"]["spread"] > 0
    # The probe epoch leaves the top as the teacher (validation: no dropout), fine-tuning then moves it away.
    assert log[0]["val_task_losses"]["distill"] < 1e-4
    assert log[1]["val_task_losses"]["distill"] > 1e-4
    model, checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint["config"]["model"]["head_projector"] == 8
    assert model.heads.project(torch.zeros(1, model.encoder.embed_dim)).shape == (1, 8)


def test_extra_objective_weights_shrink_with_fewer_attribute_tasks_than_they_were_set_for():
    from gallery_core.config import OBJECTIVE_REFERENCE_TASKS
    from gallery_core.training.objectives import attributes_only, objective_weights

    train_config = tiny_config(completion_weight=1.0, distill_weight=4.0).train
    assert objective_weights(train_config) == {"completion": 1.0, "distill": 4.0}  # as configured
    assert objective_weights(train_config, n_tasks=OBJECTIVE_REFERENCE_TASKS + 5) == {"completion": 1.0, "distill": 4.0}
    assert objective_weights(train_config, n_tasks=OBJECTIVE_REFERENCE_TASKS // 4) == {"completion": 0.25, "distill": 1.0}
    assert objective_weights(attributes_only(train_config), n_tasks=1) == {}
    assert attributes_only(tiny_config(augment=True, completion_weight=1.0).train).augment  # a transform, kept


def test_a_catalogue_of_few_tasks_trains_with_the_extra_objective_scaled_down(tiny_catalogue, tmp_path):
    # One task's loss (~1) against the completion objective at its full weight (~2 at the start) would let the
    # objective outweigh the task: a model of one task scored 0.485 with it, 0.582 without (the demo, 20% labels).
    from dataclasses import replace

    from gallery_core.config import OBJECTIVE_REFERENCE_TASKS

    catalogue = load_catalogue(tiny_catalogue)
    few = replace(catalogue, tasks=catalogue.tasks[:2])
    train(few, tiny_config(max_epochs=1, completion_weight=1.0), tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["task_weights"]["completion"] == pytest.approx(2 / OBJECTIVE_REFERENCE_TASKS)
    assert np.isfinite(log[0]["train_task_losses"]["completion"])
