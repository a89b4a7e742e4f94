"""Ablation of the visual-search objectives on the demo catalogue (issue 5).

Four models that differ only in their objectives (``gallery_core.evaluation.objective_ablation.ARMS``):
attributes only; + triplet ranking; + VAE; all three. This script trains them and writes the results;
the scoring is the evaluation's (``objective_ablation.evaluate_arm``): the hold-out column (star_rating,
a probe on each arm's listing embeddings), gallery-completion recall and attribute precision@k, with
clean and with corrupted (JPEG, crop, scribble, watermark) query photos.

Budget (2 CPU cores shared with other jobs): the backbone is frozen entirely (``trainable_stages=0``),
so each model trains its projection, heads and (VAE) decoder on the frozen EfficientNet-Lite0 features
of every photo, computed once. They are derived from the demo run's trunk cache (read only) by running
the two top stages once with their ImageNet weights, pooled to (1280,): a frozen top is deterministic,
so the result equals what the backbone gives on the pixels (checked on a few photos). The corrupted
query photos also go through the frozen backbone once and serve every arm. The product trains the last
two stages too; that costs ~5 min an epoch here under load and would not fit four arms.

    .venv/bin/python benchmarks/ablation_visual_search.py            # ~15-30 min on the shared 2 cores
    .venv/bin/python benchmarks/ablation_visual_search.py --quick    # a smoke run: 2 epochs, 60 queries

Writes docs/visual_search_ablation.json and docs/visual_search_ablation.md (tables; the prose reading
of them in the .md is kept between the READING markers when the script rewrites the file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import EVALUATION_DIR, write_json
from gallery_core.config import BuildConfig, ModelConfig, TrainConfig
from gallery_core.data.catalogue import Catalogue, load_catalogue
from gallery_core.data.corruptions import CORRUPTION_KINDS
from gallery_core.data.decode import load_photo
from gallery_core.data.photos import to_model_input, trunk_cache_key
from gallery_core.evaluation.metrics import split_galleries
from gallery_core.evaluation.objective_ablation import (
    ABLATION_FILE,
    ARMS,
    ablation_queries,
    arm_config,
    evaluate_arm,
    holdout_majority_accuracy,
    paired_differences,
)
from gallery_core.evaluation.robustness import (
    corrupted_pixels,
    evaluate_run_robustness,
    query_photo_rows,
)
from gallery_core.evaluation.sections.ablation import ablation_tables
from gallery_core.evaluation.sections.robustness import robustness_table
from gallery_core.models.backbones import Backbone, create_backbone
from gallery_core.models.checkpoint import load_checkpoint
from gallery_core.training.data import split_listings
from gallery_core.training.loop import train

REPO = Path(__file__).resolve().parent.parent
READING_START, READING_END = "<!-- READING -->", "<!-- /READING -->"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- frozen features, derived once from the demo run's trunk cache ---

def frozen_backbone(config: ModelConfig) -> Backbone:
    return create_backbone(config.backbone, 0, config.weights_path, pretrained=True).eval()


@torch.no_grad()
def derive_frozen_cache(catalogue: Catalogue, source_cache: Path, out_cache: Path, image_size: int) -> None:
    """Write the trainable_stages=0 trunk cache (pooled to (1280, 1, 1)) from the 2-stage cache."""
    source_backbone = create_backbone("efficientnet_lite0", 2, None, pretrained=True).eval()
    frozen = frozen_backbone(ModelConfig(trainable_stages=0, image_size=image_size))
    source_key = trunk_cache_key(catalogue.fingerprint, source_backbone, image_size)
    target_key = trunk_cache_key(catalogue.fingerprint, frozen, image_size)
    target = out_cache / f"trunk-{target_key}.npy"
    if target.is_file():
        return
    index = json.loads((source_cache / f"trunk-{source_key}.json").read_text())
    features = np.load(source_cache / f"trunk-{source_key}.npy", mmap_mode="r")
    log(f"deriving frozen features of {len(features)} photos from {source_cache}")
    out = np.zeros((len(features), source_backbone.feature_dim, 1, 1), dtype=np.float16)
    for start in range(0, len(features), 512):
        x = torch.from_numpy(np.asarray(features[start:start + 512], dtype=np.float32))
        out[start:start + 512, :, 0, 0] = source_backbone.forward_top(x).numpy().astype(np.float16)
    # Check against the backbone on pixels for a few photos.
    sample = [0, len(features) // 2, len(features) - 1]
    pixels = np.stack([load_photo(index["paths"][i], image_size) for i in sample])
    direct = frozen(to_model_input(pixels)).numpy()
    error = np.abs(direct - out[sample, :, 0, 0].astype(np.float32)).max() / np.abs(direct).max()
    if error > 0.02:
        raise RuntimeError(f"derived features differ from the backbone's by {error:.3f} (relative)")
    out_cache.mkdir(parents=True, exist_ok=True)
    np.save(target, out)
    write_json(out_cache / f"trunk-{target_key}.json", index)
    log(f"frozen features written ({out.nbytes / 1e6:.0f} MB, max relative error on 3 photos {error:.1e})")


@torch.no_grad()
def corrupted_frozen_features(paths: np.ndarray, rows: np.ndarray, image_size: int, kind: str, seed: int,
                              backbone: Backbone, cache: Path) -> np.ndarray:
    """Pooled frozen features (n, 1280, 1, 1) of the query photos under one corruption, cached."""
    path = cache / f"corrupted-{kind}-{seed}-{len(rows)}-{int(rows.sum())}.npy"
    if path.is_file():
        return np.load(path)
    started = time.perf_counter()
    chunks = []
    for start in range(0, len(rows), 64):
        pixels = corrupted_pixels(paths[start:start + 64], rows[start:start + 64], image_size, kind, seed)
        chunks.append(backbone(to_model_input(pixels)).numpy()[:, :, None, None])
    out = np.concatenate(chunks).astype(np.float32)
    np.save(path, out)
    log(f"corrupted features '{kind}': {len(rows)} photos in {time.perf_counter() - started:.0f}s")
    return out


# --- one arm (trained here, scored by the evaluation's objective_ablation.evaluate_arm) ---

def _trained_on(checkpoint: Path) -> str | None:
    """The catalogue fingerprint an arm's checkpoint was trained on (arms in WORK may be from an old catalogue)."""
    return torch.load(checkpoint, map_location="cpu", weights_only=True).get("catalogue_fingerprint")


