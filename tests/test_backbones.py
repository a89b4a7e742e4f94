"""The backbone registry: every entry runs forward and backward; pretrained weights are real."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from gallery_core.data.photos import to_model_input
from gallery_core.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneWeightsError,
    create_backbone,
    create_classifier,
    get_entry,
    list_backbones,
    native_image_size,
    register,
)


@pytest.mark.parametrize("name", list_backbones())
def test_forward_backward_every_backbone(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, trainable_stages=1, pretrained=False)
    backbone.train()
    x = torch.randn(3, 3, 64, 64)
    features = backbone(x)
    assert features.shape == (3, backbone.feature_dim)
    assert torch.isfinite(features).all()
    features.square().mean().backward()
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    frozen = [p for p in backbone.trunk.parameters()]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    assert not backbone.trunk.training  # frozen batch-norm statistics stay fixed in train mode
    # trunk + top equals the whole forward pass, which is what makes caching the trunk valid
    backbone.eval()
    assert torch.allclose(backbone.forward_top(backbone.forward_trunk(x)), backbone(x))


def test_unknown_backbone_and_bad_split():
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        create_backbone("resnet9000")
    with pytest.raises(ValueError, match="trainable_stages must be in"):
        create_backbone("efficientnet_lite0", trainable_stages=99, pretrained=False)


def test_vgg16_without_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneWeightsError, match="vgg16 needs torchvision's ImageNet weights file"):
        create_backbone("vgg16", weights_path=str(tmp_path / "missing.pth"))


EFFICIENTNET_LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_register_refuses_a_duplicate_name():
    before = {name: get_entry(name) for name in list_backbones()}
    with pytest.raises(ValueError, match="'vgg16' is already registered"):
        register(get_entry("vgg16"))
    assert {name: get_entry(name) for name in list_backbones()} == before


def test_native_image_size():
    assert native_image_size("efficientnet_lite0") == 224
    assert native_image_size("vgg16") == 224
    with pytest.raises(ValueError, match="unknown backbone"):
        native_image_size("resnet9000")


@pytest.mark.parametrize("name", EFFICIENTNET_LITES)
def test_efficientnet_lite_entries_agree_with_timm(name):
    from timm.models import get_pretrained_cfg

    entry = get_entry(name)
    assert entry.default_trainable_stages == 2
    assert get_pretrained_cfg(name).input_size == (3, entry.native_size, entry.native_size)
    model = entry.build()
    assert model.num_features == entry.feature_dim == 1280
    assert len(entry.stages(model)) == 9


@pytest.mark.parametrize("name", EFFICIENTNET_LITES)
def test_efficientnet_lite_missing_weights_file_is_a_clear_error(name, tmp_path):
    with pytest.raises(BackboneWeightsError, match=f"{name} weights file not found"):
        create_backbone(name, weights_path=str(tmp_path / "missing.pth"))


def _imagenet_class(model, name: str, image: np.ndarray, size: int) -> tuple[int, float]:
    pixels = np.asarray(Image.fromarray(image).convert("RGB").resize((size, size), Image.BILINEAR))
    with torch.no_grad():
        probs = model(to_model_input(pixels[None], get_entry(name))).softmax(-1)[0]  # the entry's mean/std
    return int(probs.argmax()), float(probs.max())


@pytest.mark.parametrize("name", EFFICIENTNET_LITES)
def test_pretrained_efficientnet_lite_recognises_a_cat_and_an_espresso(name):
    model = create_classifier(name)
    size = native_image_size(name)
    cat_class, cat_p = _imagenet_class(model, name, data.chelsea(), size)
    coffee_class, coffee_p = _imagenet_class(model, name, data.coffee(), size)
    print(f"{name} @ {size}px: chelsea -> {cat_class} (p={cat_p:.3f}), coffee -> {coffee_class} (p={coffee_p:.3f})")
    assert 281 <= cat_class <= 285  # ImageNet's domestic cat classes (tabby ... Egyptian cat)
    assert coffee_class == 967 and coffee_p > 0.5  # espresso


def test_entries_carry_their_input_normalisation():
    """The entry (and the Backbone made from it) is where pixels' normalisation comes from; the values
    are ImageNet's for every registered family, as they were before entries carried them."""
    for name in list_backbones():
        entry = get_entry(name)
        assert (entry.mean, entry.std) == (IMAGENET_MEAN, IMAGENET_STD)
    backbone = create_backbone("efficientnet_lite0", pretrained=False)
    assert backbone.entry is get_entry("efficientnet_lite0")
    assert (backbone.mean, backbone.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert "entry" not in dict(backbone.named_buffers())  # not in the state dict: checkpoints are unchanged

    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    raw = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    identity = replace(get_entry("vgg16"), name="vgg16_unnormalised", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert torch.allclose(to_model_input(pixels, identity), raw)
    assert torch.equal(to_model_input(pixels, backbone), to_model_input(pixels))  # None: ImageNet's


def test_registering_a_family_makes_it_creatable(monkeypatch):
    import gallery_core.models.backbones as backbones

    monkeypatch.setattr(backbones.registry, "_REGISTRY", dict(backbones.registry._REGISTRY))
    register(replace(get_entry("vgg16"), name="vgg16_copy", native_size=192))
    assert "vgg16_copy" in list_backbones() and native_image_size("vgg16_copy") == 192
    assert create_backbone("vgg16_copy", pretrained=False).name == "vgg16_copy"
    with pytest.raises(ValueError, match="'vgg16_copy' is already registered"):
        register(replace(get_entry("vgg16"), name="vgg16_copy"))
