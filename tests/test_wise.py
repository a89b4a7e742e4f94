"""WiSE-FT: weight interpolation of the backbone's top, BatchNorm recalibration, and training that ends with it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gallery_core.data.catalogue import load_catalogue
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.models.interpolate import interpolate_backbone, interpolate_state, recalibrate_batchnorm
from gallery_core.training.loop import train
from tests.conftest import tiny_config


def _pair():
    pretrained = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    finetuned = copy.deepcopy(pretrained)
    with torch.no_grad():
        for p in finetuned.top.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for _name, b in finetuned.top.named_buffers():
            if b.is_floating_point():
                b.mul_(1.3)
            else:
                b.add_(7)
    return pretrained, finetuned


def test_alpha_zero_is_the_pretrained_encoder_and_one_the_fine_tuned_exactly():
    pretrained, finetuned = _pair()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        for alpha, reference in ((0.0, pretrained), (1.0, finetuned)):
            mixed = interpolate_backbone(pretrained, finetuned, alpha).eval()
            for (name, a), b in zip(mixed.state_dict().items(), reference.state_dict().values(), strict=True):
                assert torch.equal(a, b), name
            assert torch.equal(mixed(x), reference(x))
        half = interpolate_backbone(pretrained, finetuned, 0.5).eval()
        assert not torch.equal(half(x), pretrained(x)) and not torch.equal(half(x), finetuned(x))


def test_mixing_is_linear_in_every_floating_tensor_and_keeps_counters():
    pre = {"w": torch.zeros(3), "running_var": torch.ones(3), "num_batches_tracked": torch.tensor(0)}
    ft = {"w": torch.full((3,), 4.0), "running_var": torch.full((3,), 3.0), "num_batches_tracked": torch.tensor(9)}
    mixed = interpolate_state(pre, ft, 0.25)
    assert torch.allclose(mixed["w"], torch.full((3,), 1.0))
    assert torch.allclose(mixed["running_var"], torch.full((3,), 1.5))
    assert int(mixed["num_batches_tracked"]) == 9
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state(pre, ft, 1.5)
    with pytest.raises(ValueError, match="different keys"):
        interpolate_state(pre, {"w": ft["w"]}, 0.5)


def test_recalibration_sets_batchnorm_statistics_to_those_of_the_data():
    net = nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4))
    net.eval()
    batches = [torch.randn(8, 2, 5, 5) * 3 + 1 for _ in range(4)]
    seen = recalibrate_batchnorm(net, batches)
    assert seen == 32 and not net.training and net[1].momentum == 0.1
    with torch.no_grad():
        activations = torch.cat([net[0](b) for b in batches])  # (32, 4, 5, 5)
    assert torch.allclose(net[1].running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-4)
    assert recalibrate_batchnorm(net, []) == 0  # no data: statistics untouched
    assert torch.allclose(net[1].running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-4)


def test_training_with_alpha_zero_ends_on_the_pretrained_top_with_refitted_heads(tiny_catalogue, tmp_path):
    config = tiny_config(max_epochs=1, wise_alpha=0.0)
    catalogue = load_catalogue(tiny_catalogue)
    result = train(catalogue, config, tmp_path / "run", progress=False)
    model, checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint["wise"]["alpha"] == 0.0
    assert checkpoint["wise"]["val_objective"] <= checkpoint["wise"]["val_objective_before"]
    pretrained = create_backbone("efficientnet_lite0", config.model.trainable_stages, pretrained=True)
    for (name, a), b in zip(model.encoder.backbone.top.state_dict().items(), pretrained.top.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_training_with_a_mix_records_it_and_differs_from_plain_fine_tuning(tiny_catalogue, tmp_path):
    catalogue = load_catalogue(tiny_catalogue)
    plain = load_checkpoint(train(catalogue, tiny_config(max_epochs=1), tmp_path / "a", progress=False)
                            .checkpoint_path)
    mixed = load_checkpoint(train(catalogue, tiny_config(max_epochs=1, wise_alpha=0.5), tmp_path / "b",
                                  progress=False).checkpoint_path)
    assert "wise" not in plain[1] and mixed[1]["wise"]["alpha"] == 0.5
    assert mixed[1]["wise"]["recalibration_photos"] > 0
    pretrained = create_backbone("efficientnet_lite0", 2, pretrained=True)
    name = next(n for n, p in pretrained.top.named_parameters() if p.dim() == 4)
    expected = torch.lerp(dict(pretrained.top.named_parameters())[name].detach(),
                          dict(plain[0].encoder.backbone.top.named_parameters())[name].detach(), 0.5)
    assert torch.allclose(dict(mixed[0].encoder.backbone.top.named_parameters())[name], expected, atol=1e-6)
