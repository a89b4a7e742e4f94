"""How the frozen-trunk pass and the embed step run, not what they compute.

Either engine writes the same files (the Ray engine to the float16 rounding of the trunk features: see
``gallery_core.engine.ray_engine``; ONNX Runtime on the CPU to ~1e-5: ``engine.cpu_runtime``), so an ``Execution`` is no part of a step's input key: a run built in one
process and rebuilt on a Ray cluster skips the steps it has already done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gallery_core.data.photos import TRUNK_CHUNK_SIZE
from gallery_core.engine.cpu_runtime import resolve_runtime
from gallery_core.errors import UsageError

if TYPE_CHECKING:  # ray_engine imports Ray only when it runs; its options type is all this module needs
    from gallery_core.engine.ray_engine import RayOptions

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Execution:
    """``engine`` "local" (this process) or "ray" (a Ray Data actor pool); for Ray, the cluster to join
    (None: start a local instance), photos per model batch in an actor, the size of the actor pool and the GPUs
    each actor takes (None: the engine's defaults from the cluster's resources); photos per chunk (the local
    trunk pass, and embed with either engine: the Ray engine keeps embed's chunks to resume from)."""

    engine: str = "local"
    ray_address: str | None = None
    ray_batch_size: int = 256
    ray_actors: int | None = None
    ray_gpus_per_actor: float | None = None
    # photos per chunk of the trunk pass and of embed: the unit of progress and of resume, and (with the model
    # batch) what bounds their memory; rounded up to whole model batches, so the batches are those of one pass
    chunk_size: int = TRUNK_CHUNK_SIZE
    # what runs the frozen trunk and embed's encoder on the CPU: "auto" (ONNX Runtime when installed), "onnx" or
    # "torch"; None: $GALLERY_CORE_CPU_RUNTIME, else "auto" (``engine.cpu_runtime``). The same features to ~1e-5.
    cpu_runtime: str | None = None
    # torch.compile embed's networks on a GPU (``engine.compiled``: the first batch compiles, its time logged;
    # ``data.photos.write_trunk_features`` takes the same flag for the trunk); ignored, with a warning, on the CPU
    # device. The same features to float rounding.
    compile_model: bool = False

    def validate(self) -> Execution:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        resolve_runtime(self.cpu_runtime)  # a UsageError naming the choices
        if self.chunk_size < 1:
            raise UsageError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        ray_flags = {"--ray-address": self.ray_address, "--ray-actors": self.ray_actors,
                     "--ray-gpus-per-actor": self.ray_gpus_per_actor}
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given and self.engine != "ray":
            raise UsageError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --engine ray")
        if self.ray_batch_size < 1 or (self.ray_actors is not None and self.ray_actors < 1) or \
                (self.ray_gpus_per_actor is not None and self.ray_gpus_per_actor < 0):
            raise UsageError("--ray-batch-size and --ray-actors must be >= 1, --ray-gpus-per-actor >= 0")
        return self

    def ray_options(self) -> RayOptions:
        """The Ray engine's options; says how to install Ray where it is missing."""
        from gallery_core.engine.ray_engine import RayOptions, require_ray

        require_ray()
        return RayOptions(address=self.ray_address, batch_size=self.ray_batch_size, actors=self.ray_actors,
                          gpus_per_actor=self.ray_gpus_per_actor)
