"""GPU benchmark: encoder throughput, photo decoding, a training step and the Ray embedding path.

What it measures, each against the obvious alternative in the same run:

- **encoder**: photos/s of the product's gallery encoder (backbone + pooling input, ``GalleryEncoder.embed_photos``)
  on pixels at 224 px: fp32 vs bf16 autocast, NCHW vs channels_last, eager vs ``torch.compile``, then a batch-size
  sweep of the fastest variant.
- **decode**: JPEG photos (640x480, quality 90) to 224 px model input: the product's decoder
  (``gallery_core.data.decode.load_photo``, PIL with draft-mode reduction) on CPU threads vs nvJPEG through
  ``torchvision.io.decode_jpeg(device="cuda")`` with the resize on the GPU; then end to end (decode + encoder):
  CPU-thread decoding overlapped with the GPU encoder vs decoding on the GPU.
- **train**: one epoch of the product's training loop (``gallery_core.training.loop.run_epoch``) on cached
  trunk features, galleries of 20 photos, 21 tasks, uncertainty weighting, at two listing batch sizes.
- **ray**: ``gallery_core.engine.ray_engine.ray_photo_embeddings`` (decode tasks + an encoder actor pool) with a
  GPU actor vs a CPU actor pool, over JPEG files on disk (needs ``pip install 'gallery-core[distributed]'`` and a
  trained run's ``model.pt``: ``--ray-checkpoint``).
- **product** (``--product``): the product's own trunk pass and embed end to end on a generated catalogue of JPEG
  files, today's path vs the adopted one (GPU decoding, ONNX Runtime on the CPU), and on a GPU the Ray engine with
  one GPU actor, pixels vs bytes to it (``bench_product.py`` says what each arm does).

    python benchmarks/bench_gpu.py                      # full sizes on the GPU; writes docs/benchmarks/gpu.md
    python benchmarks/bench_gpu.py --quick --device cpu # seconds on a CPU (the tests run this)
    python benchmarks/bench_gpu.py --product --device cpu --product-sizes 128 224 --out docs/benchmarks/product-cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gallery_core.config import ModelConfig
from gallery_core.data.decode import load_photo
from gallery_core.data.photos import TRUNK_BATCH_SIZE, to_model_input
from gallery_core.data.tasks import TaskSpec
from gallery_core.models.backbones import create_backbone
from gallery_core.models.checkpoint import build_model
from gallery_core.models.encoder import GalleryEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the product part, beside this script
from bench_product import JPEG_SIZE, bench_product, make_jpegs  # noqa: E402

PARTS = ("encoder", "decode", "train", "ray", "product")
IMAGE_SIZE = 224


# --- timing ---

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(step: Callable[[], Any], items_per_step: int, device: torch.device, warmup: int, reps: int,
               min_seconds: float) -> float:
    """Items per second of ``step``: ``warmup`` untimed calls, then ``reps`` timed rounds of at least
    ``min_seconds`` each (so short steps are repeated); the median round."""
    for _ in range(warmup):
        step()
    _sync(device)
    rates = []
    for _ in range(reps):
        n, started = 0, time.perf_counter()
        while True:
            step()
            n += 1
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
        rates.append(n * items_per_step / elapsed)
    return statistics.median(rates)


# --- encoder ---

def bench_encoder(device: torch.device, batch_sizes: list[int], sweep: list[int], compile_model: bool,
                  timing: dict[str, Any]) -> pd.DataFrame:
    backbone = create_backbone("efficientnet_lite0", trainable_stages=2, pretrained=True)
    encoder = GalleryEncoder(backbone).to(device).eval()
    batch = batch_sizes[0]
    pixels = torch.randn(max(sweep + [batch]), 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
    rows = []

    def run(embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bf16: bool) -> Callable[[], Any]:
        def step() -> Any:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                return embed(x)
        return step

    variants = [("fp32", "NCHW", False, False), ("fp32", "channels_last", False, False),
                ("bf16 autocast", "NCHW", True, False), ("bf16 autocast", "channels_last", True, False)]
    if compile_model:
        variants.append(("bf16 autocast", "channels_last", True, True))
    best = None
    for precision, layout, bf16, compiled in variants:
        encoder.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
        x = pixels[:batch].contiguous(memory_format=torch.channels_last if layout == "channels_last"
                                      else torch.contiguous_format)
        started = time.perf_counter()
        # compiling the method itself: torch.compile(module) would compile only forward()
        model = torch.compile(encoder.embed_photos) if compiled else encoder.embed_photos
        rate = throughput(run(model, x, bf16), batch, device, **timing)
        rows.append({"precision": precision, "layout": layout, "torch.compile": compiled, "batch": batch,
                     "photos/s": round(rate, 1), "warm-up incl. compile (s)": round(time.perf_counter() - started, 1)})
        if best is None or rate > best[0]:
            best = (rate, model, layout, bf16, precision, compiled)
    _, model, layout, bf16, precision, compiled = best
    for size in sweep:
        if size == batch:
            continue
        x = pixels[:size].contiguous(memory_format=torch.channels_last if layout == "channels_last"
                                     else torch.contiguous_format)
        rate = throughput(run(model, x, bf16), size, device, **timing)
        rows.append({"precision": precision, "layout": layout, "torch.compile": compiled, "batch": size,
                     "photos/s": round(rate, 1), "warm-up incl. compile (s)": None})
    return pd.DataFrame(rows)


# --- decoding ---

def gpu_decode(data: list[torch.Tensor], device: torch.device, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """nvJPEG batch decode -> (B, 3, 224, 224) normalised float, channels-last, on the GPU. The resize is a
    square squash with antialiasing, as the CPU path's PIL resize (shapes equal; pixel values differ slightly)."""
    from torchvision.io import decode_jpeg

    images = decode_jpeg(data, device=device)
    x = torch.stack(images).float().div_(255.0)
    x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def bench_decode(device: torch.device, n_photos: int, batch: int, threads: int, timing: dict[str, Any],
                 ) -> pd.DataFrame:
    jpegs = make_jpegs(n_photos, unique=min(n_photos, 256))
    backbone = create_backbone("efficientnet_lite0", trainable_stages=2, pretrained=True)
    encoder = GalleryEncoder(backbone).to(device).eval().to(memory_format=torch.channels_last)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1)
    batches = [jpegs[i:i + batch] for i in range(0, len(jpegs), batch)]
    rows = []
    bf16 = device.type == "cuda"

    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return encoder.embed_photos(x)

    # Two pools: the decoding threads, and one thread that prepares the next batch while the GPU encodes.
    with ThreadPoolExecutor(max_workers=threads) as pool, ThreadPoolExecutor(max_workers=1) as prefetch:
        def cpu_batch(chunk: list[bytes]) -> torch.Tensor:
            pixels = np.stack(list(pool.map(lambda b: load_photo(b, IMAGE_SIZE), chunk)))
            return to_model_input(pixels, backbone)

        def cpu_decode_all() -> None:
            for chunk in batches:
                cpu_batch(chunk)

        rate = throughput(cpu_decode_all, n_photos, device, **timing)
        rows.append({"stage": "decode only", "where": f"CPU, {threads} threads (PIL draft)", "photos/s": round(rate, 1)})

        def cpu_end_to_end() -> None:
            # decode batch i+1 on the CPU threads while the GPU encodes batch i
            pending = prefetch.submit(cpu_batch, batches[0])
            for i in range(len(batches)):
                x = pending.result()
                if i + 1 < len(batches):
                    pending = prefetch.submit(cpu_batch, batches[i + 1])
                encode(x.to(device, non_blocking=True))

        if device.type == "cuda":
            data = [[torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in chunk] for chunk in batches]

            def gpu_decode_all() -> None:
                for chunk in data:
                    gpu_decode(chunk, device, mean, std)

            def gpu_end_to_end() -> None:
                for chunk in data:
                    encode(gpu_decode(chunk, device, mean, std))

            rate = throughput(gpu_decode_all, n_photos, device, **timing)
            rows.append({"stage": "decode only", "where": "GPU (nvJPEG, torchvision.io.decode_jpeg)",
                         "photos/s": round(rate, 1)})
        rate = throughput(cpu_end_to_end, n_photos, device, **timing)
        rows.append({"stage": "decode + encoder", "where": f"CPU decode ({threads} threads) overlapped with "
                     f"{device.type} encoder", "photos/s": round(rate, 1)})
        if device.type == "cuda":
            rate = throughput(gpu_end_to_end, n_photos, device, **timing)
            rows.append({"stage": "decode + encoder", "where": "GPU decode + GPU encoder", "photos/s": round(rate, 1)})
    frame = pd.DataFrame(rows)
    frame.attrs["jpeg_kb"] = round(sum(map(len, jpegs)) / len(jpegs) / 1024, 1)
    return frame


