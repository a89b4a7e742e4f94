"""A frozen network on the CPU through ONNX Runtime, with PyTorch's eager mode as the fallback.

Why: on this project's 2-core machines PyTorch eager runs efficientnet_lite0's frozen trunk at 105 / 28
photos/s (128 / 224 px, batch 64), ONNX Runtime's CPU provider at 611 / 218, outputs within 4.3e-5
(DESIGN.md, 2026-12-07). The trunk pass and embed's encoder run on the CPU whenever there is no GPU.

How: a module (eval mode, one float32 input with a free batch dimension) is exported once with PyTorch's
TorchScript exporter (``dynamo=False``: it needs the ``onnx`` package, not ``onnxscript`` as well, and exports in
a fraction of the dynamo exporter's time) and the graph cached (``onnx_cache_dir``) under a key of its weights, input
shape and the versions of torch and ONNX Runtime. Before use it is checked against PyTorch on the first
inputs it is given (``VERIFY_ROWS`` rows, each within cosine ``MIN_COSINE``); when ONNX Runtime is missing
(the ``onnx`` extra), the export fails or the check does, the module runs in PyTorch and the log says why.
Which runtime: ``runtime`` "auto" (ONNX Runtime when installed), "onnx" (an error without it), "openvino" or
"torch"; None reads ``$GALLERY_CORE_CPU_RUNTIME`` (the tests set "torch": they compare paths bit for bit).

"openvino" (the ``openvino`` extra) runs the same exported graph in OpenVINO at the CPU's own inference precision:
bfloat16 where the CPU has it (AVX-512 BF16, AMX), as the GPU path's autocast does, float32 elsewhere. It is
opt-in, not "auto"'s choice: on the 2-core machine it ran the frozen trunk 1.6x faster than ONNX Runtime (1,010 /
321 against 587 / 201 photos/s at 128 / 224 px, batch 64) but its trunk features agree with PyTorch's to a cosine
of ~0.998 (docs/benchmarks/scale.md), not ~1e-6, and a run's steps are keyed as if every runtime gave the same
features (``engine.execution``).
Its check against PyTorch uses the bound every feature path is held to, ``MIN_COSINE_REDUCED``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gallery_core.artifacts.atomic import atomic_path
from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)

CPU_RUNTIMES = ("auto", "onnx", "openvino", "torch")
RUNTIME_ENV = "GALLERY_CORE_CPU_RUNTIME"
CACHE_ENV = "GALLERY_CORE_ONNX_CACHE"
INSTALL_HINT = "pip install 'gallery-core[onnx]'"
OPENVINO_HINT = "pip install 'gallery-core[openvino]'"
OPSET = 17
VERIFY_ROWS = 8
# Per-row cosine of the flattened outputs: float32 kernels that sum in another order agree to ~1e-6; a wrong
# graph (an unsupported op exported wrongly, a stale file) is far below.
MIN_COSINE = 0.999
# OpenVINO's bfloat16 kernels (8 bits of mantissa) agree to ~0.998 on the trunk pass; 0.99 is the bound every
# path's photo features are held to (the GPU's decoding and bf16 autocast against the CPU's).
MIN_COSINE_REDUCED = 0.99

# (B, ...) float32 batch -> (B, ...) output, on the CPU
Runner = Callable[[torch.Tensor], torch.Tensor]


def resolve_runtime(requested: str | None = None) -> str:
    """``requested``, else ``$GALLERY_CORE_CPU_RUNTIME``, else "auto"; checked against ``CPU_RUNTIMES``."""
    runtime = requested or os.environ.get(RUNTIME_ENV) or "auto"
    if runtime not in CPU_RUNTIMES:
        raise UsageError(f"unknown CPU runtime {runtime!r}; choose from {', '.join(CPU_RUNTIMES)}")
    return runtime


def onnx_cache_dir() -> Path:
    """Where exported graphs are kept: ``$GALLERY_CORE_ONNX_CACHE``, else ``$XDG_CACHE_HOME/gallery-core/onnx``
    (``~/.cache`` without it). One folder for every run: entries are keyed by weights and shapes."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gallery-core" / "onnx"


def module_key(module: nn.Module, example: torch.Tensor) -> str:
    """A key of everything an exported graph depends on: every parameter and buffer (names, shapes, values),
    the input's shape past the batch dimension, and the exporter's and runtime's versions."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    digest.update(f"{tuple(example.shape[1:])};{torch.__version__};{_ort_version()};{OPSET}".encode())
    return digest.hexdigest()


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "none"
    return onnxruntime.__version__


def export_graph(module: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Export ``module`` (its forward on inputs shaped like ``example``, any batch size) to ``path``
    atomically; returns the seconds it took."""
    start = time.perf_counter()
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return time.perf_counter() - start


