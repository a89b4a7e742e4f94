"""The CPU path through ONNX Runtime (issue 21): the frozen trunk and embed's encoder exported once, cached,
checked against PyTorch before use, with PyTorch as the fallback. Skipped where the ``onnx`` extra is absent."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

from gallery_core.data.catalogue import load_catalogue
from gallery_core.data.photos import compute_trunk_features
from gallery_core.engine import cpu_runtime
from gallery_core.engine.cpu_runtime import cpu_runner, row_cosines
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone

CPU = torch.device("cpu")


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv(cpu_runtime.CACHE_ENV, str(tmp_path / "onnx"))
    cpu_runtime._session.cache_clear()
    cpu_runtime._openvino_model.cache_clear()
    return tmp_path / "onnx"


def small_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()


def test_the_trunk_pass_through_onnx_runtime_gives_the_features_of_pytorch(tiny_catalogue, onnx_cache, monkeypatch):
    paths = load_catalogue(tiny_catalogue).photos["path"].tolist()[:24]
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    exports = []
    export = cpu_runtime.export_graph
    monkeypatch.setattr(cpu_runtime, "export_graph", lambda *a: exports.append(1) or export(*a))
    onnx, bad = compute_trunk_features(backbone, paths, 32, batch_size=8, progress=False, runtime="onnx")
    torch_features, torch_bad = compute_trunk_features(backbone, paths, 32, batch_size=8, progress=False,
                                                       runtime="torch")
    assert bad == torch_bad == {} and onnx.shape == torch_features.shape
    cosine = row_cosines(torch.from_numpy(onnx.astype(np.float32)), torch.from_numpy(torch_features.astype(np.float32)))
    assert float(cosine.min()) >= 0.99, cosine
    assert len(list(onnx_cache.glob("trunk-efficientnet_lite0-32px-*.onnx"))) == 1 and exports == [1]
    compute_trunk_features(backbone, paths[:8], 32, batch_size=8, progress=False, runtime="onnx")
    assert exports == [1]  # the cached graph is used again, not exported again


def test_embed_through_onnx_runtime_gives_the_embeddings_of_pytorch(run_copy, tiny_catalogue, onnx_cache, tmp_path):
    import shutil

    from gallery_core.engine.execution import Execution
    from gallery_core.pipeline.embed import embed

    catalogue = load_catalogue(tiny_catalogue)
    other = shutil.copytree(run_copy, tmp_path / "torch-run")
    onnx = embed(catalogue, run_copy, device="cpu", progress=False, batch_size=8,
                 execution=Execution(chunk_size=16, cpu_runtime="onnx"))
    reference = embed(catalogue, other, device="cpu", progress=False, batch_size=8,
                      execution=Execution(chunk_size=16, cpu_runtime="torch"))
    assert {p.name.split("-")[1] for p in onnx_cache.glob("*.onnx")} == {"encoder", "pretrained"}
    for name in ("photo_embeddings", "new_task_embeddings", "listing_embeddings"):
        a, b = (torch.from_numpy(np.asarray(getattr(r, name), dtype=np.float32)) for r in (onnx, reference))
        assert float(row_cosines(a, b).min()) >= 0.99, name


def test_without_onnx_runtime_the_module_runs_in_pytorch_and_the_log_says_how_to_install_it(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    module = small_module()
    with caplog.at_level(logging.INFO, logger="gallery_core"):
        assert cpu_runner(module, torch.rand(4, 3, 8, 8), "small", CPU, "auto") is module
    assert cpu_runtime.INSTALL_HINT in caplog.text
    with pytest.raises(UsageError, match="needs onnxruntime and onnx"):
        cpu_runner(module, torch.rand(4, 3, 8, 8), "small", CPU, "onnx")
    assert cpu_runner(module, torch.rand(4, 3, 8, 8), "small", torch.device("meta"), "onnx") is module  # no CPU


def test_asking_for_openvino_without_it_is_a_usage_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(UsageError, match=r"--cpu-runtime openvino needs openvino and onnx: .*gallery-core\[openvino\]"):
        cpu_runner(small_module(), torch.rand(4, 3, 8, 8), "small", CPU, "openvino")
    assert cpu_runtime.graph_runner(small_module(), torch.rand(4, 3, 8, 8), "small", "openvino") is None


def test_a_graph_that_disagrees_with_pytorch_is_not_used(onnx_cache, monkeypatch, caplog):
    module, x = small_module(), torch.rand(4, 3, 8, 8)
    runner = cpu_runner(module, x, "small", CPU, "onnx")
    assert isinstance(runner, cpu_runtime.OnnxRunner)
    assert torch.allclose(runner(x), module(x), atol=1e-5)
    monkeypatch.setattr(cpu_runtime.OnnxRunner, "__call__", lambda self, x: -module(x))  # a wrong graph
    with caplog.at_level(logging.WARNING, logger="gallery_core"):
        assert cpu_runner(module, x, "small", CPU, "auto") is module
    assert "disagrees with PyTorch" in caplog.text and not list(onnx_cache.glob("small-*.onnx"))


def test_the_trunk_pass_through_openvino_stays_within_the_feature_bound(tiny_catalogue, onnx_cache, caplog):
    """OpenVINO runs the same cached graph, in bfloat16 where the CPU has it: within MIN_COSINE_REDUCED of PyTorch."""
    pytest.importorskip("openvino")
    paths = load_catalogue(tiny_catalogue).photos["path"].tolist()[:16]
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    with caplog.at_level(logging.INFO, logger="gallery_core"):
        ours, _ = compute_trunk_features(backbone, paths, 32, batch_size=8, progress=False, runtime="openvino")
    reference, _ = compute_trunk_features(backbone, paths, 32, batch_size=8, progress=False, runtime="torch")
    cosine = row_cosines(torch.from_numpy(ours.astype(np.float32)), torch.from_numpy(reference.astype(np.float32)))
    assert float(cosine.min()) >= cpu_runtime.MIN_COSINE_REDUCED
    assert "trunk-efficientnet_lite0-32px: OpenVINO on the CPU" in caplog.text
    assert len(list(onnx_cache.glob("trunk-efficientnet_lite0-32px-*.onnx"))) == 1  # the graph ONNX Runtime reads


def test_the_runtime_is_read_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv(cpu_runtime.RUNTIME_ENV, "torch")
    assert cpu_runtime.resolve_runtime(None) == "torch" and cpu_runtime.resolve_runtime("onnx") == "onnx"
    assert cpu_runtime.resolve_runtime("openvino") == "openvino"
    monkeypatch.delenv(cpu_runtime.RUNTIME_ENV)
    assert cpu_runtime.resolve_runtime(None) == "auto"
    with pytest.raises(UsageError, match="unknown CPU runtime"):
        cpu_runtime.resolve_runtime("tensorrt")
