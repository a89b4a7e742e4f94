"""``torch.compile`` for the networks of the trunk pass and embed on a GPU: the ``--compile`` option
(``Execution.compile_model``), off by default.

Why an option: compiling happens on the first batch (and once more when the batch size first changes), which
costs time that only a long pass earns back, and it needs a working compiler toolchain on the machine; the
warm-up (the first batch, compiling included) is logged, with the seconds in the record's ``compile_warmup_s``
field, so a benchmark can report it (``benchmarks/bench_product.py``).

On the CPU device the option is ignored with a logged warning rather than refused: ``--device auto`` picks the
CPU on a machine without a GPU, and the same command should still run there, where the CPU runtime
(``engine.cpu_runtime``: ONNX Runtime) is what speeds the networks up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from gallery_core.engine.cpu_runtime import Runner, cpu_runner

logger = logging.getLogger(__name__)

WARMUP_FIELD = "compile_warmup_s"  # the log record's attribute holding the warm-up seconds


class CompiledRunner:
    """``module`` compiled by ``compiler`` (``torch.compile``), called like it; its first call, which compiles, is
    timed (the device synchronised) and logged as the warm-up (``warmup_seconds``)."""

    def __init__(self, module: nn.Module, name: str, device: torch.device,
                 compiler: Callable[[nn.Module], Callable[[torch.Tensor], torch.Tensor]] | None = None) -> None:
        self.name, self.device = name, device
        self.compiled = (compiler or torch.compile)(module.eval())
        self.warmup_seconds: float | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.warmup_seconds is not None:
            return self.compiled(x)
        started = time.perf_counter()
        out = self.compiled(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the kernels of the first batch have run, not only been queued
        self.warmup_seconds = time.perf_counter() - started
        logger.info("%s: torch.compile warm-up (the first batch, compiling included) %.1f s", self.name,
                    self.warmup_seconds, extra={WARMUP_FIELD: self.warmup_seconds, "runner": self.name})
        return out


def model_runner(module: nn.Module, example: torch.Tensor, name: str, device: torch.device,
                 runtime: str | None = None, compile_model: bool = False) -> Runner:
    """What runs ``module`` on batches shaped like ``example``: compiled on a GPU when ``compile_model``;
    otherwise ``cpu_runner`` (ONNX Runtime on the CPU where ``runtime`` allows, else the module itself)."""
    if compile_model:
        if device.type == "cuda":
            return CompiledRunner(module, name, device)
        logger.warning("%s: --compile is for CUDA devices; ignored on %s (runs as without it)", name, device)
    return cpu_runner(module, example, name, device, runtime)
