"""Training on several processes with PyTorch's DistributedDataParallel (DDP), launched by ``torchrun``.

``torchrun --nproc-per-node N -m gallery_core train ...`` starts N copies of the command and gives each
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment. ``start``
joins them into one process group: ``nccl`` on GPUs (one GPU per local rank, ``cuda:LOCAL_RANK``), ``gloo``
on the CPU, or the backend named in ``GALLERY_CORE_DIST_BACKEND``. Without torchrun nothing here does
anything: every helper answers as for a single process (rank 0 of 1), so the training loop has one path.

What the loop does with it (``gallery_core.training.loop``): every rank trains on its share of each global
batch (``batch_shard``), DDP averages the gradients, per-task sums and counts are added up over the ranks
(``all_reduce_sum``), and only rank 0 (``is_main_process``) writes files, logs and progress bars.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gallery_core.errors import UsageError
from gallery_core.models.device import pick_device

logger = logging.getLogger(__name__)

BACKEND_ENV = "GALLERY_CORE_DIST_BACKEND"  # force a backend, e.g. gloo on GPUs
TIMEOUT_ENV = "GALLERY_CORE_DIST_TIMEOUT_S"  # how long a rank waits for the others (seconds)
# The other ranks wait at a barrier while rank 0 computes the frozen-trunk cache, which takes as long as a
# pass over every photo: the timeout must cover it (torch's default of 10-30 minutes does not at scale).
DEFAULT_TIMEOUT_S = 4 * 3600
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets the same variables)."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def start(device: str | None = None) -> bool:
    """Join torchrun's process group. Returns whether this call joined it (then call ``stop``); without
    torchrun, or when a group exists already, it does nothing and returns False.

    ``device`` as ``pick_device`` reads it: a CUDA device means ``nccl`` and ``cuda:LOCAL_RANK``."""
    if not launched_by_torchrun() or is_distributed():
        return False
    dev = pick_device(device)
    backend = os.environ.get(BACKEND_ENV) or ("nccl" if dev.type == "cuda" else "gloo")
    options: dict[str, Any] = {}
    if dev.type == "cuda":
        local, n_gpus = local_rank(), torch.cuda.device_count()
        if local >= n_gpus:
            raise UsageError(f"torchrun started local rank {local}, but this machine has {n_gpus} GPU(s): start at "
                             "most one process per GPU (--nproc-per-node), or train on the CPU with --device cpu")
        torch.cuda.set_device(local)
        if backend == "nccl":
            options["device_id"] = torch.device("cuda", local)
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend, timeout=timeout, **options)
    if not is_main_process():  # one voice: rank 0 logs progress, the others only their errors
        logging.getLogger("gallery_core").setLevel(logging.ERROR)
    logger.info(f"distributed training: {world_size()} processes, backend {backend}")
    return True


def stop(wait: bool = True) -> None:
    """Leave the process group (if there is one); ``wait`` first waits for every rank to get here."""
    if not is_distributed():
        return
    if wait:
        barrier()
    dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's number on its machine (torchrun's LOCAL_RANK): which GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """Rank 0, the one process that writes files, logs and progress bars (the only process without DDP)."""
    return rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """The device this rank trains on: under DDP a CUDA device is this rank's own GPU, ``cuda:LOCAL_RANK``."""
    if is_distributed() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first while the others wait, then they run it: for work that fills a cache
    the others then read (the frozen-trunk features) instead of computing it N times at once."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def _collective_device() -> torch.device:
    # nccl reduces tensors on the GPU only; gloo on the CPU.
    return torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float] | np.ndarray) -> np.ndarray:
    """Element-wise sums over every rank, in float64 (counts and loss sums); the values themselves without DDP."""
    out = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return out
    tensor = torch.from_numpy(out.copy()).to(_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (picklable objects): the others follow a decision rank 0 made."""
    if not is_distributed():
        return value
    box = [value if is_main_process() else None]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank. Each rank updates them from its own
    share of a batch; rank 0's are the ones its checkpoint saves, so every rank validates with those."""
    if not is_distributed():
        return
    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def batch_shard(batch: np.ndarray) -> tuple[np.ndarray, bool]:
    """This rank's listings of a global batch (every ``world_size``-th, from its rank), and whether they count.

    Every rank holds the same global batch (the same seeded permutation), so the shards are disjoint and
    together the whole batch: N processes see what one process sees. A rank left without listings (a last
    batch smaller than the number of ranks) still has to take part in the step's collective operations: it
    runs the batch's first listing and counts nothing (``False``), so its gradients are zero."""
    shard = batch[rank()::world_size()]
    if len(shard) == 0:
        return batch[:1], False
    return shard, True


def wrap(module: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel (gradients averaged over ranks in each backward), or as it is
    without DDP. ``find_unused``: some weights take no gradient in some epochs (LP-FT's probe phase). BatchNorm layers that train become ``SyncBatchNorm`` on GPUs, so their statistics are those
    of the global batch as with one process; it has no CPU kernel in torch, so on the CPU each rank
    normalises by its own share of the batch (see docs/architecture.md for what that changes)."""
    if not is_distributed():
        return module
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    # The 1x1 convolutions' gradients (channels-last activations) differ from DDP's buckets only in the strides
    # of size-1 dimensions, the same memory: DDP's warning about it says nothing here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                               find_unused_parameters=find_unused)
