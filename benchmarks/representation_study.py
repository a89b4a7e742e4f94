"""Representation study: which encoder design gives an embedding that carries over to tasks it never saw.

Measured with the evaluation's leave-tasks-out protocol (``gallery_core.evaluation.transfer``) on a built
run (default: the demo's): the held-out tasks are chosen by the protocol's rule, the MTL model of each
design is retrained without them once per seed on the run's training listings, and each held-out task
is probed from the design's embeddings at 100% of its labels (the issue's compute budget: probes only,
no end-to-end model). Every design runs over the same seeds. Per design and seed it records

  new-task score   mean over the held-out tasks of the probe's test score (accuracy, or R^2 for
                   regression), from the learned embedding alone and from [pretrained, learned]
  trained tasks    mean validation accuracy (classification) and mean R^2 (regression) of its own heads
  completion@10    gallery-completion recall@10 of the learned embedding (the retrieval embedding)
  effective rank   participation ratio of the learned listing embeddings
  seconds          wall time of training (noisy on a shared machine)

Results are appended to ``--out`` (JSON) after every run, so an interrupted study resumes where it
stopped; ``--report`` writes the markdown table from them.

    python benchmarks/representation_study.py --run artifacts/demo --seeds 0 1 2
    python benchmarks/representation_study.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gallery_core.artifacts.run import open_run
from gallery_core.artifacts.store import write_json
from gallery_core.config import BuildConfig, demo_catalogue_dir
from gallery_core.data.photos import derive_trunk_cache, trunk_cache_key
from gallery_core.data.tasks import parse_task_file
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import (
    gallery_completion_ranks,
    hit_rate_at_k,
    mean_interval,
    participation_ratio,
    split_galleries,
)
from gallery_core.evaluation.transfer import (
    choose_transfer_tasks,
    held_out_tasks,
    learned_listing_embeddings,
    probe_rows,
    retrain_without,
    trained_task_scores,
)
from gallery_core.models.backbones import create_backbone
from gallery_core.pipeline.embed import encode_trunk_features, new_task_embeddings
from gallery_core.training.data import prepare_data

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "representation_study.json"
DEFAULT_REPORT = REPO / "docs" / "representation_study.md"

# Each design: overrides of the run's config, (section, field) -> value. "today" is the design the
# product shipped before this study (a 1280->256 projection trained jointly, BatchNorm statistics updated,
# one learning rate, 2 fine-tuned stages).
TODAY = {("model", "embed_dim"): 256, ("model", "freeze_batchnorm"): False, ("train", "backbone_lr_mult"): 1.0,
         ("train", "l2sp_weight"): 0.0, ("model", "trainable_stages"): 2, ("train", "vae_weight"): 0.0}
NO_PROJ = {**TODAY, ("model", "embed_dim"): 0}
FROZEN_BN = {**NO_PROJ, ("model", "freeze_batchnorm"): True}
DESIGNS: dict[str, tuple[str, dict[tuple[str, str], Any]]] = {
    "today": ("projection 1280->256 (before this study)", TODAY),
    "no_projection": ("no projection (heads on the pooled backbone, as the paper)", NO_PROJ),
    "frozen_bn": ("no projection, BatchNorm statistics frozen", FROZEN_BN),
    "lr_mult_0.1": ("no projection, frozen BN, backbone lr x0.1", {**FROZEN_BN, ("train", "backbone_lr_mult"): 0.1}),
    "l2sp": ("no projection, frozen BN, L2-SP 0.1", {**FROZEN_BN, ("train", "l2sp_weight"): 0.1}),
    "vae": ("no projection, frozen BN, VAE objective (weight 1)", {**FROZEN_BN, ("train", "vae_weight"): 1.0}),
    "stages_1": ("no projection, frozen BN, 1 fine-tuned stage", {**FROZEN_BN, ("model", "trainable_stages"): 1}),
    "stages_0": ("no projection, backbone frozen (0 stages)", {**FROZEN_BN, ("model", "trainable_stages"): 0}),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def design_config(base: BuildConfig, overrides: dict[tuple[str, str], Any], seed: int, epochs: int) -> BuildConfig:
    data = base.to_dict()
    for (section, name), value in overrides.items():
        data[section][name] = value
    data["train"].update(seed=seed, max_epochs=epochs)
    return BuildConfig.from_dict(data)


def ensure_caches(ctx: Context, base: BuildConfig) -> None:
    """Trunk caches of the 1- and 0-stage splits, derived from the run's own cache (seconds, not a pass)."""
    model = base.model
    source = create_backbone(model.backbone, model.trainable_stages, model.weights_path, pretrained=True).eval()
    for stages in range(model.trainable_stages):
        target = create_backbone(model.backbone, stages, model.weights_path, pretrained=True).eval()
        derive_trunk_cache(ctx.cache_dir, source, ctx.cache_key, target,
                           trunk_cache_key(ctx.catalogue.fingerprint, target, model.image_size))


