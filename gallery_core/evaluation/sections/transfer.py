"""Leave tasks out (report section 2): training tasks held out of training, the MTL model retrained
without them once per seed, each held-out task probed from each embedding at nested fractions.

The protocol's steps are ``gallery_core.evaluation.transfer`` (shared with
``benchmarks/representation_study.py``); this module runs them over the seeds, summarises them over
seeds with 95% Student-t intervals and reports them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import mean_interval, participation_ratio
from gallery_core.evaluation.report import (
    COLOURS,
    bullets,
    finite_or_nan,
    fmt,
    is_finite,
    save_figure,
    subplots,
    table,
)
from gallery_core.evaluation.sections.base import Section
from gallery_core.evaluation.transfer import (
    METHODS,
    RULE,
    choose_transfer_tasks,
    end_to_end_rows,
    feature_sets,
    held_out_tasks,
    learned_listing_embeddings,
    probe_rows,
    retrain_without,
)

FIGURE = "transfer.png"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (method, task, fraction) and per (method, fraction) over tasks: mean over seeds, 95% interval.

    A method's mean over tasks is taken per seed first (over the tasks it was scored on), so the
    interval is the spread of whole seeds."""
    table = pd.DataFrame(rows)
    per_task = [{"method": m, "task": t, "fraction": f, **mean_interval(g["score"].tolist())}
                for (m, t, f), g in table.groupby(["method", "task", "fraction"], sort=False)]
    by_seed = table.groupby(["method", "fraction", "seed"], sort=False)["score"].mean().reset_index()
    per_fraction = [{"method": m, "fraction": f, **mean_interval(g["score"].tolist())}
                    for (m, f), g in by_seed.groupby(["method", "fraction"], sort=False)]
    all_fractions = sorted(table["fraction"].unique())
    overall = []
    for method, g in table.groupby("method", sort=False):
        if sorted(g["fraction"].unique()) == all_fractions:
            per_seed = g.groupby("seed")["score"].mean()
            overall.append({"method": method, **mean_interval(per_seed.tolist())})
    return {"per_task": per_task, "per_fraction": per_fraction, "overall": overall}


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar: the product embedding at least matches ImageNet transfer at every fraction (mean
    over tasks and seeds) and beats it on the mean over fractions."""
    frac = {(r["method"], r["fraction"]): r["mean"] for r in summary["per_fraction"]}
    fractions = sorted({f for (m, f) in frac if m == "product"})
    gaps = {f: frac["product", f] - frac["imagenet", f] for f in fractions if ("imagenet", f) in frac}
    overall = {r["method"]: r["mean"] for r in summary["overall"]}
    mean_gap = overall.get("product", np.nan) - overall.get("imagenet", np.nan)
    return {"gap_per_fraction": gaps, "matches_at_every_fraction": bool(gaps) and all(g >= 0 for g in gaps.values()),
            "gap_on_mean": mean_gap, "beats_on_mean": bool(mean_gap > 0)}


def evaluate_transfer(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    listings = run.listings
    tasks, columns = choose_transfer_tasks(run.tasks, listings, ctx.is_val, run.holdout, config.transfer_binary,
                                           config.transfer_tasks)
    held = held_out_tasks(tasks, columns, listings, ctx.is_val)
    if not held:
        return {"skipped": "no held-out task has labelled listings in both the training and validation split"}
    budget = config.epoch_budget(run.config.train.max_epochs)
    probe = replace(config.probe, hidden=config.probe.hidden or run.config.model.head_hidden)
    pretrained = ctx.imagenet.listings
    fit_rows = np.flatnonzero(~ctx.is_val)
    e2e_fractions = tuple(f for f in config.transfer_end_to_end_fractions)
    projected = 0 < run.config.model.embed_dim < pretrained.shape[1]
    n_methods = 2 + (run.config.embed.new_task_features != "learned") + projected
    total = len(config.transfer_seeds) * (1 + len(held) * (len(config.fractions) * n_methods + len(e2e_fractions)))
    bar = tqdm(total=total, desc="leave tasks out", unit="model", disable=not ctx.progress)
    rows: list[dict[str, Any]] = []
    ranks: dict[str, list[float]] = {}
    retrained: list[dict[str, Any]] = []
    for seed in config.transfer_seeds:
        seeded = ctx.baseline_config(budget)
        seeded = replace(seeded, train=replace(seeded.train, seed=seed))
        bar.set_postfix_str(f"seed {seed}: MTL without {len(tasks)} tasks")
        trained = retrain_without(ctx, tasks, seeded, f"transfer-{seed}")
        retrained.append({"seed": seed, **trained.summary()})
        bar.update()
        learned = learned_listing_embeddings(ctx, trained, seeded)
        features = feature_sets(learned, pretrained, run.config.embed.new_task_features, fit_rows, seed)
        for method, x in features.items():
            ranks.setdefault(method, []).append(participation_ratio(x))
        bar.set_postfix_str(f"seed {seed}: probes")
        rows += probe_rows(held, features, tuple(config.fractions), probe, seed, bar)
        if e2e_fractions:
            bar.set_postfix_str(f"seed {seed}: end-to-end")
            rows += end_to_end_rows(ctx, held, e2e_fractions, seeded, seed, bar)
    bar.close()
    summary = summarise(rows)
    return {
        "rule": RULE.format(n_binary=config.transfer_binary) if config.transfer_tasks is None else
        "chosen by the user (--transfer-tasks)",
        "held_out": [{"task": h.task.name, "kind": h.task.kind, "source": h.source, "n_train_pool": len(h.pool_rows),
                      "n_test": len(h.test_rows)} for h in held],
        "trained_on": [t.name for t in run.tasks if t.name not in {x.name for x in tasks}],
        "seeds": list(config.transfer_seeds),
        "fractions": sorted(config.fractions),
        "end_to_end_fractions": sorted(e2e_fractions),
        "new_task_features": run.config.embed.new_task_features,
        "dims": {m: int(x.shape[1]) for m, x in features.items()},
        "effective_rank": {m: mean_interval(v) for m, v in ranks.items()},
        "epoch_budget": budget,
        "retrained": retrained,
        "rows": rows,
        **summary,
        "targets": targets(summary),
        "probe": probe.__dict__,
    }


def transfer_verdicts(t: dict[str, Any]) -> list[str]:
    """Does the product's embedding for new tasks carry over better than ImageNet transfer (the paper's
    claim, generalised to several held-out tasks)?"""
    overall = {r["method"]: r for r in t["overall"]}
    if "product" not in overall or "imagenet" not in overall:
        return []
    p, i = overall["product"], overall["imagenet"]
    target = t["targets"]
    gaps = ", ".join(f"{100 * f:.0f}% {g:+.3f}" for f, g in sorted(target["gap_per_fraction"].items()))
    claim = "agrees with" if target["beats_on_mean"] else "does not agree with"
    out = [f"Tasks never trained on ({len(t['held_out'])} held out, {len(t['seeds'])} seeds): the product's embedding "
           f"scores {p['mean']:.3f} on the mean over tasks and fractions, {METHODS['imagenet']} {i['mean']:.3f}; this "
           f"{claim} the paper's claim that MTL embeddings carry over better than ImageNet features."]
    out.append(f"Product minus ImageNet transfer by fraction: {gaps}; "
               + ("it at least matches at every fraction." if target["matches_at_every_fraction"]
                  else "it falls short at some fraction."))
    if "end_to_end" in {r["method"] for r in t["per_fraction"]}:
        e2e = {r["fraction"]: r["mean"] for r in t["per_fraction"] if r["method"] == "end_to_end"}
        prod = {r["fraction"]: r["mean"] for r in t["per_fraction"] if r["method"] == "product"}
        out.append("End-to-end model vs the product's embedding: " + ", ".join(
            f"{100 * f:.0f}% {e2e[f]:.3f} vs {prod[f]:.3f}" for f in sorted(e2e) if f in prod) + ".")
    return out


def _ci(d: dict[str, float]) -> str:
    """A mean over seeds with its 95% interval."""
    if not is_finite(d.get("low")):
        return fmt(d["mean"])
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def transfer_markdown(t: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    held = ", ".join(f"`{h['task']}` ({h['kind']}, {h['source']}, {h['n_test']} test listings)" for h in t["held_out"])
    dims = ", ".join(f"{METHODS[m]} {d}-d" for m, d in t["dims"].items())
    lines = [f"Held out: {held}. The rule: {t['rule']}. For each of the seeds {t['seeds']} the MTL model is "
             f"retrained without them on the run's training listings (at most {t['epoch_budget']} epochs) and each "
             "held-out task is probed from each embedding with the same 2-layer probe, at nested fractions of its "
             "labelled training listings; the end-to-end model trains the run's architecture on the task alone, "
             "on its attribute loss only (the run's extra objectives are weighted for a whole catalogue's tasks), "
             f"at {', '.join(f'{100 * f:.0f}%' for f in t['end_to_end_fractions']) or 'no fraction'}. Score: "
             "accuracy, or R^2 for a regression task; mean over seeds with a 95% Student-t interval over seeds. "
             f"The product's embedding for new tasks is `{t['new_task_features']}`. Dimensions: {dims}.", ""]
    by = {(r["method"], r["fraction"]): r for r in t["per_fraction"]}
    methods = [m for m in METHODS if any(k[0] == m for k in by)]
    header = ["training data", *[METHODS[m] for m in methods]]
    rows = [[f"{100 * f:.0f}%"] + [_ci(by[m, f]) if (m, f) in by else "–" for m in methods]
            for f in sorted({f for _, f in by})]
    overall = {r["method"]: r for r in t["overall"]}
    rows.append(["mean over fractions"] + [_ci(overall[m]) if m in overall else "–" for m in methods])
    lines += ["Mean score over the held-out tasks:", ""] + table(header, rows)
    lines += [f"![Score on tasks never trained on]({FIGURE})", ""]
    per_task = {(r["method"], r["task"], r["fraction"]): r for r in t["per_task"]}
    largest = max(t["fractions"])
    task_rows = [[f"`{h['task']}` ({'R^2' if h['kind'] == 'regression' else 'accuracy'})"]
                 + [_ci(per_task[m, h["task"], largest]) if (m, h["task"], largest) in per_task else "–"
                    for m in methods] for h in t["held_out"]]
    lines += [f"Per task at {100 * largest:.0f}% of the labels:", ""] + table(["task", *header[1:]], task_rows)
    ranks = [[METHODS[m], fmt(r["mean"], 1)] for m, r in t["effective_rank"].items()]
    lines += ["Effective rank (participation ratio of the listing embeddings, mean over seeds):", ""]
    lines += table(["embedding", "participation ratio"], ranks)
    return [lines + bullets(verdicts)]


def transfer_figure(t: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    fig, ax = subplots(figsize=(6.4, 4.2))
    for method, label in METHODS.items():
        rows = sorted((r for r in t["per_fraction"] if r["method"] == method), key=lambda r: r["fraction"])
        if not rows:
            continue
        x = [100 * r["fraction"] for r in rows]
        y = np.array([r["mean"] for r in rows])
        err = np.array([[finite_or_nan(r["mean"] - r["low"]) for r in rows],
                        [finite_or_nan(r["high"] - r["mean"]) for r in rows]])
        ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label, color=COLOURS[method])
    ax.set_xlabel("labelled training listings used (%)")
    ax.set_ylabel("mean score over held-out tasks")
    ax.set_title(f"Tasks never trained on: mean over {len(t['held_out'])} tasks, {len(t['seeds'])} seeds (95% CI)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return {"transfer": save_figure(fig, out_dir / FIGURE)}


def transfer_plan(config: EvaluationConfig, n_holdout_columns: int) -> str:
    n_tasks = (n_holdout_columns + config.transfer_binary + 2 if config.transfer_tasks is None else
               n_holdout_columns + len(config.transfer_tasks))
    per_seed = 1 + n_tasks * len(config.transfer_end_to_end_fractions)
    return (f"leave tasks out: {len(config.transfer_seeds)} seeds x ({per_seed} models, probes at "
            f"{len(config.fractions)} fractions)")


SECTION = Section(name="transfer", titles=("Leave tasks out: tasks the embedding never saw",), run=evaluate_transfer,
                  verdicts=transfer_verdicts, markdown=transfer_markdown, figures=transfer_figure,
                  figure_files=(FIGURE,), plan=transfer_plan)