# --- a training step ---

def synthetic_tasks() -> tuple[TaskSpec, ...]:
    """21 tasks like the demo's: 10 binary, 10 five-class, 1 regression."""
    tasks = [TaskSpec(f"b{i}", f"b{i}", "binary") for i in range(10)]
    tasks += [TaskSpec(f"m{i}", f"m{i}", "multiclass", tuple("abcde")) for i in range(10)]
    return tuple(tasks + [TaskSpec("r0", "r0", "regression")])


def bench_train(device: torch.device, n_listings: int, photos_per_listing: int, batch_sizes: list[int],
                image_size: int) -> pd.DataFrame:
    from gallery_core.training.data import GalleryData
    from gallery_core.training.loop import run_epoch
    from gallery_core.weighting import create_weighting

    tasks = synthetic_tasks()
    config = ModelConfig(image_size=image_size)
    model = build_model(config, tasks)
    backbone = model.encoder.backbone
    with torch.no_grad():
        probe = backbone.trunk(torch.zeros(1, 3, image_size, image_size))
    model = model.to(device)
    n_photos = n_listings * photos_per_listing
    g = torch.Generator().manual_seed(0)
    # drawn where they live, in float16 (on the GPU: a few GB that would take long to draw on the CPU)
    trunk = torch.randn((n_photos, *probe.shape[1:]), device=device, dtype=torch.float16,
                        generator=torch.Generator(device).manual_seed(0))
    trunk = trunk.contiguous(memory_format=torch.channels_last)
    offsets = np.arange(0, n_photos + 1, photos_per_listing, dtype=np.int64)
    data = GalleryData(None, offsets, trunk, image_size, backbone.entry)  # no catalogue: trunk features only
    labels = {t.name: (torch.randint(0, 2, (n_listings,), generator=g).float() if t.kind == "binary" else
                       torch.randint(0, 5, (n_listings,), generator=g) if t.kind == "multiclass" else
                       torch.randn(n_listings, generator=g)) for t in tasks}
    weighting = create_weighting("uncertainty", tasks, {"r0": 1.0}, {}).to(device)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-4)
    idx = np.arange(n_listings)
    rows = []
    for batch in batch_sizes:
        gen = torch.Generator().manual_seed(0)
        run_epoch(model, weighting, data, idx[: batch * 2], labels, batch, device, optimizer, gen)  # warm-up
        _sync(device)
        started = time.perf_counter()
        run_epoch(model, weighting, data, idx, labels, batch, device, optimizer, gen)
        _sync(device)
        seconds = time.perf_counter() - started
        rows.append({"listings/batch": batch, "photos/batch": batch * photos_per_listing,
                     "photos/s": round(n_photos / seconds, 1), "steps/s": round(n_listings / batch / seconds, 1),
                     "epoch (s)": round(seconds, 2), "trunk features": f"{tuple(probe.shape[1:])} fp16",
                     "peak GPU memory (GB)": round(torch.cuda.max_memory_allocated(device) / 1e9, 1)
                     if device.type == "cuda" else None})
    return pd.DataFrame(rows)