def completion_at_10(ctx: Context, trained, config: BuildConfig, seed: int) -> float:
    """Gallery-completion recall@10 of the model's photo embeddings over every listing of the run."""
    dev = torch.device("cpu")
    data = prepare_data(ctx.catalogue, trained.model, config.model, ctx.cache_dir,
                        trained.checkpoint["trunk_cache_key"], use_cache=True, device=dev, progress=False)
    photos = encode_trunk_features(trained.model.encoder, data.trunk_features, dev)
    sizes = np.diff(data.photo_offsets)
    listing_index = np.repeat(np.arange(len(sizes)), sizes)
    in_query = split_galleries(listing_index, len(sizes), seed=0)  # the evaluation's halves
    return hit_rate_at_k(gallery_completion_ranks(photos, listing_index, len(sizes), in_query), 10)


def run_study(args: argparse.Namespace) -> None:
    results: list[dict[str, Any]] = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    done = {(r["design"], r["seed"]) for r in results}
    run = open_run(args.run)
    ctx = Context(run=run, work_dir=REPO / ".tmp" / "study-work", report_dir=REPO / ".tmp", progress=False)
    base = run.config
    ensure_caches(ctx, base)
    evaluation = EvaluationConfig()
    tasks, columns = choose_transfer_tasks(run.tasks, run.listings, ctx.is_val, run.holdout,
                                           evaluation.transfer_binary)
    held = held_out_tasks(tasks, columns, run.listings, ctx.is_val)
    log(f"held out: {[h.task.name for h in held]}; designs {args.designs}; seeds {args.seeds}")
    probe = replace(evaluation.probe, hidden=base.model.head_hidden)
    pretrained = ctx.imagenet.listings
    for seed in args.seeds:
        if ("imagenet", seed) not in done:
            features = {"imagenet": pretrained}
            scores = probe_rows(held, features, (1.0,), probe, seed)
            results.append({"design": "imagenet", "seed": seed, "probes": scores,
                            "effective_rank": participation_ratio(pretrained)})
            _save(args.out, results)
        for name in args.designs:
            if (name, seed) in done:
                continue
            config = design_config(base, DESIGNS[name][1], seed, args.epochs)
            log(f"{name} seed {seed}: training")
            trained = retrain_without(ctx, tasks, config, f"study-{name}-{seed}")
            learned = learned_listing_embeddings(ctx, trained, config)
            features = {"learned": new_task_embeddings(learned, None, "learned"),
                        "pretrained+learned": new_task_embeddings(learned, pretrained, "pretrained+learned")}
            scores = probe_rows(held, features, (1.0,), probe, seed)
            trained_scores = trained_task_scores(trained, learned, run.listings, ctx.is_val)
            entry = {"design": name, "seed": seed, "probes": scores, "trained_tasks": trained_scores,
                     "completion_at_10": completion_at_10(ctx, trained, config, seed),
                     "effective_rank": participation_ratio(features["learned"]),
                     "effective_rank_combined": participation_ratio(features["pretrained+learned"]),
                     **trained.summary()}
            results.append(entry)
            _save(args.out, results)
            new = np.mean([s["score"] for s in scores if s["method"] == "learned"])
            both = np.mean([s["score"] for s in scores if s["method"] == "pretrained+learned"])
            log(f"{name} seed {seed}: new tasks learned {new:.3f} / combined {both:.3f}, completion@10 "
                f"{entry['completion_at_10']:.3f}, rank {entry['effective_rank']:.1f}, {trained.seconds:.0f}s")


