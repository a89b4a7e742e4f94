"""The Ray engine: photo decoding and the encoder spread over a Ray cluster with Ray Data.

The same numbers as the single-process path (``gallery_core.data.photos.compute_trunk_features`` and
``gallery_core.pipeline.embed``), computed by a pipeline of three parts:

1. the photo table (position in ``paths``, path) is split into blocks; Ray *tasks* decode them with the
   project's decoder (``decode_batch``), one CPU each; an undecodable photo becomes a row with its reason.
   When the actors have a GPU, the tasks only read the files' bytes, which are what crosses the object store
   (~100 KB a JPEG instead of its decoded pixels), and the actors decode them on their GPU
   (``engine.device_decode``: nvJPEG, the CPU decoder for what it cannot take);
2. an *actor pool* (``map_batches`` with a callable class: each actor loads the backbone or checkpoint
   once) runs the model on the decoded batches, on a GPU each where the cluster has them;
3. the driver streams the results back (``iter_batches``) and places each row by its position into
   ``.npy`` files with plain writes (``NpyRows``), so the outputs never sit whole in the driver's memory.

Batches arrive in any order; where their rows go is ``engine.ray_outputs``: whole files with a row for every
photo, compacted over the bad photos and renamed into place when all have arrived (an error anywhere leaves
no partial output), or, for embed, chunk files that a stopped run keeps and the next one resumes from. The
photo embedder runs its model on batches of one fixed size (zeros after the last photo), so that a photo's
embedding does not depend on how Ray batched it: a resumed embed equals an uninterrupted one bit for bit.

Ray is an optional extra (``pip install 'gallery-core[distributed]'``) and is imported lazily, inside the
functions, so the package imports without it. Every node of a cluster needs gallery-core installed and
must see the photo files and the checkpoint at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gallery_core.artifacts.store import file_checksum
from gallery_core.config import BuildConfig
from gallery_core.data.photos import decode_batch
from gallery_core.engine.device_decode import decode_bytes_on_device, normalise_pixels, read_photo_bytes
from gallery_core.engine.features import encode_trunk_features, pretrained_backbone, pretrained_photo_features
from gallery_core.engine.ray_outputs import ChunkFiles, WholeFiles
from gallery_core.errors import UsageError
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import load_checkpoint

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'gallery-core[distributed]'"

PHOTO_EMBEDDINGS_FILE = "photo_embeddings.npy"
PHOTO_PRETRAINED_FILE = "photo_pretrained.npy"

# Rows per block of the photo table handed to the decoding tasks, in model batches: a few batches per
# block keeps the number of blocks (Ray objects) modest on 10M photos while leaving many blocks to share out.
BATCHES_PER_BLOCK = 4
# Memory a decoding task declares: its worker process (Python, torch and gallery-core imported: ~360 MiB seen)
# and, per photo of its batch, a photo decoded at up to ~0.7 MP before its resize (larger JPEGs decode reduced).
DECODE_TASK_MEMORY = 512 * 2**20
DECODE_MEMORY_PER_PHOTO = 2 * 2**20


def require_ray() -> Any:
    """The ``ray`` module (with Ray Data); a ``UsageError`` saying how to install it when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs Ray Data, not only Ray core)
    except ImportError as err:
        raise UsageError(f"the Ray engine (--engine ray) needs Ray: {INSTALL_HINT}") from err
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None      # None: start a local Ray instance (ray.init()); "auto" or "ray://host:10001" to join a cluster
    batch_size: int = 256           # photos per model batch in an actor
    actors: int | None = None       # size of the actor pool (None: one per GPU when the cluster has GPUs, else 1-2 CPU actors)
    gpus_per_actor: float | None = None   # None: 1 when the cluster has GPUs, else 0
    num_cpus: int | None = None     # only for a local instance started here (tests pass 2)
    bytes_to_actors: bool | None = None  # tasks read bytes, actors decode (None: when the actors have a GPU)


# --- the stages that run on the cluster (module level: Ray pickles them by reference) ---

