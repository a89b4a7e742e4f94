"""Command line: ``python -m gallery_core <command>`` (or the ``gallery-core`` script)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from gallery_core.artifacts.store import STEPS, ArtifactError
from gallery_core.config import (
    DEMO_RUN_NAME,
    NEW_TASK_FEATURES,
    BuildConfig,
    artifacts_root,
    demo_catalogue_dir,
)
from gallery_core.errors import UsageError


# CLI flag -> (config section, field). One table, so flags and config files cannot drift apart.
def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


CONFIG_FLAGS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "backbone": ("model", "backbone", str),
    "weights_path": ("model", "weights_path", str),
    "trainable_stages": ("model", "trainable_stages", int),
    "image_size": ("model", "image_size", int),
    "embed_dim": ("model", "embed_dim", int),
    "freeze_batchnorm": ("model", "freeze_batchnorm", _yes_no),
    "head_projector": ("model", "head_projector", int),
    "weighting": ("train", "weighting", str),
    "lr": ("train", "lr", float),
    "backbone_lr_mult": ("train", "backbone_lr_mult", float),
    "l2sp_weight": ("train", "l2sp_weight", float),
    "wise_alpha": ("train", "wise_alpha", float),
    "lp_epochs": ("train", "lp_epochs", int),
    "distill_weight": ("train", "distill_weight", float),
    "completion_weight": ("train", "completion_weight", float),
    "spread_weight": ("train", "spread_weight", float),
    "min_listings_to_finetune": ("train", "min_listings_to_finetune", int),
    "batch_size": ("train", "batch_size", int),
    "epochs": ("train", "max_epochs", int),
    "patience": ("train", "patience", int),
    "seed": ("train", "seed", int),
    "triplet_weight": ("train", "triplet_weight", float),
    "vae_weight": ("train", "vae_weight", float),
    "new_task_features": ("embed", "new_task_features", str),
    "whitening": ("embed", "whitening", str),
    "whitening_dim": ("embed", "whitening_dim", int),
    "n_trees": ("index", "n_trees", int),
    "umap_neighbors": ("projection", "n_neighbors", int),
    "oof_folds": ("predict", "oof_folds", int),
}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration (overrides --config and the run's saved config)")
    group.add_argument("--config", type=Path, help="YAML file with sections model/train/index/projection/predict")
    # The weighting names come from the registry, read when the parser is built (it imports torch), so a
    # newly registered strategy is a valid --weighting without a second list here.
    from gallery_core.weighting import list_weightings

    for flag, (section, name, kind) in CONFIG_FLAGS.items():
        default = getattr(BuildConfig(), section).__dict__[name]
        extra = {"choices": list_weightings()} if flag == "weighting" else \
            {"choices": NEW_TASK_FEATURES} if flag == "new_task_features" else {}
        if flag == "image_size":
            default = "the backbone's native size, e.g. 224 for efficientnet_lite0"
        group.add_argument(f"--{flag.replace('_', '-')}", type=kind, default=None,
                           help=f"{section}.{name} (default {default})", **extra)
    group.add_argument("--no-trunk-cache", action="store_true", help="decode photos every epoch instead of "
                       "caching the frozen trunk's output")
    group.add_argument("--augment", action="store_true", help="JPEG/crop/scribble/watermark augmentation while "
                       "training (decodes photos every epoch)")


def _add_execution_flags(parser: argparse.ArgumentParser) -> None:
    """How the trunk pass and the embed step run; not part of their inputs (the same files either way)."""
    from gallery_core.engine.cpu_runtime import CPU_RUNTIMES
    from gallery_core.engine.execution import ENGINES, Execution

    default = Execution()
    group = parser.add_argument_group("execution of the trunk pass and embed (the same artifacts whichever is chosen)")
    group.add_argument("--engine", choices=ENGINES, default=default.engine,
                       help="decode photos and run the model in this process (local, default) or in a Ray Data "
                            "actor pool (ray; needs the 'distributed' extra: pip install 'gallery-core[distributed]')")
    group.add_argument("--ray-address", default=None, help="Ray cluster to join with --engine ray: 'auto' (from a "
                       "node of the cluster) or ray://HOST:10001 (default: start a local Ray instance)")
    group.add_argument("--ray-batch-size", type=int, default=default.ray_batch_size,
                       help=f"photos per model batch in a Ray actor (default {default.ray_batch_size})")
    group.add_argument("--ray-actors", type=int, default=None,
                       help="Ray actors running the model (default: one per GPU, else 1-2 on CPUs)")
    group.add_argument("--ray-gpus-per-actor", type=float, default=None,
                       help="GPUs each Ray actor takes (default: 1 where the cluster has GPUs, else 0)")
    group.add_argument("--chunk-size", type=int, default=default.chunk_size, help="photos per chunk of the local "
                       "trunk pass and of embed (either engine): the unit of progress and of resume after an "
                       f"interruption (default {default.chunk_size})")
    group.add_argument("--cpu-runtime", choices=CPU_RUNTIMES, default=None,
                       help="what runs the frozen trunk and embed's encoder on the CPU: ONNX Runtime (onnx; the "
                            "'onnx' extra, ~3x faster), OpenVINO (openvino; the 'openvino' extra, bfloat16 where the "
                            "CPU has it: ~1.6x faster again, features to cosine ~0.998), PyTorch (torch) or onnx "
                            "when installed (auto, default; $GALLERY_CORE_CPU_RUNTIME sets the default)")
    group.add_argument("--compile", dest="compile_model", action="store_true",
                       help="torch.compile the trunk pass's and embed's networks, on a CUDA device (off by default: the first "
                            "batch compiles, and the log says how long that warm-up took); on a CPU device it is "
                            "ignored with a warning, so one command runs on either (--cpu-runtime speeds the CPU)")


def _config_from_args(args: argparse.Namespace, out: Path) -> BuildConfig:
    from gallery_core.pipeline.build import config_for_run

    data = config_for_run(out).to_dict()
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UsageError(f"{args.config}: cannot read config: {err}") from None
        for section, values in loaded.items():
            if section not in data or not isinstance(values, dict):
                raise UsageError(f"{args.config}: unknown section {section!r}; sections are {list(data)}")
            data[section].update(values)
    for flag, (section, name, _) in CONFIG_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[section][name] = value
    if getattr(args, "no_trunk_cache", False):
        data["train"]["cache_trunk"] = False
    if getattr(args, "augment", False):
        data["train"]["augment"] = True
    return BuildConfig.from_dict(data)


class _Formatter(logging.Formatter):
    """Progress lines as they are; warnings and errors with their level, so they stand out."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (it may be replaced after set-up, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(quiet: bool = False) -> None:
    """gallery-core's progress on stdout (``--quiet``: warnings only); other libraries' INFO stays off."""
    handler = _StdoutHandler()
    handler.setFormatter(_Formatter("%(message)s"))
    package = logging.getLogger("gallery_core")
    package.handlers[:] = [handler]
    package.setLevel(logging.WARNING if quiet else logging.INFO)


