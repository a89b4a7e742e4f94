"""The visual-search objectives' ablation (report section 7, the reseller paper).

Training the four arms is a job of its own (``benchmarks/ablation_visual_search.py``, scored by
``gallery_core.evaluation.objective_ablation``), which writes ``visual_search_ablation.json`` into the
run's evaluation folder; this section reads its results, checks they were made on the run's catalogue,
and reports them with paired differences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gallery_core.errors import UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.objective_ablation import ABLATION_FILE, paired_differences
from gallery_core.evaluation.papers import RESELLER_ALL_OBJECTIVES_GAIN
from gallery_core.evaluation.report import bullets, fmt, table
from gallery_core.evaluation.sections.base import Section

ABLATION_COMMAND = "python benchmarks/ablation_visual_search.py --run {run}"
PER_ITEM_KEYS = ("correct", "ranks")  # per test item, for the paired differences; left out of report.json


def _without_per_item(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_per_item(v) for key, v in value.items() if key not in PER_ITEM_KEYS}
    return value


def evaluate_ablation(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    path = Path(config.ablation_path) if config.ablation_path else ctx.report_dir / ABLATION_FILE
    command = ABLATION_COMMAND.format(run=ctx.run.root)
    if not path.is_file():
        return {"skipped": f"no ablation results at {path}: run `{command}` (it trains four models) and "
                           "evaluate again", "source": str(path), "command": command}
    try:
        data = json.loads(path.read_text())
        arms, setup = data["arms"], data["setup"]
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"{path}: not an ablation result ({type(err).__name__}: {err})") from None
    if not arms:
        raise UsageError(f"{path}: the ablation has no arms")
    run_fingerprint = ctx.run.manifest["catalogue"]["fingerprint"]
    ablation_fingerprint = setup.get("catalogue_fingerprint")
    if ablation_fingerprint != run_fingerprint:
        return {"skipped": f"{path} was made on another catalogue (fingerprint {ablation_fingerprint}, the run's is "
                           f"{run_fingerprint}): run `{command}` again", "source": str(path), "command": command}
    k = setup["k"]
    return {"source": str(path), "command": command, "setup": setup, "timings": data.get("timings", {}),
            "paired": paired_differences(arms, k), "arms": _without_per_item(arms)}


def ablation_verdicts(a: dict[str, Any]) -> list[str]:
    """The reseller paper: the model with all three objectives gains 4% over the best single task; here
    attributes-only is the single-task arm and each objective is added to it."""
    k = a["setup"]["k"]
    key = f"recall_at_{k}"
    recall = {name: arm["clean_all_listings"][key] for name, arm in a["arms"].items()}
    out = []
    for name, diff in a["paired"].items():
        d = diff[f"completion_recall_at_{k}"]
        h = diff["holdout_accuracy"]
        sure = "beyond" if d["low"] > 0 or d["high"] < 0 else "within"
        out.append(f"Ablation, {name} against attributes only: completion recall@{k} {d['difference']:+.3f} "
                   f"[{d['low']:+.3f}, {d['high']:+.3f}] ({sure} the noise), hold-out accuracy "
                   f"{h['difference']:+.3f} [{h['low']:+.3f}, {h['high']:+.3f}].")
    all_three = [name for name in recall if name.count("+") == 2]
    if all_three:
        best_other = max((n for n in recall if n != all_three[0]), key=recall.get)
        gain = recall[all_three[0]] / recall[best_other] - 1 if recall[best_other] else float("nan")
        agrees = "agrees with" if gain > 0 else "does not agree with"
        out.insert(0, f"Ablation: all three objectives give completion recall@{k} {recall[all_three[0]]:.3f}, "
                      f"{100 * gain:+.1f}% relative to the best other arm ({best_other}, {recall[best_other]:.3f}); "
                      f"this {agrees} the reseller paper's {RESELLER_ALL_OBJECTIVES_GAIN:+.0%} over its best single "
                      "task (paired intervals below say whether the gap is beyond the noise). Its single- against "
                      "multi-attribute triplet mining comparison is not repeated here.")
    return out


def _interval(d: dict[str, float]) -> str:
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def ablation_tables(arms: dict[str, Any], setup: dict[str, Any], paired: dict[str, Any],
                    heading: str = "##") -> list[str]:
    """The ablation's tables (also the benchmark's own page): hold-out and clean retrieval over all
    listings, paired differences against the first arm, then clean against corrupted query photos."""
    k, column = setup["k"], setup["holdout_column"]
    lines = [f"{heading} Hold-out accuracy and clean retrieval (all listings)", ""]
    lines += table(["arm", f"{column} accuracy [95% CI]", "completion recall@1", f"recall@{k}",
                    f"attribute precision@{k}", "epochs (best)", "train s (epochs)"],
                   [[name, f"{fmt(a['holdout']['accuracy'])} [{fmt(a['holdout']['ci_low'])}, "
                           f"{fmt(a['holdout']['ci_high'])}]",
                     fmt(a["clean_all_listings"]["recall_at_1"]), fmt(a["clean_all_listings"][f"recall_at_{k}"]),
                     fmt(a["clean_all_listings"][f"mean_attribute_precision_at_{k}"]),
                     f"{a['epochs_run']} ({a['best_epoch']})", f"{a['train_seconds']:.0f}"]
                    for name, a in arms.items()])
    lines += [f"Paired differences against `{next(iter(arms))}` (same test items; 95% bootstrap interval):", ""]
    lines += table(["arm", f"{column} accuracy", f"completion recall@{k} (all listings)"],
                   [[name, _interval(d["holdout_accuracy"]), _interval(d[f"completion_recall_at_{k}"])]
                    for name, d in paired.items()])
    lines += [f"Majority-class accuracy of `{column}` on the same test listings: "
              f"{fmt(setup['holdout_majority_accuracy'])}.", ""]

    conditions = ["clean", *setup["corruptions"]]
    n_half = next(iter(arms.values()))["holdout"]["query_half"]["n_test"]
    lines += [f"{heading} Clean vs corrupted query photos", "",
              f"`{column}` accuracy of the same probe on the query half of the {n_half} labelled validation "
              "listings among the queries (half a gallery, so below the full-gallery accuracy above):", ""]
    lines += table(["arm", *conditions], [[name, *(fmt(a["holdout"]["query_half"][c]) for c in conditions)]
                                          for name, a in arms.items()])
    for title, key in ((f"Gallery-completion recall@{k} ({setup['n_queries']} query listings):", f"recall_at_{k}"),
                       (f"Attribute precision@{k} of the same queries (mean over attributes):",
                        f"mean_attribute_precision_at_{k}")):
        lines += [title, ""]
        lines += table(["arm", *conditions], [[name, *(fmt(a["robustness"]["conditions"][c][key])
                                                       for c in conditions)] for name, a in arms.items()])
    corrupted = setup["corruptions"]
    lines += ["Single-photo search with a corrupted catalogue photo: its clean original found first "
              f"(recall@1) / its listing among the top {k} listings:", ""]
    search = {name: a["robustness"]["conditions"] for name, a in arms.items()}
    return lines + table(["arm", *corrupted], [
        [name, *(f"{fmt(cond[c]['photo_search']['photo_recall_at_1'])} / "
                 f"{fmt(cond[c]['photo_search'][f'listing_hit_at_{k}'])}" for c in corrupted)]
        for name, cond in search.items()])


def ablation_markdown(a: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    s, t = a["setup"], a.get("timings", {})
    lines = [f"Four models that differ only in their objectives, trained by `{a['command']}` on this run's catalogue "
             f"(results read from `{Path(a['source']).name}`; its page has the setup in full): the backbone "
             f"`{s['backbone']}` frozen entirely (`trainable_stages={s['trainable_stages']}`, unlike the run), lr "
             f"{s['lr']}, at most {s['max_epochs']} epochs, seed {s['seed']}; triplet weight {s['triplet_weight']} "
             f"(levels {s['level_edges']} of shared attributes), VAE weight {s['vae_weight']} "
             f"({s['vae_image_size']} px). Hold-out `{s['holdout_column']}` by the evaluation's probe on each arm's "
             f"embeddings ({s['n_val']} validation listings); retrieval over all {s['n_listings']} listings; "
             f"corrupted queries on {s['n_queries']} listings. Training took "
             f"{sum(arm['train_seconds'] for arm in a['arms'].values()) / 60:.0f} min for the four arms"
             + (f" (the whole job {t['total_s'] / 60:.0f} min)." if "total_s" in t else "."), ""]
    return [lines + ablation_tables(a["arms"], s, a["paired"], heading="###") + bullets(verdicts)]


SECTION = Section(name="ablation", titles=("Visual-search objectives: ablation (the reseller paper)",),
                  run=evaluate_ablation, verdicts=ablation_verdicts, markdown=ablation_markdown)
