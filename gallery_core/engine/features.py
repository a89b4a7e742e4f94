"""The model on frozen-trunk features: what training, embed and the Ray engine share.

Trunk features come from the cache (a tensor in memory, an array, or the file read a slice at a time with
``NpyRows``) and enter the top stages as float32 channels-last; the trained encoder turns them into photo
embeddings, the pretrained backbone's top into its own pooled features.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.npy_rows import NpyRows
from gallery_core.config import ModelConfig
from gallery_core.engine.compiled import model_runner
from gallery_core.engine.cpu_runtime import MethodModule, Runner
from gallery_core.models.backbones import Backbone, create_backbone
from gallery_core.models.encoder import GalleryEncoder

# The memory format in which trunk features enter the model's top stages. The trunk computes them
# channels-last (``data.photos``) but a cache file holds them row-major, and the CPU's convolution kernels
# for the two formats sum in different orders: without one fixed format, a run that computed its trunk
# features trained and embedded with other numbers than one that loaded them (a warm cache, a resumed
# build): listing embeddings differed by up to 3e-3 on the demo. Channels-last is the format the trunk
# and the pixel path use, so a cold build's training is unchanged by fixing it.
TRUNK_MEMORY_FORMAT = torch.channels_last


def trunk_input(features: torch.Tensor) -> torch.Tensor:
    """Trunk features (P, C, h, w) in ``TRUNK_MEMORY_FORMAT`` (a copy only when they are not already)."""
    return features.contiguous(memory_format=TRUNK_MEMORY_FORMAT) if features.dim() == 4 else features


def trunk_batch(features: torch.Tensor | np.ndarray | NpyRows, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of the trunk features (in-memory tensor, array or the cache file) as a float32 batch (B, C, h, w)
    in ``TRUNK_MEMORY_FORMAT`` on ``device``."""
    if isinstance(features, torch.Tensor):
        selected = features[torch.from_numpy(rows)]
    else:
        selected = torch.from_numpy(np.ascontiguousarray(features[rows]))  # reads only these rows of the file
    return trunk_input(selected.to(device).float())


def pretrained_backbone(config: ModelConfig, device: torch.device | None = None) -> Backbone:
    """The run's backbone with its pretrained weights and statistics, in eval mode (its top stages turn
    cached trunk features into the pretrained pooled features)."""
    return create_backbone(config.backbone, config.trainable_stages, config.weights_path,
                           pretrained=True).to(device or torch.device("cpu")).eval()


@torch.no_grad()
def pretrained_photo_features(config: ModelConfig, trunk_features: torch.Tensor | np.ndarray | NpyRows,
                              device: torch.device | None = None, batch_size: int = 1024,
                              progress: bool = False, backbone: Backbone | None = None,
                              run: Runner | None = None) -> np.ndarray:
    """The pretrained backbone's own pooled features (P, feature_dim) from frozen-trunk features (P, C, h, w)
    (a tensor, an array or the cache file, ``NpyRows``).

    The trunk is frozen ImageNet weights in every model, so its cached output serves here: only the top
    stages run, with their pretrained weights and statistics (``backbone``: made here when not given).
    ``run``: what computes ``backbone.forward_top`` on a batch (e.g. its ONNX Runtime graph, ``cpu_runner``).
    """
    device = device or torch.device("cpu")
    backbone = backbone or pretrained_backbone(config, device)
    run = run or backbone.forward_top
    chunks = []
    for start in tqdm(range(0, len(trunk_features), batch_size), desc="pretrained features", leave=False,
                      disable=not progress):
        rows = np.arange(start, min(start + batch_size, len(trunk_features)))
        chunks.append(run(trunk_batch(trunk_features, rows, device)).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, backbone.feature_dim), np.float32)


@torch.no_grad()
def encode_trunk_features(encoder: GalleryEncoder, trunk_features: torch.Tensor | np.ndarray | NpyRows,
                          device: torch.device, batch_size: int = 1024, progress: bool = False,
                          run: Runner | None = None) -> np.ndarray:
    """Photo embeddings (P, D) float32 from frozen-trunk features (P, C, h, w): a tensor, an array or the
    cache file (``NpyRows``). ``run``: what computes ``encoder.embed_photos(x, from_trunk=True)`` on a batch
    (e.g. its ONNX Runtime graph, ``cpu_runner``)."""
    encoder.eval()
    run = run or partial(encoder.embed_photos, from_trunk=True)
    chunks = []
    for start in tqdm(range(0, len(trunk_features), batch_size), desc="embed photos", disable=not progress):
        rows = np.arange(start, min(start + batch_size, len(trunk_features)))
        features = trunk_batch(trunk_features, rows, device)
        chunks.append(run(features).float().cpu().numpy())
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, encoder.embed_dim), np.float32)


def embed_runners(encoder: GalleryEncoder, backbone: Backbone | None, example: torch.Tensor, device: torch.device,
                  runtime: str | None = None, compile_model: bool = False) -> tuple[Runner, Runner | None]:
    """What runs embed's two models on trunk features shaped like ``example`` (B, C, h, w): the trained
    encoder's photo embedding and (``backbone`` given) the pretrained top's pooled features; ONNX Runtime on the
    CPU where ``runtime`` allows, compiled on a GPU when ``compile_model`` (``engine.compiled.model_runner``),
    else the modules themselves."""
    encoder.eval()
    learned = model_runner(MethodModule(encoder, partial(encoder.embed_photos, from_trunk=True)), example,
                           "embed-encoder", device, runtime, compile_model)
    pretrained = None if backbone is None else \
        model_runner(MethodModule(backbone, backbone.forward_top), example, "embed-pretrained-top", device, runtime,
                     compile_model)
    return learned, pretrained