# --- the report ---

def _shown(path: Path) -> str:
    """A path relative to the repository where it is inside it (reports should not name this machine)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def markdown(report: dict[str, Any]) -> str:
    arms, s = report["arms"], report["setup"]
    k = s["k"]
    lines = ["# Visual-search objectives: ablation on the demo catalogue", "",
             "Generated by `benchmarks/ablation_visual_search.py` (numbers in `visual_search_ablation.json`; "
             "`python -m gallery_core evaluate` reports them in the ablation section of the run's evaluation). "
             f"Wall-clock seconds on {os.cpu_count()} CPU cores, {s['threads']} torch thread(s).", "",
             "## Setup", ""]
    lines += [f"- Catalogue: {s['catalogue']} ({s['n_listings']} listings, {s['n_photos']} photos); "
              f"validation split {s['n_val']} listings (seed {s['seed']}), never trained on.",
              f"- Model: {s['backbone']} **frozen entirely** (`trainable_stages=0`); each arm trains the "
              f"projection to {s['embed_dim']}-d, the 21 attribute heads and its extra objectives. "
              f"Weighting {s['weighting']}, lr {s['lr']}, batch {s['batch_size']}, at most {s['max_epochs']} "
              f"epochs with early stopping (patience {s['patience']}): a reduced budget, see below.",
              f"- Extra objectives: triplet weight {s['triplet_weight']} (margin {s['triplet_margin']} per "
              f"level, levels {s['level_edges']} of shared attributes), VAE weight {s['vae_weight']} "
              f"({s['vae_image_size']} px reconstructions). Weights set so each extra objective starts "
              "at about a tenth of the attribute objective (see first_epoch_train_losses in the JSON); "
              "not tuned.",
              f"- Hold-out: `{s['holdout_column']}` (never a training task) predicted by the evaluation's "
              "2-layer probe on each arm's listing embeddings; accuracy on the validation listings, 95% "
              "Wilson interval.",
              f"- Gallery completion (the evaluation's protocol): half of a listing's photos query for "
              f"the other half among all {s['n_listings']} listings. *All listings*: every listing with "
              f">= 2 photos, clean. *Clean vs corrupted*: {s['n_queries']} listings (every validation "
              "listing, then a seeded sample of training listings) "
              f"({s['n_query_photos']} query photos), their query halves corrupted by each corruption of "
              "`gallery_core.data.corruptions` (catalogue photos stay clean).",
              f"- Attribute precision@{k}: share of a listing's {k} nearest listings with its recorded value, "
              f"mean over {', '.join(s['attributes'])}.", ""]
    lines += ablation_tables(arms, s, paired_differences(arms, k))
    product = report.get("built_run")
    if product:
        product = {**product, "k": k}
        lines += [f"## The built demo run itself ({_shown(Path(product['run']))})", "",
                  "The product's model as built (the backbone's last two stages trained with the attribute heads; "
                  "its manifest has the config) under the same corruptions, its own encoder embedding "
                  f"the corrupted photos: {product['n_queries']} validation listings "
                  f"({product['n_query_photos']} query photos), {product['seconds']:.0f} s.", "",
                  *robustness_table(product)]
    lines += ["## Wall time", "",
              f"- Frozen features of all photos (derived once from the demo run's trunk cache): "
              f"{report['timings']['frozen_features_s']:.0f} s; corrupted query photos through the frozen "
              f"backbone (4 x {s['n_query_photos']} photos): {report['timings']['corrupted_features_s']:.0f} s.",
              f"- Training: {sum(a['train_seconds'] for a in arms.values()):.0f} s for the four arms (sum of their "
              f"epochs; per arm in the table above); evaluation of all arms {report['timings']['evaluation_s']:.0f} s; "
              f"this invocation of the script {report['timings']['total_s']:.0f} s (it reuses arms and features "
              "already computed in its work folder).", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    write_json(docs / "visual_search_ablation.json", report)
    md_path = docs / "visual_search_ablation.md"
    reading = f"{READING_START}\n## Reading\n\n(to be written by hand)\n{READING_END}\n"
    if md_path.is_file():
        old = md_path.read_text()
        if READING_START in old and READING_END in old:
            reading = old[old.index(READING_START):old.index(READING_END) + len(READING_END)] + "\n"
    md_path.write_text(markdown(report) + "\n" + reading)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogue", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--source-cache", type=Path, default=REPO / "artifacts" / "demo" / "cache",
                        help="a run's trunk cache for this catalogue (read only)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/visual_search_ablation"))
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--queries", type=int, default=400, help="listings queried with corrupted photos")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: small ops on a shared machine "
                        "run ~10x faster than with 2 oversubscribed threads)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 60 queries, into WORK/quick")
    parser.add_argument("--fresh", action="store_true", help="retrain arms already trained in WORK")
    parser.add_argument("--run", type=Path, default=REPO / "artifacts" / "demo",
                        help="also measure this built run's own robustness (the product model); '' to skip")
    parser.add_argument("--image-size", type=int, default=None,
                        help="photo size (default: that of --run, whose trunk cache --source-cache holds)")
    args = parser.parse_args()
    if args.image_size is None and str(args.run) not in ("", ".") and (args.run / "manifest.json").is_file():
        # the source cache was made at the run's size (the demo: 128 px), not the backbone's native 224
        args.image_size = json.loads((args.run / "manifest.json").read_text())["config"]["model"]["image_size"]
    root = args.work
    if args.quick:
        args.epochs, args.queries, args.work = 2, 60, root / "quick"
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    seed, k = 0, 10

    catalogue = load_catalogue(args.catalogue)
    # Features, timings and the run's robustness are cached per catalogue, shared by --quick and full runs.
    cache = root / "cache" / catalogue.fingerprint[:16]
    base = BuildConfig(model=ModelConfig(trainable_stages=0, image_size=args.image_size),
                       train=TrainConfig(lr=args.lr, max_epochs=args.epochs, seed=seed)).validate()
    timings_path = cache / "timings.json"  # first-computation times, kept when the caches are reused
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    t0 = time.perf_counter()
    derive_frozen_cache(catalogue, args.source_cache, cache, base.model.image_size)
    timings.setdefault("frozen_features_s", round(time.perf_counter() - t0, 1))

    # Rows of the clean features follow the catalogue's photos (the cache index says which path is which).
    backbone = frozen_backbone(base.model)
    key = trunk_cache_key(catalogue.fingerprint, backbone, base.model.image_size)
    index = json.loads((cache / f"trunk-{key}.json").read_text())
    row_of = {p: i for i, p in enumerate(index["paths"])}
    clean_features = np.load(cache / f"trunk-{key}.npy")[[row_of[p] for p in catalogue.photos["path"]]]
    sizes = catalogue.gallery_sizes()
    listing_index = np.repeat(np.arange(len(sizes)), sizes)
    n = len(catalogue.listings)
    in_query = split_galleries(listing_index, n, seed=seed)
    # Queries: every validation listing (never trained on; the hold-out test set), then a seeded sample of
    # training listings up to --queries.
    val = split_listings(catalogue.listings["listing_id"].tolist(), base.train.val_fraction, seed)
    queries, n_val_queries = ablation_queries(listing_index, in_query, val, args.queries, seed)
    rows = query_photo_rows(listing_index, in_query, queries)
    paths = catalogue.photos["path"].to_numpy()[rows]
    t0 = time.perf_counter()
    corrupted = {kind: corrupted_frozen_features(paths, rows, base.model.image_size, kind, seed, backbone, cache)
                 for kind in CORRUPTION_KINDS}
    timings.setdefault(f"corrupted_features_s_{len(rows)}", round(time.perf_counter() - t0, 1))
    write_json(timings_path, timings)

    attributes = [t.column for t in catalogue.tasks if t.kind == "multiclass"]
    holdout_column = catalogue.holdout[0]
    report: dict[str, Any] = {"arms": {}}
    evaluation_s = 0.0
    for name in args.arms:
        config = arm_config(base, ARMS[name])
        run_dir = args.work / name
        if args.fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        if (run_dir / "model.pt").is_file() and _trained_on(run_dir / "model.pt") != catalogue.fingerprint:
            log(f"{name}: trained on another catalogue; training again")
            shutil.rmtree(run_dir)
        seconds_path = run_dir / "train_seconds.json"  # the checkpoint's history no longer holds epoch times
        if not (run_dir / "model.pt").is_file():
            log(f"training {name}")
            trained = train(catalogue, config, run_dir, progress=False, cache_dir=cache)
            write_json(seconds_path, {"epoch_seconds": trained.epoch_seconds})
        model, checkpoint = load_checkpoint(run_dir / "model.pt", device="cpu")
        history = checkpoint["history"]
        # the epochs' own wall time, also when trained earlier (0 for an arm trained before it was recorded)
        epoch_seconds = json.loads(seconds_path.read_text())["epoch_seconds"] if seconds_path.is_file() else []
        train_s = sum(epoch_seconds)
        t0 = time.perf_counter()
        log(f"evaluating {name}")
        result = evaluate_arm(model, checkpoint, catalogue, clean_features, corrupted, listing_index, in_query,
                              queries, attributes, holdout_column, k, seed)
        evaluation_s += time.perf_counter() - t0
        first, best = history[0], history[checkpoint["best_epoch"] - 1]
        report["arms"][name] = {
            "objectives": ARMS[name], "train_seconds": round(train_s, 1), "epochs_run": len(history),
            "best_epoch": checkpoint["best_epoch"], "seconds_per_epoch": epoch_seconds,
            "first_epoch_train_losses": first["train_task_losses"], "best_epoch_val_losses": best["val_task_losses"],
            "triplet_mining": checkpoint.get("triplet_mining"), **result}
        log(f"{name}: hold-out {result['holdout']['accuracy']:.3f}, recall@{k} "
            f"{result['clean_all_listings'][f'recall_at_{k}']:.3f}")

    product = None
    if str(args.run) not in ("", ".") and (args.run / "manifest.json").is_file():
        model_key = json.loads((args.run / "manifest.json").read_text())["steps"]["train"]["key"]
        product_cache = cache / f"run-robustness-{model_key}-{n_val_queries}.json"
        if product_cache.is_file():
            product = json.loads(product_cache.read_text())
        else:
            log(f"robustness of the built run {args.run} (its own encoder on the corrupted photos)")
            t0 = time.perf_counter()
            product = evaluate_run_robustness(Run(args.run), n_queries=n_val_queries, seed=seed,
                                              attributes=attributes, split="val", ks=(1, k), precision_k=k)
            product["seconds"] = round(time.perf_counter() - t0, 1)
            product["run"] = str(args.run)
            write_json(product_cache, product)
    report["built_run"] = product

    is_val = val
    one = next(iter(report["arms"].values()))
    report["setup"] = {
        "catalogue": _shown(args.catalogue), "catalogue_fingerprint": catalogue.fingerprint, "n_listings": n, "n_photos": int(len(listing_index)),
        "n_val": int(is_val.sum()), "seed": seed, "backbone": base.model.backbone, "embed_dim": base.model.embed_dim,
        "trainable_stages": 0, "weighting": base.train.weighting, "lr": base.train.lr,
        "batch_size": base.train.batch_size, "max_epochs": base.train.max_epochs, "patience": base.train.patience,
        "triplet_weight": ARMS["attributes+triplet+vae"]["triplet_weight"], "triplet_margin": base.train.triplet_margin,
        "level_edges": list((one.get("triplet_mining") or {}).get("level_edges", [0.7, 0.55, 0.4])),
        "vae_weight": ARMS["attributes+triplet+vae"]["vae_weight"], "vae_image_size": base.train.vae_image_size,
        "holdout_column": holdout_column, "holdout_majority_accuracy": holdout_majority_accuracy(catalogue.listings, holdout_column, is_val),
        "attributes": attributes, "k": k, "n_queries": int(len(queries)), "n_query_photos": int(len(rows)),
        "corruptions": list(CORRUPTION_KINDS), "quick": args.quick, "threads": args.threads,
    }
    report["timings"] = {"frozen_features_s": timings["frozen_features_s"],
                         "corrupted_features_s": timings[f"corrupted_features_s_{len(rows)}"],
                         "evaluation_s": round(evaluation_s, 1), "total_s": round(time.perf_counter() - started, 1)}
    docs = args.docs if not args.quick else args.work / "docs"
    write_report(report, docs)
    log(f"report written to {docs}")
    if product is not None and not args.quick:  # where `evaluate` on that run looks for it
        write_json(args.run / EVALUATION_DIR / ABLATION_FILE, report)
        log(f"results copied to {args.run / EVALUATION_DIR / ABLATION_FILE} for `python -m gallery_core evaluate`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