def _decode_rows(batch: dict[str, np.ndarray], image_size: int) -> dict[str, np.ndarray]:
    """A Ray task: decode a block of photos. Every input row gives an output row: the good ones their
    pixels, the bad ones zeros and their reason (an empty reason means a good photo)."""
    paths = [str(p) for p in batch["path"]]
    with ThreadPoolExecutor(max_workers=1) as pool:  # one CPU per task: Ray runs the tasks side by side
        good_pixels, bad = decode_batch(paths, image_size, pool)  # (G, S, S, 3) uint8
    pixels = np.zeros((len(paths), image_size, image_size, 3), np.uint8)  # (B, S, S, 3)
    is_good = np.array([i not in bad for i in range(len(paths))], dtype=bool)
    pixels[is_good] = good_pixels
    reasons = np.array([bad.get(i, "") for i in range(len(paths))], dtype=object)
    return {"index": np.asarray(batch["index"], dtype=np.int64), "reason": reasons, "pixels": pixels}


def _read_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Ray task when the actors decode: read a block of photo files (None where one cannot be read)."""
    paths = [str(p) for p in batch["path"]]
    with ThreadPoolExecutor(max_workers=4) as pool:  # reading waits on storage, not on the CPU
        data = np.array(list(pool.map(read_photo_bytes, paths)), dtype=object)
    return {"index": np.asarray(batch["index"], dtype=np.int64), "path": np.array(paths, dtype=object), "data": data}


def _model_input(pixels: np.ndarray, backbone: Any, device: torch.device) -> torch.Tensor:
    """``to_model_input`` on ``device``: on a GPU the uint8 photos cross the bus (a quarter of the bytes of
    floats) and the GPU normalises them, not the actor's one CPU thread. The same float32 arithmetic."""
    return normalise_pixels(torch.tensor(pixels, device=device).permute(0, 3, 1, 2), backbone.mean, backbone.std)