# --- commands ---

def cmd_demo_catalogue(args: argparse.Namespace) -> int:
    from gallery_core.demo.generator import generate_demo_catalogue

    started = time.perf_counter()
    out = generate_demo_catalogue(args.out, n_listings=args.listings, seed=args.seed, image_size=args.image_size,
                                  workers=args.workers, progress=not args.quiet)
    print(f"demo catalogue written to {out} in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    from gallery_core.pipeline.build import run_steps

    steps = STEPS if args.command == "build" else (args.command,)
    if args.command == "build" and args.steps:
        steps = tuple(args.steps)
    config = _config_from_args(args, args.out)
    execution = None
    if args.command in ("build", "train", "embed"):
        from gallery_core.engine.execution import Execution

        execution = Execution(args.engine, args.ray_address, args.ray_batch_size, args.ray_actors,
                              args.ray_gpus_per_actor, args.chunk_size, args.cpu_runtime,
                              args.compile_model).validate()
    started = time.perf_counter()
    manifest = run_steps(args.out, steps, catalogue_dir=args.catalogue, config=config, force=args.force,
                         device=args.device, progress=not args.quiet, execution=execution, wait=args.wait)
    if not manifest:  # a torchrun rank other than 0, done with its share of training: rank 0 reports
        return 0
    shares = ", ".join(f"{s} {manifest['steps'][s]['seconds']:.0f}s" for s in STEPS if s in manifest["steps"])
    print(f"run {args.out} ready in {time.perf_counter() - started:.1f}s (last build of each step: {shares})")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from gallery_core.artifacts.run import open_run
    from gallery_core.search.explain import explain_results, explanation_text, seed_photos

    run = open_run(args.artifacts, device=args.device)
    uploaded = run.embed_uploads(args.photos)
    seed = run.seed_vector(uploaded=uploaded)
    results = run.retrieve(seed, k=args.k)
    explanations = []
    if args.explain:
        seeds = seed_photos(run, uploaded=uploaded, upload_labels=[str(p) for p in args.photos])
        explanations = explain_results(run, seeds, results)
        photo_paths = run.photos["path"].to_numpy()
    columns = ["listing_id", *[c for c in args.show if c in run.listings.columns]]
    results = results.merge(run.listings[columns], on="listing_id", how="left")
    if args.json:
        records = results.to_dict(orient="records")
        for record, explanation in zip(records, explanations, strict=False):
            record["explanation"] = explanation.to_dict(seeds, photo_paths)
        print(json.dumps({"seed_photos": [str(p) for p in args.photos], "results": records}, indent=2, default=str))
    else:
        print(f"top {len(results)} listings for {len(args.photos)} seed photo(s) in run {run.name}:")
        print(results.to_string(index=False, float_format="%.4f"))
        for rank, explanation in enumerate(explanations, start=1):
            print(f"{rank}. {explanation.listing_id}")
            print("\n".join("   " + line for line in explanation_text(explanation, seeds, photo_paths)))
    return 0


def cmd_search_photo(args: argparse.Namespace) -> int:
    """Visual search: one photo -> the most similar catalogue photos and listings (exact search)."""
    from gallery_core.artifacts.run import open_run
    from gallery_core.search.photo_search import search_photo

    if args.k < 1:
        raise UsageError(f"-k must be >= 1, got {args.k}")
    run = open_run(args.artifacts, device=args.device)
    result = search_photo(run, args.photo, k=args.k)
    columns = ["listing_id", *[c for c in args.show if c in run.listings.columns and c != "listing_id"]]
    listings = result.listings.merge(run.listings[columns], on="listing_id", how="left")
    if args.json:
        print(json.dumps({"photo": str(args.photo), "run": run.name, "search": result.method, "k": args.k,
                          "photos": result.photos.to_dict(orient="records"),
                          "listings": listings.to_dict(orient="records")}, indent=2, default=str))
    else:
        print(f"top {len(result.photos)} photos for {args.photo} in run {run.name} ({result.method}):")
        print(result.photos.to_string(index=False, float_format="%.4f"))
        print(f"\ntop {len(listings)} listings (score = their best-matching photo):")
        print(listings.to_string(index=False, float_format="%.4f"))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from gallery_core.artifacts.run import open_run
    from gallery_core.pipeline.predict import metrics_table, small_split_warning

    run = open_run(args.artifacts)
    m = run.manifest
    print(f"run {run.name}: {m['catalogue']['n_listings']} listings, {m['catalogue']['n_photos']} photos, "
          f"backbone {m['backbone']['name']}, weighting {run.config.train.weighting}")
    for step in STEPS:
        print(f"  {step:8s} {m['steps'][step]['seconds']:7.1f}s  finished {m['steps'][step]['finished_at']}")
    table = metrics_table(run.metrics["tasks"])
    if table.empty:
        print("no task has enough labelled validation listings to measure")
    else:
        print(table.to_string(index=False, float_format="%.4f"))
    if (warning := small_split_warning(table)) is not None:
        print(f"warning: {warning}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    demo_dir = demo_catalogue_dir()
    parser = argparse.ArgumentParser(
        prog="gallery-core",
        description="Learn, explore and audit photo-gallery embeddings of a catalogue.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-catalogue", help="generate the synthetic demo catalogue")
    p.add_argument("--out", type=Path, default=demo_dir, help=f"output folder (default {demo_dir})")
    p.add_argument("--listings", type=int, default=2000, help="number of listings (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--image-size", type=int, default=128, help="photo size in pixels (default 128)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo_catalogue)

    step_help = {
        "build": "run every step: train -> embed -> index -> project -> predict",
        "train": "train the gallery encoder and task heads (writes model.pt)",
        "embed": "embed every photo and listing with the trained encoder",
        "index": "build the Annoy index over listing embeddings",
        "project": "fit the UMAP 2-D map of the listings",
        "predict": "per-task predictions, out-of-fold probes and validation metrics",
    }
    default_out = artifacts_root() / DEMO_RUN_NAME
    for name, text in step_help.items():
        p = sub.add_parser(name, help=text, description=text + ". Skips work already done for the same inputs.")
        p.add_argument("--catalogue", type=Path, default=None if name not in ("build", "train", "embed")
                       else demo_dir, help="catalogue folder (train and embed read it)")
        p.add_argument("--out", type=Path, default=default_out, help=f"run folder (default {default_out})")
        if name == "build":
            p.add_argument("--steps", nargs="+", choices=STEPS, help="only these steps")
        p.add_argument("--force", action="store_true", help="rerun even if up to date; also recovers from an unreadable manifest.json (set aside, every step redone)")
        p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
        p.add_argument("--quiet", action="store_true", help="no progress bars or logs")
        p.add_argument("--wait", action="store_true", help="when another process is building the run folder, wait "
                       "for it to finish instead of exiting (one writer per run folder)")
        if name in ("build", "train", "embed"):
            _add_execution_flags(p)
        _add_config_flags(p)
        p.set_defaults(func=cmd_steps)

    def query_parser(name: str, help_text: str, photo_flag: str, photo_help: str, k_help: str) -> None:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--artifacts", type=Path, default=default_out, help=f"run folder (default {default_out})")
        p.add_argument(photo_flag, type=Path, required=True, help=photo_help,
                       **({"nargs": "+"} if photo_flag == "--photos" else {}))
        p.add_argument("-k", type=int, default=10, help=k_help)
        p.add_argument("--show", nargs="*", default=["property_type", "city"], help="listing columns to print")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--device", default="auto", help="where the photos are embedded: auto (CUDA when available; "
                       "JPEGs are then decoded on the GPU too), cpu or cuda")
        if name == "retrieve":
            from gallery_core.search.explain import N_PAIRS

            p.add_argument("--explain", action="store_true", help=(
                "say why each listing was retrieved: each seed photo's contribution to the listing's score "
                "(they add up to the score: the cosine of the seed gallery's mean and the listing's mean "
                f"embedding) and the {N_PAIRS} best-matching (seed photo, listing photo) pairs by photo-embedding "
                "cosine similarity; with --json, an 'explanation' per result"))
        p.set_defaults(func=cmd_retrieve if name == "retrieve" else cmd_search_photo)

    query_parser("retrieve", "top-k listings for a set of seed photos", "--photos",
                 "seed photo files (one seed gallery)", "number of listings (default 10)")
    query_parser("search-photo", "visual search: the most similar photos and listings for one photo", "--photo",
                 "the query photo (JPEG or PNG)", "number of photos and of listings (default 10)")

    p = sub.add_parser("info", help="summary of a built run: steps, timings, validation metrics")
    p.add_argument("--artifacts", type=Path, default=default_out, help=f"run folder (default {default_out})")
    p.set_defaults(func=cmd_info)

    from gallery_core.evaluation.cli import add_parser as add_evaluate_parser

    add_evaluate_parser(sub)
    from gallery_core.app.serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Bad input (a ``UsageError`` or a broken run folder) is one line on stderr and exit
    code 2; anything else is a bug and keeps its traceback."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    configure_logging(quiet=getattr(args, "quiet", False))
    from gallery_core.models.backbones import BackboneWeightsError

    try:
        return args.func(args)
    except (UsageError, ArtifactError, BackboneWeightsError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
