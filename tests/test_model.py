"""Gallery pooling (permutation invariance, any length, no leakage across galleries) and masked losses."""

from __future__ import annotations

import math

import pytest
import torch

from gallery_core.data.tasks import TaskSpec
from gallery_core.models.backbones import create_backbone
from gallery_core.models.encoder import GalleryEncoder, MultiTaskHeads, group_mean, task_loss


@pytest.fixture(scope="module")
def encoder() -> GalleryEncoder:
    torch.manual_seed(0)
    return GalleryEncoder(create_backbone("efficientnet_lite0", trainable_stages=2, pretrained=False), 8).eval()


def test_group_mean_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    ids = torch.tensor([0, 0, 2])
    out = group_mean(values, ids, 3)
    assert torch.equal(out, torch.tensor([[2.0, 3.0], [0.0, 0.0], [10.0, 10.0]]))  # empty gallery -> zeros


def test_gallery_embedding_is_permutation_invariant(encoder):
    photos = torch.randn(7, 3, 32, 32)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    with torch.no_grad():
        reference = encoder(photos, ids, 2)
        perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
        shuffled = encoder(photos[perm], ids[perm], 2)
    assert torch.allclose(reference, shuffled, atol=1e-5)


def test_gallery_embedding_does_not_depend_on_batch_company_or_padding(encoder):
    """A gallery's embedding is the same alone, batched with galleries of other lengths, or next to an
    empty (fully masked) gallery: nothing leaks across galleries."""
    gallery = torch.randn(3, 3, 32, 32)
    others = torch.randn(9, 3, 32, 32)
    with torch.no_grad():
        alone = encoder(gallery, torch.zeros(3, dtype=torch.long), 1)[0]
        batched = encoder(torch.cat([others, gallery]), torch.tensor([0] * 9 + [2] * 3), 3)
    assert torch.allclose(alone, batched[2], atol=1e-5)
    assert torch.equal(batched[1], torch.zeros(8))  # the empty gallery is all zeros
    assert torch.count_nonzero(batched[0]) > 0  # (while a gallery with photos is not)
    # A gallery's embedding is the mean of its photo embeddings.
    with torch.no_grad():
        assert torch.allclose(alone, encoder.embed_photos(gallery).mean(0), atol=1e-5)


def test_masked_losses_ignore_missing_labels():
    binary = TaskSpec("b", "b", "binary")
    logits = torch.tensor([0.0, 2.0, -1.0, 5.0])
    labels = torch.tensor([1.0, float("nan"), 0.0, float("nan")])
    loss, n = task_loss(binary, logits, labels)
    expected = (math.log(2) + math.log(1 + math.e ** -1)) / 2  # BCE of the two observed entries only
    assert n == 2 and loss.item() == pytest.approx(expected, rel=1e-5)

    multi = TaskSpec("m", "m", "multiclass", ("a", "b", "c"))
    logits = torch.tensor([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0]])
    loss, n = task_loss(multi, logits, torch.tensor([2, -1]))
    assert n == 1 and loss.item() == pytest.approx(math.log(3), rel=1e-5)

    regression = TaskSpec("r", "r", "regression")
    loss, n = task_loss(regression, torch.tensor([1.0, 100.0, 3.0]), torch.tensor([2.0, float("nan"), 5.0]))
    assert n == 2 and loss.item() == pytest.approx((1 + 4) / 2)

    loss, n = task_loss(regression, torch.tensor([1.0]), torch.tensor([float("nan")]))
    assert n == 0 and loss.item() == 0.0


MISSING = {"binary": float("nan"), "multiclass": -1, "regression": float("nan")}
PRESENT = {"binary": 1.0, "multiclass": 2, "regression": 3.0}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_a_missing_label_sends_no_gradient(kind):
    """A listing whose label is missing moves nothing: neither the head's weights nor its own embedding
    get a gradient from the task, while an observed label gives both a non-zero one."""
    task = TaskSpec("t", "t", kind, ("a", "b", "c") if kind == "multiclass" else None)
    torch.manual_seed(0)
    heads = MultiTaskHeads((task,), embed_dim=4, hidden=16)  # wide enough that some ReLU is active
    dtype = torch.int64 if kind == "multiclass" else torch.float32

    def gradients(labels: list) -> tuple[list[torch.Tensor], torch.Tensor]:
        heads.zero_grad(set_to_none=True)
        embedding = torch.randn(len(labels), 4, requires_grad=True)
        loss, _ = task_loss(task, heads(embedding)["t"], torch.tensor(labels, dtype=dtype))
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in heads.parameters()]
        return grads, embedding.grad

    head_grads, embedding_grad = gradients([MISSING[kind]])
    assert all(torch.count_nonzero(g) == 0 for g in head_grads)
    assert torch.count_nonzero(embedding_grad) == 0

    head_grads, embedding_grad = gradients([PRESENT[kind]])
    assert any(torch.count_nonzero(g) > 0 for g in head_grads)
    assert torch.count_nonzero(embedding_grad) > 0

    # Side by side in one batch, the missing listing's embedding still gets none.
    _, embedding_grad = gradients([MISSING[kind], PRESENT[kind]])
    assert torch.count_nonzero(embedding_grad[0]) == 0 and torch.count_nonzero(embedding_grad[1]) > 0


def test_heads_shapes_and_regression_scale():
    tasks = (TaskSpec("b", "b", "binary"), TaskSpec("m", "m", "multiclass", ("x", "y", "z")),
             TaskSpec("r", "r", "regression"))
    heads = MultiTaskHeads(tasks, embed_dim=8, hidden=4)
    heads.set_label_scale("r", mean=150.0, std=40.0)
    out = heads(torch.zeros(5, 8))
    assert out["b"].shape == (5,) and out["m"].shape == (5, 3) and out["r"].shape == (5,)
    raw = heads.heads["r"].layers(torch.zeros(5, 8)).squeeze(-1)
    assert torch.allclose(out["r"], 150.0 + 40.0 * raw)
    probs = heads.heads["m"].predict(torch.randn(5, 8))
    assert torch.allclose(probs.sum(-1), torch.ones(5))