@functools.lru_cache(maxsize=8)
def _session(path: str, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # as many as torch is allowed, so the two compare fairly
    options.inter_op_num_threads = 1
    # Its threads sleep between runs instead of spinning: the trunk pass decodes the next batch on the same cores
    # right after each run, and spinning threads took CPU from the decoder (measured: 3,000 JPEG photos at 128 px,
    # 2 cores, 234-248 -> 257-293 photos/s; docs/benchmarks/scale.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """An exported graph in an ONNX Runtime session, called like the module it was exported from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = _session(str(path), torch.get_num_threads())
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())  # NCHW, whatever x's memory format
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


@functools.lru_cache(maxsize=8)
def _openvino_model(path: str, threads: int) -> Any:
    import openvino

    # No precision hint: the CPU plugin's default is bfloat16 where the CPU computes it natively, else float32
    return openvino.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads})


class OpenVinoRunner:
    """An exported graph compiled by OpenVINO for the CPU, called like the module it was exported from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.model = _openvino_model(str(path), torch.get_num_threads())
        self.precision = str(self.model.get_property("INFERENCE_PRECISION_HINT"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(np.array(self.model(array)[0], dtype=np.float32))  # a copy: the request's buffer


def row_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, both flattened past the batch: (B,).
    Two zero rows count as the same (1): a pooled ReLU output can be all zeros, in both runtimes alike."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    both_zero = (a.abs().amax(dim=1) == 0) & (b.abs().amax(dim=1) == 0)
    return torch.where(both_zero, 1.0, torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12))


def graph_runner(module: nn.Module, example: torch.Tensor, name: str,
                 runtime: str = "onnx") -> OnnxRunner | OpenVinoRunner | None:
    """``module`` exported (or found in the cache), loaded in ``runtime`` ("onnx": ONNX Runtime, "openvino") and
    checked against PyTorch on ``example``'s first rows; None, with a log line saying why, when the runtime is
    missing, the export fails or the check does."""
    label, hint = ("OpenVINO", OPENVINO_HINT) if runtime == "openvino" else ("ONNX Runtime", INSTALL_HINT)
    try:
        import onnx  # noqa: F401  (what the exporter writes the graph with)

        import_module("openvino" if runtime == "openvino" else "onnxruntime")
    except ImportError:
        logger.info("%s: runs in PyTorch on the CPU (%s runs it several times faster: %s)", name, label, hint)
        return None
    module = module.eval()
    path = onnx_cache_dir() / f"{name}-{module_key(module, example)}.onnx"
    try:
        if not path.is_file():
            seconds = export_graph(module, example[:1], path)
            logger.info("%s: exported to ONNX in %.1f s (%s)", name, seconds, path)
        runner = OpenVinoRunner(path) if runtime == "openvino" else OnnxRunner(path)
        rows = example[:VERIFY_ROWS]
        with torch.no_grad():
            expected = module(rows).float()
        cosine = float(row_cosines(runner(rows), expected).min())
    except Exception as err:  # an op the exporter or the runtime lacks, a damaged file: PyTorch still works
        logger.warning("%s: %s not used (%s: %s); running in PyTorch", name, label, type(err).__name__, err)
        return None
    bound = MIN_COSINE_REDUCED if runtime == "openvino" else MIN_COSINE
    if not cosine >= bound:
        logger.warning("%s: the ONNX graph in %s disagrees with PyTorch (cosine %.5f < %.3f on %d rows); running "
                       "in PyTorch (%s is removed)", name, label, cosine, bound, len(rows), path)
        path.unlink(missing_ok=True)
        return None
    precision = f", {runner.precision}" if isinstance(runner, OpenVinoRunner) else ""
    logger.info("%s: %s on the CPU%s (checked against PyTorch: cosine >= %.6f)", name, label, precision, cosine)
    return runner


def cpu_runner(module: nn.Module, example: torch.Tensor, name: str, device: torch.device,
               runtime: str | None = None) -> Runner:
    """What runs ``module`` on batches shaped like ``example``: ONNX Runtime on the CPU where ``runtime`` allows
    it and the graph passes its check, else ``module`` itself (on a GPU always the module)."""
    runtime = resolve_runtime(runtime)
    if device.type != "cpu" or runtime == "torch":
        return module
    if runtime in ("onnx", "openvino"):
        needs, hint = (("openvino", OPENVINO_HINT) if runtime == "openvino" else ("onnxruntime", INSTALL_HINT))
        try:
            import onnx  # noqa: F401

            import_module(needs)
        except ImportError as err:
            raise UsageError(f"--cpu-runtime {runtime} needs {needs} and onnx: {hint}") from err
    return graph_runner(module, example, name, "openvino" if runtime == "openvino" else "onnx") or module


class MethodModule(nn.Module):
    """``method(x)`` of ``owner`` as a module's forward, so that what a model computes through one of its
    methods (``embed_photos(x, from_trunk=True)``, ``forward_top``) can be exported; ``owner``'s weights are
    this module's, so they are part of the cache key."""

    def __init__(self, owner: nn.Module, method: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.owner = owner
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method(x)
