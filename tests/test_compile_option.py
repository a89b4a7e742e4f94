"""``--compile`` (issue 21): torch.compile of the trunk pass's and embed's networks on a GPU, off by default.

Tested here without compiling anything (slow, and it needs a compiler): the flag parses and reaches
``Execution``, the runners and the trunk pass; on a GPU device the module goes to ``torch.compile`` and its first
batch is logged as the warm-up (a stand-in compiler here); on the CPU device it is ignored with a warning, as the
CLI's help says, and the features are those of a run without it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gallery_core.cli import build_parser, main
from gallery_core.data.photos import compute_trunk_features
from gallery_core.engine.compiled import WARMUP_FIELD, CompiledRunner, model_runner
from gallery_core.engine.execution import Execution
from gallery_core.engine.features import embed_runners
from gallery_core.models.backbones import create_backbone
from gallery_core.models.encoder import GalleryEncoder

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def no_compiling(monkeypatch) -> list[torch.nn.Module]:
    """torch.compile replaced by a stand-in that returns the module and records it."""
    compiled: list[torch.nn.Module] = []

    def fake_compile(module, **options):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    return compiled


def test_the_flag_is_off_by_default_and_reaches_the_execution(monkeypatch, tmp_path, capsys):
    for command in ("build", "train", "embed"):
        assert build_parser().parse_args([command]).compile_model is False
        assert build_parser().parse_args([command, "--compile"]).compile_model is True
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    assert "on a CPU device it is ignored with a warning" in " ".join(capsys.readouterr().out.split())
    seen = {}

    def fake_run_steps(out, steps, **options):
        seen.update(options)
        return {}

    monkeypatch.setattr("gallery_core.pipeline.build.run_steps", fake_run_steps)
    assert main(["embed", "--compile", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert seen["execution"] == Execution(compile_model=True)
    assert Execution().compile_model is False


def test_on_a_gpu_device_the_module_is_compiled_and_its_first_batch_logged_as_the_warm_up(no_compiling, caplog):
    module = torch.nn.Linear(3, 2)
    runner = model_runner(module, torch.zeros(1, 3), "embed-encoder", CUDA, compile_model=True)
    assert isinstance(runner, CompiledRunner) and no_compiling == [module]
    assert model_runner(module, torch.zeros(1, 3), "embed-encoder", CUDA) is module  # off: the module itself
    # the warm-up, timed on a device the tests have (the CUDA one would synchronise first)
    runner = CompiledRunner(module, "embed-encoder", CPU, compiler=lambda m: m)
    x = torch.randn(4, 3)
    with caplog.at_level(logging.INFO, logger="gallery_core"):
        first, second = runner(x), runner(x)
    assert torch.equal(first, module(x)) and torch.equal(second, module(x))
    warmups = [r for r in caplog.records if hasattr(r, WARMUP_FIELD)]
    assert len(warmups) == 1 and warmups[0].runner == "embed-encoder"
    assert getattr(warmups[0], WARMUP_FIELD) == runner.warmup_seconds >= 0
    assert "torch.compile warm-up (the first batch, compiling included)" in caplog.text


def test_on_the_cpu_device_the_flag_is_ignored_with_a_warning(no_compiling, caplog):
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    encoder = GalleryEncoder(backbone).eval()
    example = torch.randn(2, *backbone_trunk_shape(backbone))
    with caplog.at_level(logging.WARNING, logger="gallery_core"):
        learned, pretrained = embed_runners(encoder, backbone, example, CPU, "torch", compile_model=True)
    assert no_compiling == [] and not isinstance(learned, CompiledRunner) and pretrained is not None
    assert torch.allclose(learned(example), encoder.embed_photos(example, from_trunk=True))
    assert "embed-encoder: --compile is for CUDA devices; ignored on cpu" in caplog.text
    assert "embed-pretrained-top: --compile is for CUDA devices; ignored on cpu" in caplog.text


def backbone_trunk_shape(backbone) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(backbone.trunk(torch.zeros(1, 3, 32, 32)).shape[1:])


def test_the_trunk_pass_with_the_flag_on_the_cpu_gives_the_features_without_it(no_compiling, tmp_path, caplog):
    paths = []
    for i in range(3):
        Image.new("RGB", (40, 30), (60 * i, 90, 200 - 50 * i)).save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    backbone = create_backbone("efficientnet_lite0", 2, pretrained=True).eval()
    with caplog.at_level(logging.WARNING, logger="gallery_core"):
        with_flag, _ = compute_trunk_features(backbone, paths, 32, batch_size=2, progress=False, compile_model=True)
    without, _ = compute_trunk_features(backbone, paths, 32, batch_size=2, progress=False)
    assert no_compiling == [] and np.array_equal(with_flag, without)
    assert "trunk-efficientnet_lite0-32px: --compile is for CUDA devices; ignored on cpu" in caplog.text


def test_the_product_benchmark_reports_the_warm_up_it_logs():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_product.py"
    spec = importlib.util.spec_from_file_location("bench_product", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    runner = CompiledRunner(torch.nn.Identity(), "trunk-x", CPU, compiler=lambda m: m)
    with bench.CompileWarmups().attached() as warmups:
        runner(torch.zeros(1))
    assert list(warmups.seconds) == ["trunk-x"]
    assert bench._warmup_columns(warmups) == {"compile warm-up s": f"trunk-x {warmups.seconds['trunk-x']}"}
    assert bench._warmup_columns(bench.CompileWarmups()) == {}


def test_build_and_train_pass_the_flag_to_the_trunk_pass(tiny_catalogue, tmp_path, monkeypatch):
    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.models.checkpoint import build_model
    from gallery_core.training import data as training_data
    from tests.conftest import tiny_config

    seen = {}
    real = training_data.cached_trunk_features

    def recording(*args, **kwargs):
        seen["compile_model"] = kwargs.get("compile_model")
        return real(*args, **kwargs)

    monkeypatch.setattr(training_data, "cached_trunk_features", recording)
    config, catalogue = tiny_config(), load_catalogue(tiny_catalogue)
    model = build_model(config.model, catalogue.tasks)
    for flag in (True, False):
        training_data.prepare_data(catalogue, model, config.model, tmp_path / f"cache-{flag}", "key", True, CPU,
                                   progress=False, execution=Execution(compile_model=flag))
        assert seen["compile_model"] is flag
