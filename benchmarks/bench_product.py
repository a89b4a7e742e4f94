"""The product's own pipeline timed end to end, today's path against the adopted one on the same photos in one
run: ``python benchmarks/bench_gpu.py --parts product`` (this module is its ``product`` part).

- **trunk**: the build's frozen-trunk pass (``data.photos.write_trunk_features``, decoding included) over a
  generated catalogue of JPEG files (640x480, ~100 KB): *today* PIL decoding and resizing on CPU threads and PyTorch eager;
  *adopted* what the product now does by default: on a GPU, JPEGs decoded in batches on it
  (``engine.device_decode``), on the CPU, the trunk in ONNX Runtime (``engine.cpu_runtime``, when the ``onnx``
  extra is installed). The two arms' features are compared (cosine per photo) beside their speed.
- **embed**: the embed step (``pipeline.embed.embed``) of a run trained one epoch on that catalogue (from the
  trunk cache the adopted arm wrote), with its encoder in PyTorch vs the default runtime.
- **opt-in: OpenVINO** (the CPU, where the ``openvino`` extra is installed): both parts with ``--cpu-runtime
  openvino``, bfloat16 where the CPU has it.
- **+ torch.compile** (a GPU, unless ``--no-compile``): the adopted arm of each part again with ``--compile``
  (``engine.compiled``); its rows give the warm-up, the first batch's seconds with compiling, as the product logs it.
- **ray** (a GPU and the ``distributed`` extra): ``ray_photo_embeddings`` with one GPU actor, decode tasks sending
  pixels (today) vs read tasks sending the files' bytes to the actor, which decodes them on its GPU.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

JPEG_SIZE = (640, 480)  # ~0.3 MP: a typical listing photo after a site's own resizing
PHOTOS_PER_LISTING = 4


def make_jpegs(n: int, unique: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEG files' bytes (``unique`` different photo-like images, repeated): smooth colour fields plus
    texture, so the encoder has realistic entropy to decode (pure noise would be slower, flat colour faster)."""
    rng = np.random.default_rng(seed)
    width, height = JPEG_SIZE

    def one() -> bytes:
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 12, size=(height, width, 3))
        arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    distinct = [one() for _ in range(min(unique, n))]
    return [distinct[i % len(distinct)] for i in range(n)]


def write_catalogue(folder: Path, n_photos: int) -> Path:
    """A catalogue folder of ``n_photos`` JPEG files, ``PHOTOS_PER_LISTING`` a listing, one binary task."""
    n_listings = -(-n_photos // PHOTOS_PER_LISTING)
    ids = [f"L{i:07d}" for i in range(n_listings)]
    for i, data in enumerate(make_jpegs(n_photos, unique=min(n_photos, 512))):
        listing = folder / "photos" / ids[i // PHOTOS_PER_LISTING]
        listing.mkdir(parents=True, exist_ok=True)
        (listing / f"{i % PHOTOS_PER_LISTING}.jpg").write_bytes(data)
    pd.DataFrame({"listing_id": ids, "sea_view": np.arange(n_listings) % 2}).to_csv(folder / "listings.csv",
                                                                                     index=False)
    (folder / "tasks.yaml").write_text("tasks:\n  - {column: sea_view, kind: binary}\n")
    return folder


@contextmanager
def todays_resize(today: bool) -> Iterator[None]:
    """While ``today``: the decoder resizes with PIL's ``resize(BILINEAR)``, as the product did before it took
    PyTorch's uint8 kernel (``data.decode.resize_square``), so the 'today' arm times today's whole path."""
    from gallery_core.data import decode

    def pil_resize(image: Image.Image, size: int) -> np.ndarray:
        same = image.size == (size, size)
        return np.asarray(image if same else image.resize((size, size), Image.Resampling.BILINEAR), np.uint8)

    product = decode.resize_square
    decode.resize_square = pil_resize if today else product
    try:
        yield
    finally:
        decode.resize_square = product


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from gallery_core.engine.cpu_runtime import row_cosines

    return row_cosines(torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))).numpy()