@torch.no_grad()
def _trunk_batch(backbone: Any, x: torch.Tensor, device: torch.device) -> np.ndarray:
    """Frozen-trunk features float16 (B, C, h, w) of model input (B, 3, S, S) on ``device``, computed as
    ``compute_trunk_features`` computes them (bf16 autocast on a GPU, float16 storage)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return backbone.trunk(x).float().cpu().numpy().astype(np.float16)


class _ModelStage:
    """What every actor does with a batch, decoded (pixels) or read (bytes, decoded here on the actor's device):
    the model on its good rows; the bad rows get zeros."""

    outputs: dict[str, tuple[tuple[int, ...], np.dtype]]  # column -> (row shape, dtype), set by subclasses
    normalisation: Any  # what has the model input's mean/std (the backbone), set by subclasses

    def __init__(self, gpus: float, image_size: int) -> None:
        # A CPU actor on a GPU node must not take the GPU; a GPU actor sees only the GPU Ray gave it.
        self.device = torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")
        self.image_size = image_size
        self.pool = ThreadPoolExecutor(max_workers=2)  # the CPU decoder, for photos the device cannot take

    def compute(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def model_input(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, np.ndarray]:
        """(model input of the good photos (G, 3, S, S) on the device, the reason of each row: "" when good)."""
        if "data" in batch:
            x, bad = decode_bytes_on_device(list(batch["data"]), [str(p) for p in batch["path"]], self.image_size,
                                            self.pool, self.device, self.normalisation.mean, self.normalisation.std)
            return x, np.array([bad.get(i, "") for i in range(len(batch["data"]))], dtype=object)
        is_good = np.array([r == "" for r in batch["reason"]], dtype=bool)  # (B,)
        pixels = batch["pixels"] if is_good.all() else batch["pixels"][is_good]  # (G, S, S, 3)
        return _model_input(pixels, self.normalisation, self.device), batch["reason"]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x, reasons = self.model_input(batch)
        is_good = np.array([r == "" for r in reasons], dtype=bool)  # (B,)
        out: dict[str, np.ndarray] = {"index": batch["index"], "reason": reasons}
        computed = self.compute(x) if len(x) else {}
        for name, (shape, dtype) in self.outputs.items():
            column = np.zeros((len(is_good), *shape), dtype)
            if name in computed:
                column[is_good] = computed[name]
            out[name] = column
        return out


class _TrunkFeatures(_ModelStage):
    def __init__(self, backbone_name: str, trainable_stages: int, weights_path: str | None, image_size: int,
                 gpus: float) -> None:
        super().__init__(gpus, image_size)
        backbone = create_backbone(backbone_name, trainable_stages, weights_path, pretrained=True)
        self.backbone = self.normalisation = backbone.to(self.device).eval()
        self.backbone.trunk.to(memory_format=torch.channels_last)
        probe = _trunk_batch(self.backbone, torch.zeros((1, 3, image_size, image_size), device=self.device),
                             self.device)
        self.outputs = {"features": (probe.shape[1:], np.dtype(np.float16))}

    def compute(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {"features": _trunk_batch(self.backbone, x, self.device)}


class _PhotoEmbedder(_ModelStage):
    def __init__(self, checkpoint_path: str, with_pretrained: bool, batch_size: int, image_size: int,
                 gpus: float) -> None:
        super().__init__(gpus, image_size)
        model, checkpoint = load_checkpoint(checkpoint_path, device=str(self.device))
        self.encoder = model.encoder.eval()
        self.normalisation = self.encoder.backbone
        self.encoder.backbone.trunk.to(memory_format=torch.channels_last)
        self.config = BuildConfig.from_dict(checkpoint["config"]).model
        self.batch_size = batch_size
        self.outputs = {"embedding": ((self.encoder.embed_dim,), np.dtype(np.float32))}
        self.pretrained = None
        if with_pretrained:  # built once per actor, not per batch
            self.pretrained = pretrained_backbone(self.config, self.device)
            self.outputs["pretrained"] = ((self.pretrained.feature_dim,), np.dtype(np.float32))

    def compute(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        # The model always sees whole batches of batch_size rows (zeros after the last photo): CPU kernels pick
        # their algorithm by the batch's size, so a photo in a short batch (the last of a block, a batch with
        # bad photos) would get other last bits than in a full one, and a resumed run, batched otherwise,
        # would not equal an uninterrupted one. Rows do not mix: the padding changes no other row's numbers.
        n = len(x)
        padded = -(-n // self.batch_size) * self.batch_size
        if padded > n:
            x = torch.cat([x, x.new_zeros((padded - n, *x.shape[1:]))])
        # Through float16, as the trunk cache stores the features; the top stages read them as float32
        # channels-last (trunk_input), as on the local path.
        trunk = _trunk_batch(self.encoder.backbone, x, self.device)  # (B, C, h, w) float16
        out = {"embedding": encode_trunk_features(self.encoder, trunk, self.device, self.batch_size)[:n]}
        if self.pretrained is not None:
            out["pretrained"] = pretrained_photo_features(self.config, trunk, self.device, self.batch_size,
                                                          backbone=self.pretrained)[:n]
        return out


# --- the driver ---

@contextmanager
def _ray_session(options: RayOptions, progress: bool) -> Iterator[Any]:
    """Ray, connected: an instance already running in this process is used as it is; otherwise one is
    joined (``options.address``) or started locally, and shut down again at the end. Ray Data's own
    progress bars follow ``progress`` meanwhile."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started and options.address is None:
        ray.init(num_cpus=options.num_cpus, include_dashboard=False)
    elif started:
        try:
            ray.init(address=options.address)
        except ConnectionError as err:
            raise UsageError(f"--ray-address {options.address}: cannot join a Ray cluster there ({err}); start "
                             "one with `ray start --head`, or leave the address out for a local instance") from err
    context = ray.data.DataContext.get_current()
    bars = context.enable_progress_bars
    context.enable_progress_bars = progress
    try:
        yield ray
    finally:
        context.enable_progress_bars = bars
        if started:
            ray.shutdown()


def _pool_size(ray: Any, options: RayOptions) -> tuple[int, float]:
    """(actors, GPUs per actor) from the options, filling what they leave open from the cluster's resources."""
    resources = ray.cluster_resources()
    cluster_gpus, cluster_cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    gpus = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if cluster_gpus > 0 else 0.0)
    if options.actors is not None:
        actors = options.actors
    elif gpus > 0:
        actors = max(1, int(cluster_gpus // gpus))
    else:
        actors = 2 if cluster_cpus >= 8 else 1  # the rest of the CPUs decode
    if actors < 1 or gpus < 0 or options.batch_size < 1:
        raise UsageError(f"Ray options: actors, batch size must be >= 1 and GPUs per actor >= 0; got {options}")
    logger.info("Ray: %d actor(s) with %g GPU each; the cluster has %g CPUs, %g GPUs",
                actors, gpus, cluster_cpus, cluster_gpus)
    return actors, gpus


def _run(stage: type, stage_kwargs: dict[str, Any], paths: list[str], image_size: int,
         outputs: dict[str, Path], options: RayOptions, progress: bool, chunk_size: int | None = None,
         identity: dict[str, Any] | None = None) -> dict[int, str]:
    """Decode ``paths`` in Ray tasks, run ``stage`` in an actor pool and write each of its ``outputs``
    columns to its file: rows in ``paths`` order without the bad photos, renamed into place only when all
    are complete. With ``chunk_size``, through chunk files (``ray_outputs.ChunkFiles``: ``identity`` says what
    besides the photos decides the numbers): the photos of the chunks a stopped run completed are not computed
    again, and nothing at all when the outputs are already complete. Returns {position in paths: reason} of
    the bad photos."""
    if not paths:
        raise UsageError("no photos to embed: the list of photo paths is empty")
    sink = WholeFiles(outputs, len(paths)) if chunk_size is None else \
        ChunkFiles(outputs, paths, chunk_size, identity or {})
    with sink:
        if len(sink.todo) < len(paths):
            logger.info("Ray: %d of %d photos done by an earlier run, %d to compute",
                        len(paths) - len(sink.todo), len(paths), len(sink.todo))
        if len(sink.todo):
            _compute(stage, stage_kwargs, paths, sink, image_size, options, progress)
        bad = sink.finish()
    if bad:
        logger.warning("%d of %d photos could not be decoded and were left out", len(bad), len(paths))
    return bad


def _compute(stage: type, stage_kwargs: dict[str, Any], paths: list[str], sink: WholeFiles | ChunkFiles,
             image_size: int, options: RayOptions, progress: bool) -> None:
    """The Ray pipeline over the photos ``sink.todo`` names (positions in ``paths``), its rows put into ``sink``."""
    import pyarrow as pa

    todo = sink.todo
    with _ray_session(options, progress) as ray:
        actors, gpus = _pool_size(ray, options)
        block_rows = options.batch_size * BATCHES_PER_BLOCK
        names = paths if len(todo) == len(paths) else [paths[i] for i in todo]
        table = pa.table({"index": pa.array(todo), "path": pa.array(names)})
        blocks = ray.data.from_arrow([table.slice(s, block_rows) for s in range(0, len(todo), block_rows)])
        bytes_to_actors = options.bytes_to_actors if options.bytes_to_actors is not None else gpus > 0
        if bytes_to_actors:  # the actors decode on their device: the tasks only read the files
            read = blocks.map_batches(_read_rows, batch_size=options.batch_size, num_cpus=1, memory=DECODE_TASK_MEMORY)
        else:
            # The memory a decoding task needs (decoded photos and their copy) is declared: Ray schedules by it,
            # and, as it differs from the actors' resources, does not fuse decoding into the actors.
            read = blocks.map_batches(_decode_rows, batch_size=options.batch_size, fn_kwargs={"image_size": image_size},
                                      num_cpus=1, memory=DECODE_TASK_MEMORY + DECODE_MEMORY_PER_PHOTO * options.batch_size)
        logger.info("Ray: the %s decode the photos", "actors" if bytes_to_actors else "tasks")
        dataset = read.map_batches(stage, batch_size=options.batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                                   num_gpus=gpus if gpus > 0 else None,
                                   fn_constructor_kwargs=stage_kwargs | {"gpus": gpus, "image_size": image_size})
        # Closed on the way out, so that after an error or a stop the pipeline ends at once.
        with tqdm(total=len(todo), desc="ray embed", unit="photo", disable=not progress) as bar, \
                closing(iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))) as batches:
            for batch in batches:
                sink.put(batch)
                bar.update(len(batch["index"]))


