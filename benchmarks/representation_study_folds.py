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

Alpha is chosen on the training listings alone ("inner" rows): each held-out task's labelled training listings
are split 80/20 (seeded), a linear probe trains on the 80% and is scored on the 20%; the design whose worst
task margin against ImageNet transfer is largest wins. The run's validation listings (the test set) play no
part in the choice.

Results are saved to ``--out`` after every (seed, fold), so an interrupted study resumes; ``--report`` prints
the tables in Markdown.

    python benchmarks/representation_study_folds.py --run artifacts/demo --seeds 0 --alphas 0.25 0.5 0.75
    python benchmarks/representation_study_folds.py --run artifacts/demo --seeds 1 2 --alphas 0.5
    python benchmarks/representation_study_folds.py --report
    python benchmarks/representation_study_folds.py --quick --run RUN   # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.run import open_run
from gallery_core.artifacts.store import write_json
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import mean_interval
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
from gallery_core.pipeline.embed import new_task_embeddings
from gallery_core.training.data import prepare_data
from gallery_core.training.wise import mix_encoder, pooled_embeddings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "representation_study_folds.json"


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
        stash.clear()
        stash.update(out, learned=learned, imagenet=np.asarray(ctx.imagenet.listings, np.float32),
                     seconds=time.perf_counter() - started)
        return out
    return extra


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
    done = {(r["seed"], r["fold"]) for r in results["runs"]}
    columns = [holdout_task(run.listings, c) for c in run.holdout if c in run.listings.columns]
    for seed in args.seeds:
        for fold, held_tasks in enumerate(folds):
            if (seed, fold) in done:
                continue
            print(f"seed {seed} fold {fold + 1}/{len(folds)}: without {[t.name for t in held_tasks]}", flush=True)
            stash: dict[str, Any] = {}
            started = time.perf_counter()
            out = run_fold(ctx, config, seed, fold, held_tasks, wise_extra(ctx, args.alphas, stash))
            held = held_out_tasks(held_tasks, columns, run.listings, ctx.is_val)
            feats = {k: v for k, v in stash.items() if k != "seconds"}
            results["runs"].append({"seed": seed, "fold": fold, "model": out["model"], "rows": out["rows"],
                                    "ranks": out["ranks"], "inner": inner_rows(ctx, held, feats, seed, fold),
                                    "wise_seconds": round(stash["seconds"], 1),
                                    "seconds": round(time.perf_counter() - started, 1)})
            results["folds"] = [[t.name for t in f] for f in folds]
            results["settings"] = {"epoch_budget": out["model"]["max_epochs"], "probe": out["probe"],
                                   "fractions": list(config.fold_fractions), "run": str(args.run)}
            write_json(args.out, results)
            print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)


def choose_alpha(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Per design, on the inner (training-listing) split: mean over tasks and each task's worst margin."""
    summary = summarise_folds([r for run in runs for r in run["inner"]])
    margins = pd.DataFrame(summary["margins"])
    per_design = margins.groupby("method").agg(worst=("mean", "min"), mean_margin=("mean", "mean"),
                                               worst_task=("mean", lambda s: margins.loc[s.idxmin(), "task"]))
    return per_design.sort_values("worst", ascending=False)


def report(path: Path) -> None:
    results = json.loads(path.read_text())
    runs = results["runs"]
    print(f"Folds: {results['folds']}\nRuns: {len(runs)} (seeds {sorted({r['seed'] for r in runs})})\n")
    print("Choice on the training listings' own split (linear probe, margin vs ImageNet):\n")
    print(choose_alpha(runs).to_markdown(floatfmt=".3f"), "\n")
    rows = [r for run in runs for r in run["rows"]]
    summary = summarise_folds(rows)
    frac = pd.DataFrame(summary["per_fraction"])
    frac["cell"] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{m:.3f}"
                    for m, lo, hi in zip(frac["mean"], frac["low"], frac["high"], strict=True)]
    print(frac.pivot_table(index=["probe", "fraction"], columns="method", values="cell", aggfunc="first")
          .to_markdown(), "\n")
    for method in sorted({r["method"] for r in rows} - {"imagenet"}):
        targets = fold_targets(summary, method=method)
        for probe, t in targets.items():
            gaps = ", ".join(f"{100 * f:.0f}% {g:+.3f}" for f, g in sorted(t["gap_per_fraction"].items()))
            print(f"- {method} ({probe}): mean gap {gaps}; worst task {t['worst_task']} {t['worst_margin']:+.3f}; "
                  f"significantly below: {t['tasks_significantly_below'] or 'none'}")
    margins = pd.DataFrame(summary["margins"])
    at_full = margins[margins["fraction"] == 1.0]
    print("\nPer task at 100%, margin vs ImageNet (mean over seeds):\n")
    print(at_full.pivot_table(index="task", columns=["probe", "method"], values="mean").to_markdown(floatfmt="+.3f"))
    ranks = pd.DataFrame([r for run in runs for r in run["ranks"]])
    pr = {m: mean_interval(g.groupby("seed")["participation_ratio"].mean().tolist())["mean"]
          for m, g in ranks.groupby("method")}
    print("\nParticipation ratio:", {m: round(v, 1) for m, v in pr.items()})
    trained = [r["model"] for r in runs]
    print(f"Models: {len(trained)}, train seconds mean {np.mean([m['seconds'] for m in trained]):.0f}; WiSE "
          f"embeddings per fold {np.mean([r['wise_seconds'] for r in runs]):.0f} s; per (seed, fold) in all "
          f"{np.mean([r['seconds'] for r in runs]):.0f} s")


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
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--probes", nargs="+", default=["mlp", "linear"], choices=("mlp", "linear"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget (default: the evaluation's)")
    parser.add_argument("--report", action="store_true", help="print the tables from --out and stop")
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
        report(args.out)


if __name__ == "__main__":
    main()