def _row(part: str, arm: str, size: int, n: int, seconds: float, **extra: object) -> dict[str, object]:
    return {"part": part, "arm": arm, "px": size, "photos": n, "seconds": round(seconds, 2),
            "photos/s": round(n / seconds, 1), **extra}


class CompileWarmups(logging.Handler):
    """The torch.compile warm-ups the product logs (``engine.compiled``) while it is attached: seconds by runner."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        from gallery_core.engine.compiled import WARMUP_FIELD

        if hasattr(record, WARMUP_FIELD):
            self.seconds[record.runner] = round(getattr(record, WARMUP_FIELD), 2)

    @contextmanager
    def attached(self) -> Iterator[CompileWarmups]:
        product = logging.getLogger("gallery_core")
        level = product.level
        product.addHandler(self)
        product.setLevel(min(level or logging.INFO, logging.INFO))
        try:
            yield self
        finally:
            product.removeHandler(self)
            product.setLevel(level)


def _warmup_columns(warmups: CompileWarmups) -> dict[str, object]:
    """The row's torch.compile warm-up column, when the arm compiled: its runners' first-batch seconds."""
    if not warmups.seconds:
        return {}
    return {"compile warm-up s": "; ".join(f"{name} {s}" for name, s in sorted(warmups.seconds.items()))}


def bench_product(device: torch.device, n_photos: int, image_sizes: list[int], batch: int, epochs: int = 1,
                  ray: bool = False, compile_model: bool = False, repeats: int = 1) -> pd.DataFrame:
    """The rows of the trunk, embed (and ray) parts at each image size (see the module docstring);
    ``compile_model``: the torch.compile arms too, on a GPU; ``repeats``: the trunk arms run that many times,
    taking turns, and their rows give the median (and each run's seconds)."""
    from gallery_core.config import BuildConfig, ModelConfig, TrainConfig
    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.data.photos import trunk_cache_key, write_trunk_features
    from gallery_core.engine.execution import Execution
    from gallery_core.models.backbones import create_backbone
    from gallery_core.pipeline.build import run_steps
    from gallery_core.pipeline.embed import embed

    rows: list[dict[str, object]] = []
    compiled = compile_model and device.type == "cuda"  # on the CPU the product ignores --compile
    openvino = device.type == "cpu" and importlib.util.find_spec("openvino") is not None  # --cpu-runtime openvino
    with tempfile.TemporaryDirectory(prefix="bench-product-") as tmp:
        catalogue_dir = write_catalogue(Path(tmp) / "catalogue", n_photos)
        catalogue = load_catalogue(catalogue_dir)
        paths = catalogue.photos["path"].tolist()
        for size in image_sizes:
            config = BuildConfig(model=ModelConfig(image_size=size),
                                 train=TrainConfig(max_epochs=epochs, min_listings_to_finetune=0)).validate()
            backbone = create_backbone(config.model.backbone, config.model.trainable_stages, pretrained=True).eval()
            run = Path(tmp) / f"run-{size}"
            key = trunk_cache_key(catalogue.fingerprint, backbone, size)
            features = {}
            trunk_arms = [("today: PIL + PyTorch", "torch", False, False, Path(tmp) / f"today-{size}.npy"),
                          # written where the build looks for its trunk cache, so training below reuses it
                          ("adopted: default", None, None, False, run / "cache" / f"trunk-{key}.npy")]
            if compiled:
                trunk_arms.append(("adopted + torch.compile", None, None, True, Path(tmp) / f"compiled-{size}.npy"))
            if openvino:
                trunk_arms.append(("opt-in: OpenVINO", "openvino", None, False, Path(tmp) / f"openvino-{size}.npy"))
            seconds: dict[str, list[float]] = {arm: [] for arm, *_ in trunk_arms}
            warmup_columns: dict[str, dict[str, object]] = {}
            for repeat in range(repeats):  # the arms take turns, so a slow spell of a shared machine hits each alike
                for arm, runtime, on_device, compile_arm, out in trunk_arms:
                    for leftover in (out, out.with_suffix(".json")):
                        leftover.unlink(missing_ok=True)  # each repeat decodes every photo again
                    started = time.perf_counter()
                    with CompileWarmups().attached() as warmups, todays_resize(arm == trunk_arms[0][0]):
                        bad = write_trunk_features(backbone, paths, size, out, batch_size=batch, device=device,
                                                   progress=False, index_path=out.with_suffix(".json"),
                                                   runtime=runtime, decode_on_device=on_device,
                                                   compile_model=compile_arm)
                    seconds[arm].append(time.perf_counter() - started)  # an ONNX export or a compile included
                    assert not bad, bad
                    if repeat == 0:
                        features[arm] = np.load(out, mmap_mode="r")
                        warmup_columns[arm] = _warmup_columns(warmups)
            today = trunk_arms[0][0]
            for arm, *_ in trunk_arms:
                rows.append(_row("trunk", arm, size, len(paths), float(np.median(seconds[arm])), **warmup_columns[arm]))
                if repeats > 1:
                    rows[-1]["runs s"] = " ".join(f"{s:.1f}" for s in seconds[arm])
                if arm != today:
                    cosine = _cosines(*(f.reshape(len(f), -1)[:2048] for f in (features[today], features[arm])))
                    rows[-1] |= {"cosine to today (min)": round(float(cosine.min()), 5)}
            run_steps(run, ["train"], catalogue_dir, config=config, device=str(device), progress=False)
            embedded = {}
            embed_arms = [("today: PyTorch", Execution(cpu_runtime="torch")), ("adopted: default", Execution())]
            if compiled:
                embed_arms.append(("adopted + torch.compile", Execution(compile_model=True)))
            if openvino:
                embed_arms.append(("opt-in: OpenVINO", Execution(cpu_runtime="openvino")))
            for arm, execution in embed_arms:
                started = time.perf_counter()
                with CompileWarmups().attached() as warmups:
                    result = embed(catalogue, run, device=str(device), progress=False, execution=execution)
                seconds = time.perf_counter() - started
                embedded[arm] = np.array(result.photo_embeddings[:2048])
                rows.append(_row("embed", arm, size, len(result.photo_embeddings), seconds,
                                 **_warmup_columns(warmups)))
                if arm != embed_arms[0][0]:
                    cosine = _cosines(embedded[embed_arms[0][0]], embedded[arm])
                    rows[-1] |= {"cosine to today (min)": round(float(cosine.min()), 5)}
            if ray:
                rows += _bench_ray(run / "model.pt", paths, size, batch)
            shutil.rmtree(run, ignore_errors=True)
    return pd.DataFrame(rows)


def _bench_ray(checkpoint: Path, paths: list[str], size: int, batch: int) -> list[dict[str, object]]:
    """One GPU actor: tasks decoding and sending pixels vs tasks reading and sending bytes."""
    from gallery_core.engine.ray_engine import RayOptions, ray_photo_embeddings, require_ray

    ray = require_ray()
    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for arm, bytes_to_actors in (("ray: pixels to the actor", False), ("ray: bytes to the actor", True)):
                options = RayOptions(batch_size=batch, actors=1, gpus_per_actor=1, bytes_to_actors=bytes_to_actors)
                for attempt, subset in (("warm-up", paths[:batch * 2]), ("timed", paths)):
                    started = time.perf_counter()
                    _, _, bad = ray_photo_embeddings(checkpoint, subset, size, Path(tmp) / f"{arm}-{attempt}", options,
                                                     with_pretrained=True, progress=False)
                    seconds = time.perf_counter() - started
                assert not bad, bad
                rows.append(_row("ray", arm, size, len(paths), seconds))
    finally:
        ray.shutdown()
    return rows