def ray_trunk_features(backbone_name: str, trainable_stages: int, weights_path: str | None, paths: list[str],
                       image_size: int, out_npy: Path, options: RayOptions, progress: bool = True) -> dict[int, str]:
    """The frozen trunk's features of every photo, written to ``out_npy`` (atomically) as float16 (N_good, C, h, w),
    rows in ``paths`` order with the undecodable photos left out -- the same values as
    gallery_core.data.photos.compute_trunk_features. Returns {position in paths: reason} of the bad photos."""
    kwargs = {"backbone_name": backbone_name, "trainable_stages": trainable_stages, "weights_path": weights_path}
    return _run(_TrunkFeatures, kwargs, list(paths), image_size, {"features": Path(out_npy)}, options, progress)


def ray_photo_embeddings(checkpoint_path: Path, paths: list[str], image_size: int, out_dir: Path,
                         options: RayOptions, with_pretrained: bool, progress: bool = True,
                         chunk_size: int | None = None) -> tuple[Path, Path | None, dict[int, str]]:
    """Decode -> frozen trunk -> round to float16 (as the trunk cache stores it) -> back to float32, channels-last
    (gallery_core.engine.features.trunk_input) -> the trained encoder's photo embedding (and, if with_pretrained, the
    pretrained backbone's pooled features, as gallery_core.engine.features.pretrained_photo_features computes them),
    run in a Ray Data actor pool. Writes ``out_dir/photo_embeddings.npy`` float32 (N_good, D) and, if asked,
    ``out_dir/photo_pretrained.npy`` float32 (N_good, F), rows in ``paths`` order without the bad photos, each
    written chunk by chunk (``NpyRows``: rows placed by index as batches arrive, with plain writes: never all in
    driver memory) and renamed into place only when complete. ``chunk_size``: resumable, by chunks of that many
    photos kept in ``out_dir/chunks`` (``ray_outputs.ChunkFiles``). Returns (embeddings path, pretrained path or
    None, bad)."""
    checkpoint_path = Path(checkpoint_path).resolve()
    if not checkpoint_path.is_file():
        raise UsageError(f"{checkpoint_path}: no such checkpoint")
    out_dir = Path(out_dir)
    outputs = {"embedding": out_dir / PHOTO_EMBEDDINGS_FILE}
    if with_pretrained:
        outputs["pretrained"] = out_dir / PHOTO_PRETRAINED_FILE
    kwargs = {"checkpoint_path": str(checkpoint_path), "with_pretrained": with_pretrained,
              "batch_size": options.batch_size}
    # What besides the photos decides the numbers: the model, the size, the batch (see compute) and where
    # the photos are decoded and the model runs (the CPU or a GPU, as far as the options say).
    identity = {"checkpoint": file_checksum(checkpoint_path), "image_size": image_size,
                "batch_size": options.batch_size, "gpus_per_actor": options.gpus_per_actor,
                "bytes_to_actors": options.bytes_to_actors} if chunk_size is not None else None
    bad = _run(_PhotoEmbedder, kwargs, list(paths), image_size, outputs, options, progress, chunk_size, identity)
    return outputs["embedding"], outputs.get("pretrained"), bad