# --- Ray ---

def bench_ray(device: torch.device, checkpoint: Path, n_photos: int, batch: int, cpus: int) -> pd.DataFrame:
    from gallery_core.engine.ray_engine import RayOptions, ray_photo_embeddings, require_ray

    ray = require_ray()
    image_size = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]["model"]["image_size"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo_dir = Path(tmp) / "photos"
        photo_dir.mkdir()
        paths = []
        for i, data in enumerate(make_jpegs(n_photos, unique=min(n_photos, 256))):
            path = photo_dir / f"{i:07d}.jpg"
            path.write_bytes(data)
            paths.append(str(path))
        started = time.perf_counter()
        ray.init(num_cpus=cpus, num_gpus=1 if device.type == "cuda" else 0, include_dashboard=False,
                 log_to_driver=False)
        startup = time.perf_counter() - started
        try:
            # the engine uses the Ray instance started above (address None: the one in this process)
            arms = [("GPU actor", RayOptions(batch_size=batch, actors=1, gpus_per_actor=1))] \
                if device.type == "cuda" else []
            # CPU actors each hold a CPU for good: leave some to the decoding tasks, or the pipeline stalls
            cpu_actors = 2 if cpus >= 8 else 1
            arms.append((f"{cpu_actors} CPU actor(s)", RayOptions(batch_size=batch, actors=cpu_actors,
                                                                  gpus_per_actor=0)))
            for name, options in arms:
                # a warm-up on a slice (workers, imports, cuDNN autotuning), then every photo, timed
                for attempt, subset in (("warm-up", paths[:batch * 2]), ("timed", paths)):
                    out = Path(tmp) / f"out-{name}-{attempt}".replace(" ", "_")
                    started = time.perf_counter()
                    emb_path, _, bad = ray_photo_embeddings(checkpoint, subset, image_size, out, options,
                                                            with_pretrained=True, progress=False)
                    seconds = time.perf_counter() - started
                assert not bad, bad
                rows.append({"arm": name, "photos": n_photos, "photo size": f"{JPEG_SIZE[0]}x{JPEG_SIZE[1]} -> "
                             f"{image_size}", "batch": batch, "seconds": round(seconds, 2),
                             "photos/s": round(n_photos / seconds, 1),
                             "embedding dim": int(np.load(emb_path, mmap_mode="r").shape[1])})
        finally:
            ray.shutdown()
    frame = pd.DataFrame(rows)
    frame.attrs["ray_startup_s"] = round(startup, 1)
    return frame


# --- report ---

def environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
           "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def write_markdown(path: Path, env: dict[str, Any], tables: dict[str, pd.DataFrame], command: str) -> None:
    lines = ["# GPU benchmark", "", f"`{command}` (benchmarks/bench_gpu.py; its docstring says what each part does).",
             "", "Machine: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".", ""]
    titles = {"encoder": "Encoder throughput at 224 px (EfficientNet-Lite0, random pixels)",
              "decode": "Photo decoding to 224 px model input, and decode + encoder end to end",
              "train": "A training epoch on cached trunk features (run_epoch: 21 tasks, uncertainty weighting)",
              "ray": "Ray Data embedding (ray_photo_embeddings: decode tasks + encoder actor pool)",
              "product": "The product's trunk pass and embed end to end: today's path vs the adopted one"}
    for part, table in tables.items():
        lines += [f"## {titles[part]}", "", table.to_markdown(index=False), ""]
        for key, value in table.attrs.items():
            lines.append(f"- {key.replace('_', ' ')}: {value}")
        if table.attrs:
            lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short timings (seconds on a CPU)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cuda or cpu")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile arms (the encoder "
                        "part's, and the product part's --compile arms with their warm-up on a GPU)")
    parser.add_argument("--ray-checkpoint", type=Path, help="a trained run's model.pt for the Ray part")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (and the figures as JSON beside it)")
    parser.add_argument("--product", action="store_true", help="only the product part (same as --parts product)")
    parser.add_argument("--product-photos", type=int, default=None, help="photos of its catalogue (default 50,000)")
    parser.add_argument("--product-sizes", type=int, nargs="+", default=None, help="image sizes (default 224)")
    parser.add_argument("--product-repeats", type=int, default=1,
                        help="runs of each trunk arm, taking turns; the rows give the median (default 1)")
    args = parser.parse_args(argv)
    if args.product:
        args.parts = ["product"]
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    quick = args.quick
    timing = {"warmup": 1, "reps": 1, "min_seconds": 0.0} if quick else {"warmup": 3, "reps": 5, "min_seconds": 1.0}
    tables: dict[str, pd.DataFrame] = {}
    if "encoder" in args.parts:
        tables["encoder"] = bench_encoder(device, [4] if quick else [512], [2, 4] if quick else [128, 256, 512, 1024,
                                          2048], compile_model=not args.no_compile and not quick, timing=timing)
    if "decode" in args.parts:
        tables["decode"] = bench_decode(device, 8 if quick else 4096, 4 if quick else 512,
                                        threads=min(os.cpu_count() or 1, 16), timing=timing)
    if "train" in args.parts:
        tables["train"] = bench_train(device, 8 if quick else 8192, 3 if quick else 20, [4] if quick else [64, 256],
                                      image_size=64 if quick else IMAGE_SIZE)
    if "ray" in args.parts:
        if args.ray_checkpoint is None:
            print("ray: skipped (give --ray-checkpoint PATH/model.pt)")
        else:
            tables["ray"] = bench_ray(device, args.ray_checkpoint, 16 if quick else 8192, 4 if quick else 512,
                                      cpus=2 if quick else min(os.cpu_count() or 1, 16))
    if "product" in args.parts:
        tables["product"] = bench_product(device, args.product_photos or (48 if quick else 50_000),
                                          args.product_sizes or ([32] if quick else [IMAGE_SIZE]),
                                          16 if quick else TRUNK_BATCH_SIZE,  # the product's own batch
                                          ray=device.type == "cuda" and not quick,
                                          compile_model=not args.no_compile and not quick,
                                          repeats=args.product_repeats)
    env = environment(device)
    for part, table in tables.items():
        print(f"\n== {part} ==\n{table.to_string(index=False)}")
        for key, value in table.attrs.items():
            print(f"{key}: {value}")
    if args.out is not None:
        command = "python benchmarks/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_markdown(args.out, env, tables, command.strip())
        figures = {"environment": env, **{k: {"rows": t.to_dict("records"), **t.attrs} for k, t in tables.items()}}
        args.out.with_suffix(".json").write_text(json.dumps(figures, indent=1, default=str))
    return tables


if __name__ == "__main__":
    main()
