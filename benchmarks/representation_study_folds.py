"""Representation study on the task-fold protocol: which embedding reads *every* task it never saw.

Protocol: ``gallery_core.evaluation.task_folds`` (every training task held out once: K folds, one model
retrained without each fold per seed, the fold's tasks and the hold-out column probed on the run's
validation listings by an MLP and a linear probe at 20% and 100% of their labels). On each fold's model,
designs that need no retraining are compared side by side:

  learned        the fine-tuned model's gallery embedding (the product before this study)
  imagenet       ImageNet transfer: the pretrained backbone's pooled features
  wise_A         WiSE-FT: the backbone's top mixed (1 - A) * pretrained + A * fine-tuned, BatchNorm statistics
                 recomputed on training photos (``gallery_core.training.wise.mix_encoder``, what training does
                 with ``--wise-alpha A``)
  side_by_side   [pretrained, learned], each part L2-normalised (``new_task_features = pretrained+learned``)

Designs that retrain (``--designs``) train each fold's model under another config (``DESIGNS``: LP-FT,
distillation to the pretrained backbone, an MLP projector before the heads, the self-supervised gallery-completion
objective) and are probed as ``<design>:learned`` and ``<design>:side_by_side``; ImageNet transfer is probed once
per (seed, fold), by the default design's run.

Alpha (and a design) is chosen on the training listings alone ("inner" rows): each held-out task's labelled training listings
are split 80/20 (seeded), a linear probe trains on the 80% and is scored on the 20%; the design whose worst
task margin against ImageNet transfer is largest wins. The run's validation listings (the test set) play no
part in the choice.

Results are saved to ``--out`` after every (seed, fold), so an interrupted study resumes; ``--report`` prints
the tables in Markdown.

    python benchmarks/representation_study_folds.py --run artifacts/demo --seeds 0 --alphas 0.25 0.5 0.75
    python benchmarks/representation_study_folds.py --run artifacts/demo --seeds 1 2 --alphas 0.5
    python benchmarks/representation_study_folds.py --run artifacts/demo --seeds 0 --designs completion distill
    python benchmarks/representation_study_folds.py --report
    python benchmarks/representation_study_folds.py --quick --run RUN   # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.run import open_run
from gallery_core.artifacts.store import write_json
from gallery_core.config import BuildConfig
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import (
    gallery_completion_ranks,
    hit_rate_at_k,
    mean_interval,
    split_galleries,
)
from gallery_core.evaluation.task_folds import (
    fold_targets,
    linear_probe_score,
    run_fold,
    summarise_folds,
    task_folds,
)
from gallery_core.evaluation.tasks import holdout_task
from gallery_core.evaluation.transfer import held_out_tasks
from gallery_core.models.device import pick_device
from gallery_core.pipeline.embed import encode_trunk_features, new_task_embeddings
from gallery_core.search.whitening import WHITENING_METHODS, fit_retrieval_whitening
from gallery_core.training.data import prepare_data
from gallery_core.training.wise import mix_encoder, pooled_embeddings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "representation_study_folds.json"
DESIGNS_OUT = REPO / "docs" / "representation_study_designs.json"  # the retraining designs' screening (--out)
CONFIRM_OUT = REPO / "docs" / "representation_study_designs_seeds.json"  # the chosen designs' other seeds (--out)

# Designs that retrain each fold's model: config changes on top of the run's (evaluation budget, fold seed).
# The extra objectives' weights are set beforehand so each weighs about a tenth of the attribute objective
# (~20 at the start of training on the demo): InfoNCE over a batch of 8 galleries starts at ~ln 8 = 2.1;
# 1 - cosine to the pretrained features grows from 0 to ~0.1-0.2 as the top fine-tunes. Not tuned.
# The first three were screened when the completion objective was off by default; they say so, so that a rerun
# on a run built with today's default trains what the screening trained.
ATTRIBUTES_ONLY = {"completion_weight": 0.0}
DESIGNS: dict[str, dict[str, dict[str, object]]] = {
    "default": {},
    "lp_ft": {"train": {**ATTRIBUTES_ONLY, "lp_epochs": 1}},  # 1 of the 4 epochs heads-only
    "distill": {"train": {**ATTRIBUTES_ONLY, "distill_weight": 10.0}},
    "projector": {"model": {"head_projector": 512}, "train": ATTRIBUTES_ONLY},
    "completion": {"train": {"completion_weight": 1.0}},
    "spread": {"train": {"completion_weight": 1.0, "spread_weight": 1.0}},  # on top of completion (the default)
    "spread10": {"train": {"completion_weight": 1.0, "spread_weight": 10.0}},  # the same, ten times the weight
}


def design_config(name: str):
    """The design's change to a fold model's config, or None for the default."""
    if not DESIGNS[name]:
        return None

    def configure(config: BuildConfig) -> BuildConfig:
        sections = {section: replace(getattr(config, section), **values) for section, values in DESIGNS[name].items()}
        return replace(config, **sections)
    return configure


def canonical_methods(run: dict[str, Any]) -> dict[str, Any]:
    """A stored (design, seed, fold) with its feature sets under one naming: "product" was the learned embedding
    in runs made before ``new_task_features`` became pretrained+learned (then no "learned" set exists), and is
    the side-by-side pair after (a duplicate of "side_by_side"); other designs' sets carry the design's name."""
    design = run.get("design", "default")
    methods = {r["method"] for r in run["rows"]}
    rename = {"product": "learned"} if "learned" not in methods else {"product": None}
    if design != "default":
        rename |= {m: f"{design}:{m}" for m in methods if m not in ("product", "imagenet")}

    def fix(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "method": rename.get(r["method"], r["method"])} for r in rows
                if rename.get(r["method"], r["method"]) is not None]
    return {**run, "rows": fix(run["rows"]), "inner": fix(run["inner"]), "ranks": fix(run["ranks"])}


def wise_extra(ctx: Context, alphas: list[float], stash: dict[str, Any]):
    """The study's extra feature sets for one fold's model; every set (with learned and ImageNet) is kept in
    ``stash`` for the inner-validation choice."""
    ids = ctx.run.listings["listing_id"].to_numpy()

    def extra(trained, learned: np.ndarray, config, seed: int) -> dict[str, np.ndarray]:
        dev = pick_device(ctx.device)
        started = time.perf_counter()
        data = prepare_data(ctx.catalogue, trained.model, config.model, ctx.cache_dir,
                            trained.checkpoint["trunk_cache_key"], use_cache=True, device=dev, progress=False)
        position = {lid: i for i, lid in enumerate(data.catalogue.listings["listing_id"])}
        order = np.array([position[i] for i in ids])  # run rows -> data rows
        train_idx = order[~ctx.is_val]
        out = {}
        for alpha in alphas:
            model = copy.deepcopy(trained.model)
            mix_encoder(model, config, data, train_idx, dev, alpha, seed)
            out[f"wise_{alpha:g}"] = pooled_embeddings(model, data, dev).numpy()[order]
        out["side_by_side"] = new_task_embeddings(learned, ctx.imagenet.listings, "pretrained+learned")
        recall = fold_completion(ctx, trained, data, order, dev, seed)
        stash.clear()
        stash.update(out, learned=learned, imagenet=np.asarray(ctx.imagenet.listings, np.float32),
                     seconds=time.perf_counter() - started, completion=recall)
        return out
    return extra


def fold_completion(ctx: Context, trained, data, order: np.ndarray, dev, seed: int) -> dict[str, float]:
    """Gallery completion recall@10 of a fold model's embedding over every listing, as the evaluation's
    retrieval section measures a run: raw, and whitened (the run's dimension, fitted on training photos)."""
    run = ctx.run
    photos = encode_trunk_features(trained.model.encoder, data.trunk_features, dev)  # rows: data's photos
    position = np.empty(data.n_listings, np.int64)
    position[order] = np.arange(len(order))  # data rows -> run rows
    listing_index = position[np.repeat(np.arange(data.n_listings), np.diff(data.photo_offsets))]
    n = len(run.listings)
    in_query = split_galleries(listing_index, n, seed=seed)
    eligible = np.flatnonzero(np.bincount(listing_index, minlength=n) >= 2)
    # PCA at the run's dimensions over every listing, as every row of the study so far measured it (a whitening
    # learned from the training listings, the product's default since, must be scored on validation queries only:
    # the evaluation's retrieval section does that).
    pca = replace(run.config.embed, whitening="pca",
                  whitening_dim=run.config.embed.whitening_dim or WHITENING_METHODS["pca"])
    white = fit_retrieval_whitening(photos, ~ctx.is_val[listing_index], listing_index, seed, pca)
    return {name: hit_rate_at_k(gallery_completion_ranks(x, listing_index, n, in_query, eligible), 10)
            for name, x in (("raw", photos), ("whitened", white.transform(photos)))}


def inner_rows(ctx: Context, held, features: dict[str, np.ndarray], seed: int, fold: int) -> list[dict[str, Any]]:
    """Linear-probe scores on a seeded 80/20 split of each held-out task's labelled *training* listings."""
    rows = []
    for h in held:
        order = np.random.default_rng([seed, fold, 7]).permutation(h.pool_rows)
        n_val = max(2, len(order) // 5)
        val, fit = order[:n_val], order[n_val:]
        for method, x in features.items():
            score = linear_probe_score(h.task, x[fit], h.labels[fit], x[val], h.labels[val], seed)
            rows.append({"seed": seed, "fold": fold, "probe": "linear", "method": method, "task": h.task.name,
                         "kind": h.task.kind, "source": h.source, "fraction": 1.0, "n_train": len(fit),
                         "score": score})
    return rows


def run_study(args: argparse.Namespace) -> None:
    run = open_run(args.run)
    ctx = Context(run=run, work_dir=REPO / ".tmp" / "study-folds", report_dir=REPO / ".tmp", device=args.device,
                  progress=False)
    config = EvaluationConfig(transfer_folds=args.folds, transfer_seeds=tuple(args.seeds),
                              fold_probes=tuple(args.probes), epochs=args.epochs).validate()
    folds = task_folds(run.tasks, args.folds, config.fold_seed)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    done = {(r.get("design", "default"), r["seed"], r["fold"]) for r in results["runs"]}
    columns = [holdout_task(run.listings, c) for c in run.holdout if c in run.listings.columns]
    for design in args.designs:
        # ImageNet transfer is the same features whatever the design: probed once, in the default's runs. A
        # design gets no WiSE sweep (alphas are the default model's question).
        drop = () if design == "default" else ("imagenet", "imagenet_pca", "product")
        alphas = args.alphas if design == "default" else []
        for seed in args.seeds:
            for fold, held_tasks in enumerate(folds):
                if (design, seed, fold) in done:
                    continue
                print(f"{design}, seed {seed} fold {fold + 1}/{len(folds)}: without "
                      f"{[t.name for t in held_tasks]}", flush=True)
                stash: dict[str, Any] = {}
                started = time.perf_counter()
                out = run_fold(ctx, config, seed, fold, held_tasks, wise_extra(ctx, alphas, stash),
                               configure=design_config(design), drop=drop)
                held = held_out_tasks(held_tasks, columns, run.listings, ctx.is_val)
                feats = {k: v for k, v in stash.items() if k not in ("seconds", "completion") and k not in drop}
                results["runs"].append({"design": design, "seed": seed, "fold": fold, "model": out["model"],
                                        "rows": out["rows"], "ranks": out["ranks"],
                                        "inner": inner_rows(ctx, held, feats, seed, fold),
                                        "wise_seconds": round(stash["seconds"], 1),
                                        "completion_at10": stash["completion"],
                                        "seconds": round(time.perf_counter() - started, 1)})
                results["folds"] = [[t.name for t in f] for f in folds]
                results["settings"] = {"epoch_budget": out["model"]["max_epochs"], "probe": out["probe"],
                                       "fractions": list(config.fold_fractions), "run": str(args.run),
                                       "designs": DESIGNS}
                write_json(args.out, results)
                print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)


def choose_alpha(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Per design, on the inner (training-listing) split: mean over tasks and each task's worst margin."""
    summary = summarise_folds([r for run in runs for r in run["inner"]])
    margins = pd.DataFrame(summary["margins"])
    per_design = margins.groupby("method").agg(worst=("mean", "min"), mean_margin=("mean", "mean"),
                                               worst_task=("mean", lambda s: margins.loc[s.idxmin(), "task"]))
    return per_design.sort_values("worst", ascending=False)


def report(path: Path, more: list[Path] = ()) -> None:
    """The tables of the study in ``path``, with the runs of ``more`` (e.g. the designs' file) merged in.

    Designs are compared on the same seeds: first the screening seed (every design ran it), then every seed (the
    designs confirmed on all of them)."""
    results = json.loads(path.read_text())
    for other in more:
        if other.is_file() and other.resolve() != path.resolve():
            results["runs"] += json.loads(other.read_text())["runs"]
    runs = [canonical_methods(r) for r in results["runs"]]
    seeds = sorted({r["seed"] for r in runs})
    print(f"Folds: {results['folds']}\nRuns: {len(runs)} (seeds {seeds})")
    print(f"\n## Screening seed {seeds[0]}, every design\n")
    tables([r for r in runs if r["seed"] == seeds[0]])
    seeds_of = {d: {r["seed"] for r in runs if r.get("design", "default") == d}
                for d in {r.get("design", "default") for r in runs}}
    everywhere = [r for r in runs if seeds_of[r.get("design", "default")] == set(seeds)]
    if len(seeds) > 1 and everywhere:
        print(f"\n## Seeds {seeds}, the designs run on every seed\n")
        tables(everywhere)


def tables(runs: list[dict[str, Any]]) -> None:
    print("Choice on the training listings' own split (linear probe, margin vs ImageNet):\n")
    print(choose_alpha(runs).to_markdown(floatfmt=".3f"), "\n")
    rows = [r for run in runs for r in run["rows"]]
    summary = summarise_folds(rows)
    frac = pd.DataFrame(summary["per_fraction"])
    frac["cell"] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{m:.3f}"
                    for m, lo, hi in zip(frac["mean"], frac["low"], frac["high"], strict=True)]
    print(frac.pivot_table(index=["probe", "fraction"], columns="method", values="cell", aggfunc="first")
          .T.to_markdown(), "\n")
    for method in sorted({r["method"] for r in rows} - {"imagenet"}):
        targets = fold_targets(summary, method=method)
        for probe, t in targets.items():
            gaps = ", ".join(f"{100 * f:.0f}% {g:+.3f}" for f, g in sorted(t["gap_per_fraction"].items()))
            print(f"- {method} ({probe}): mean gap {gaps}; worst task {t['worst_task']} {t['worst_margin']:+.3f}; "
                  f"significantly below: {t['tasks_significantly_below'] or 'none'}")
    margins = pd.DataFrame(summary["margins"])
    at_full = margins[margins["fraction"] == 1.0]
    print("\nPer task at 100%, margin vs ImageNet (mean over seeds):\n")
    print(at_full.pivot_table(index="task", columns="method", values="mean").to_markdown(floatfmt="+.3f"))
    ranks = pd.DataFrame([r for run in runs for r in run["ranks"]])
    pr = {m: mean_interval(g.groupby("seed")["participation_ratio"].mean().tolist())["mean"]
          for m, g in ranks.groupby("method")}
    print("\nParticipation ratio:", {m: round(v, 1) for m, v in pr.items()})
    print("\nFold models per design (train seconds: median, as the first fold of a run also fills caches):")
    for design, group in pd.DataFrame(runs).assign(design=lambda d: d.get("design", "default")).fillna(
            {"design": "default"}).groupby("design"):
        models = pd.DataFrame(list(group["model"]))
        scores = pd.DataFrame(list(models["trained_task_scores"])).mean(axis=1)
        completion = pd.DataFrame([c for c in group.get("completion_at10", []) if isinstance(c, dict)])
        recall = (f"; completion recall@10 raw {completion['raw'].mean():.3f}, whitened "
                  f"{completion['whitened'].mean():.3f} ({len(completion)} models)") if len(completion) else ""
        print(f"- {design}: {len(models)} models (seeds {sorted(set(models['seed']))}), train s median "
              f"{models['seconds'].median():.0f}, epochs run {models['epochs_run'].mean():.1f}, best epoch "
              f"{models['best_epoch'].mean():.1f}; own heads' mean validation score {scores.mean():.3f}{recall}")


def trained_task_metrics(run_dir: Path, checkpoints: list[Path]) -> None:
    """Validation metrics of each checkpoint's own heads on the run's split (the build's predict step, heads
    only): e.g. the fine-tuned model's against its WiSE-FT mix with refitted heads."""
    from gallery_core.models.checkpoint import load_checkpoint
    from gallery_core.pipeline.embed import encode_trunk_features
    from gallery_core.pipeline.predict import chunked_head_predictions, metrics_table, task_metrics

    run = open_run(run_dir)
    ctx = Context(run=run, work_dir=REPO / ".tmp", report_dir=REPO / ".tmp", progress=False)
    dev = pick_device(None)
    listing_index = run.photos["listing_index"].to_numpy()
    is_val = (run.listings["split"] == "val").to_numpy()
    for path in checkpoints:
        model, checkpoint = load_checkpoint(path, device=str(dev))
        data = prepare_data(ctx.catalogue, model, run.config.model, ctx.cache_dir, checkpoint["trunk_cache_key"],
                            use_cache=True, device=dev, progress=False)
        photos = encode_trunk_features(model.encoder, data.trunk_features, dev)  # rows: run.photos
        predictions = chunked_head_predictions(model.heads, photos, listing_index, len(run.listings))
        table = metrics_table({t.name: task_metrics(t, predictions, run.listings, is_val) for t in model.heads.tasks})
        accuracy = table[table["metric"] == "accuracy"]
        print(f"{path} (wise {checkpoint.get('wise', {}).get('alpha', 1.0)}): mean accuracy "
              f"{accuracy['model'].mean():.4f} over {len(accuracy)} tasks; beating baseline "
              f"{int(table['beats_baseline'].sum())}/{len(table)}")
        print(table[table["metric"] != "accuracy"].to_string(index=False, float_format="%.4f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "artifacts" / "demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--folds", type=int, default=EvaluationConfig().transfer_folds)
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.25, 0.5, 0.75])
    parser.add_argument("--designs", nargs="+", default=["default"], choices=list(DESIGNS),
                        help="fold models trained under these designs (default: the run's own config)")
    parser.add_argument("--probes", nargs="+", default=["mlp", "linear"], choices=("mlp", "linear"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget (default: the evaluation's)")
    parser.add_argument("--report", action="store_true", help="print the tables from --out and stop")
    parser.add_argument("--with", dest="merge", type=Path, nargs="*", default=[DESIGNS_OUT, CONFIRM_OUT],
                        help=f"--report merges these results files' runs in (default {DESIGNS_OUT.name}, "
                             f"{CONFIRM_OUT.name})")
    parser.add_argument("--heads", type=Path, nargs="+", default=None, metavar="CHECKPOINT",
                        help="print the validation metrics of these checkpoints' own heads on --run's split, and stop")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 folds, 1 seed, alpha 0.5, linear probe, 1 epoch (results in a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.folds, args.seeds, args.alphas, args.probes, args.epochs = 2, [0], [0.5], ["linear"], 1
        if args.out == DEFAULT_OUT:  # a smoke run never touches the study's results
            args.out = Path(tempfile.mkdtemp(prefix="study-folds-")) / "study.json"
    if args.heads:
        trained_task_metrics(args.run, args.heads)
        return
    if not args.report:
        run_study(args)
    if args.report or args.quick:
        report(args.out, [] if args.quick else args.merge)


if __name__ == "__main__":
    main()
