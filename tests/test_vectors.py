"""The shared vector primitives: normalisation, per-group mean, top-k."""

import numpy as np
import torch

from gallery_core.vectors import group_mean, l2_normalise, top_k


def test_l2_normalise_unit_rows_and_zero_rows_stay_zero():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_group_mean_by_hand_numpy_and_torch_agree():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]], dtype=np.float32)
    groups = np.array([0, 0, 2])
    expected = [[2.0, 3.0], [0.0, 0.0], [10.0, 0.0]]  # group 1 is empty: zeros, not NaN
    np.testing.assert_allclose(group_mean(values, groups, 3), expected)
    pooled = group_mean(torch.from_numpy(values), torch.from_numpy(groups), 3)
    assert isinstance(pooled, torch.Tensor)
    np.testing.assert_allclose(pooled.numpy(), expected)


def test_group_mean_torch_passes_gradients():
    values = torch.ones(4, 2, requires_grad=True)
    group_mean(values, torch.tensor([0, 0, 1, 1]), 2).sum().backward()
    np.testing.assert_allclose(values.grad.numpy(), np.full((4, 2), 0.5))


def test_top_k_best_first_ties_by_position_and_capped():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    assert top_k(scores, 2).tolist() == [1, 4]
    assert top_k(scores, 10).tolist() == [1, 4, 0, 2, 3]
    batch = np.array([[0.1, 0.3, 0.2], [0.3, 0.3, -np.inf]])
    assert top_k(batch, 2).tolist() == [[1, 2], [0, 1]]
    assert top_k(scores, 0).shape == (0,)