def _save(path: Path, results: list[dict[str, Any]]) -> None:
    write_json(path, {"format": "gallery-core-representation-study", "runs": results})


# --- the report ---

def _fmt(ci: dict[str, float], digits: int = 3) -> str:
    if np.isnan(ci["low"]):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def summarise(results: list[dict[str, Any]], task_kinds: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name in ["imagenet", *DESIGNS]:
        runs = [r for r in results if r["design"] == name]
        if not runs:
            continue
        row: dict[str, Any] = {"design": name, "label": "ImageNet transfer (pretrained features, untrained)"
                               if name == "imagenet" else DESIGNS[name][0], "seeds": [r["seed"] for r in runs]}
        for method in ("imagenet", "learned", "pretrained+learned"):
            per_seed = [np.mean([s["score"] for s in r["probes"] if s["method"] == method]) for r in runs]
            if not any(np.isnan(per_seed)) and all(any(s["method"] == method for s in r["probes"]) for r in runs):
                row[f"new_{method}"] = mean_interval(per_seed)
        per_task = {}
        for s in (s for r in runs for s in r["probes"]):
            per_task.setdefault((s["method"], s["task"]), []).append(s["score"])
        row["per_task"] = {f"{m}/{t}": float(np.mean(v)) for (m, t), v in per_task.items()}
        if name != "imagenet":
            acc = [np.mean([v for t, v in r["trained_tasks"].items() if task_kinds.get(t) != "regression"]) for r in runs]
            r2 = [np.mean([v for t, v in r["trained_tasks"].items() if task_kinds.get(t) == "regression"]) for r in runs]
            row["trained_accuracy"] = mean_interval(acc)
            row["trained_r2"] = mean_interval(r2)
            row["completion_at_10"] = mean_interval([r["completion_at_10"] for r in runs])
            row["seconds"] = mean_interval([r["seconds"] for r in runs])
            row["best_epoch"] = [r["best_epoch"] for r in runs]
        row["effective_rank"] = mean_interval([r["effective_rank"] for r in runs])
        rows.append(row)
    return rows


def write_figure(rows: list[dict[str, Any]], path: Path) -> None:
    """New-task score per design (learned alone and [pretrained, learned]) against ImageNet transfer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    designs = [r for r in rows if r["design"] != "imagenet"]
    imagenet = next((r["new_imagenet"] for r in rows if r["design"] == "imagenet"), None)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    y = np.arange(len(designs))
    for offset, method, colour in ((-0.2, "learned", "#9467bd"), (0.2, "pretrained+learned", "#1f77b4")):
        ci = [r[f"new_{method}"] for r in designs]
        mean = np.array([c["mean"] for c in ci])
        err = np.nan_to_num(np.array([[c["mean"] - c["low"] for c in ci], [c["high"] - c["mean"] for c in ci]]))
        ax.barh(y + offset, mean, height=0.38, xerr=err, capsize=2, color=colour, label=method)
    if imagenet is not None:
        ax.axvline(imagenet["mean"], color="#ff7f0e", ls="--", label="ImageNet transfer")
        if np.isfinite(imagenet["low"]):
            ax.axvspan(imagenet["low"], imagenet["high"], color="#ff7f0e", alpha=0.15)
    ax.set_yticks(y, [r["design"] for r in designs])
    ax.invert_yaxis()
    low = min(min(r[f"new_{m}"]["mean"] for m in ("learned", "pretrained+learned")) for r in designs)
    ax.set_xlim(max(0.0, low - 0.05), None)
    ax.set_xlabel("mean score over held-out tasks (accuracy; R^2 for price), 95% CI over seeds")
    ax.set_title("Tasks never trained on, by encoder design")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_report(args: argparse.Namespace) -> None:
    results = json.loads(args.out.read_text())["runs"]
    kinds = {t.name: t.kind for t in parse_task_file(args.catalogue / "tasks.yaml").tasks}
    rows = summarise(results, kinds)
    tasks = sorted({s["task"] for r in results for s in r["probes"]})
    lines = [
        "# Representation study: an embedding that carries over to tasks it never saw",
        "",
        f"Generated by `python benchmarks/representation_study.py --report` from `{args.out.relative_to(REPO)}` "
        "(the runs: `python benchmarks/representation_study.py --run artifacts/demo`).",
        "",
        "Protocol (the evaluation's leave-tasks-out section, `gallery_core/evaluation/transfer.py`): the held-out "
        f"tasks are **{', '.join(tasks)}** (the rule: the hold-out column plus two binary tasks evenly spread over "
        "class balance, the multiclass task with the most classes and the first regression task; chosen from the "
        "task list and class balance alone). Each design's MTL model is retrained without them on the demo run's "
        "training listings, once per seed, with the evaluation's budget of "
        f"{args.epochs} epochs (early stopping may end sooner); each held-out task is probed with the paper's "
        "2-layer head at 100% of its training labels and scored on the run's validation listings (accuracy; R^2 for "
        "the regression task). Numbers are means over the seeds with 95% Student-t intervals over seeds.",
        "",
        f"![New-task score by design]({args.report.with_suffix('.png').name})",
        "",
        "| design | new tasks: learned | new tasks: [pretrained, learned] | trained tasks: accuracy | trained tasks: "
        "R^2 | completion@10 | effective rank | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["design"] == "imagenet":
            lines.append(f"| {row['label']} | {_fmt(row['new_imagenet'])} (ImageNet alone) | | | | | "
                         f"{row['effective_rank']['mean']:.1f} | |")
            continue
        lines.append(f"| {row['label']} | {_fmt(row['new_learned'])} | {_fmt(row['new_pretrained+learned'])} | "
                     f"{_fmt(row['trained_accuracy'])} | {_fmt(row['trained_r2'])} | {_fmt(row['completion_at_10'])} | "
                     f"{row['effective_rank']['mean']:.1f} | {row['seconds']['mean']:.0f} |")
    lines += ["", "Per held-out task (mean over seeds):", "",
              "| design | features | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    for row in rows:
        for method in ("imagenet", "learned", "pretrained+learned"):
            if f"{method}/{tasks[0]}" in row["per_task"]:
                cells = " | ".join(f"{row['per_task'][f'{method}/{t}']:.3f}" for t in tasks)
                lines.append(f"| {row['design']} | {method} | {cells} |")
    seeds = sorted({r["seed"] for r in results})
    lines += ["", f"Seeds: {seeds}. Machine: {args.machine}.", ""]
    if args.reading.is_file():
        lines += [args.reading.read_text().strip(), ""]
    write_figure(rows, args.report.with_suffix(".png"))
    args.report.write_text("\n".join(lines))
    print(args.report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "artifacts" / "demo", help="a built run (default the demo)")
    parser.add_argument("--catalogue", type=Path, default=demo_catalogue_dir(),
                        help="the run's catalogue (the report reads its tasks.yaml for the task kinds)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4, help="epoch budget of every model (default 4, as evaluate)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (appended to, resumable)")
    parser.add_argument("--report", nargs="?", type=Path, const=DEFAULT_REPORT, default=None,
                        help="write the markdown report from the results instead of running")
    parser.add_argument("--reading", type=Path, default=REPO / "docs" / "representation_study_reading.md",
                        help="hand-written reading appended to the report, if it exists")
    parser.add_argument("--machine", default="the 2-core CPU machine (x86_64, torch CPU), shared with other work")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the evaluation code's own progress lines
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report is not None:
        write_report(args)
    else:
        run_study(args)


if __name__ == "__main__":
    main()
