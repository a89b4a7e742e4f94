"""Shared fixtures: a tiny generated catalogue and a tiny built run, made once per test session."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from gallery_core.config import (
    BuildConfig,
    EmbedConfig,
    IndexConfig,
    ModelConfig,
    PredictConfig,
    ProjectionConfig,
    TrainConfig,
)

torch.set_num_threads(2)
# The frozen trunk and embed's encoder run in PyTorch in the tests (subprocesses included): the tests compare paths
# bit for bit and build many tiny runs; the ONNX Runtime path has its own tests (test_cpu_runtime.py), which ask
# for it explicitly.
os.environ["GALLERY_CORE_CPU_RUNTIME"] = "torch"


def tiny_config(**train_overrides) -> BuildConfig:
    """Small and fast: 32 px photos, 16-d embeddings, a couple of epochs."""
    # min_listings_to_finetune 0: the tiny catalogue's 40 listings still fine-tune, so tests see training.
    # completion_weight 0: the attribute heads alone, so the tests that compare runs (DDP against one process, resumed
    # against uninterrupted) compare them on the paper's objective; test_self_supervised trains with the objective on.
    train = {"max_epochs": 2, "batch_size": 8, "lr": 1e-3, "patience": 5, "seed": 0,
             "min_listings_to_finetune": 0, "completion_weight": 0.0} | train_overrides
    return BuildConfig(
        model=ModelConfig(image_size=32, embed_dim=16, head_hidden=16),
        train=TrainConfig(**train),
        # The richer of the new-task embeddings, whatever the default: tests then see both parts.
        embed=EmbedConfig(new_task_features="pretrained+learned"),
        index=IndexConfig(n_trees=5),
        projection=ProjectionConfig(n_neighbors=5),
        predict=PredictConfig(oof_folds=3),
    ).validate()


@pytest.fixture(autouse=True)
def _restore_gallery_core_logging():
    """The CLI sets gallery_core's logger up (level, handler); undo that after each test so that what a
    later test's caplog sees does not depend on which tests ran before it."""
    logger = logging.getLogger("gallery_core")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture(scope="session")
def tiny_catalogue(tmp_path_factory) -> Path:
    from gallery_core.demo.generator import generate_demo_catalogue

    out = tmp_path_factory.mktemp("catalogue") / "tiny"
    return generate_demo_catalogue(out, n_listings=40, seed=0, image_size=32, workers=1, progress=False)


@pytest.fixture
def catalogue_copy(tiny_catalogue, tmp_path) -> Path:
    """A private copy of the tiny catalogue that a test may damage."""
    return Path(shutil.copytree(tiny_catalogue, tmp_path / "catalogue"))


@pytest.fixture(scope="session")
def tiny_run(tiny_catalogue, tmp_path_factory) -> Path:
    from gallery_core.pipeline.build import run_steps

    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_steps(out, catalogue_dir=tiny_catalogue, config=tiny_config(), progress=False)
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run that a test may change."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))
