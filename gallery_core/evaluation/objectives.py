"""Visual-search sections of the evaluation (the reseller paper): robustness of the run's own model to
corrupted query photos, and the ablation of the training objectives.

- ``robustness``: gallery completion and attribute precision with the query halves clean, then JPEG
  re-compressed, cropped, scribbled and watermarked (``gallery_core.robustness``), on validation listings.
- ``ablation``: four models that differ only in their objectives (attributes; + triplet; + VAE; all
  three). Training them is a job of its own (``benchmarks/ablation_visual_search.py``, which writes
  ``visual_search_ablation.json`` into the run's evaluation folder); this section reads its results,
  checks they were made on the run's catalogue, and reports them with paired differences.

``ablation_tables`` renders the ablation's tables for both the benchmark's own page and this report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import paired_bootstrap_difference
from gallery_core.robustness import evaluate_run_robustness

ABLATION_FILE = "visual_search_ablation.json"
ABLATION_COMMAND = "python benchmarks/ablation_visual_search.py --run {run}"
PER_ITEM_KEYS = ("correct", "ranks")  # per test item, for the paired differences; left out of report.json


def evaluate_robustness(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    if config.robustness_queries == 0:
        return {"skipped": "robustness_queries is 0"}
    ctx.log(f"[robustness] {config.robustness_queries} validation listings, query photos corrupted 4 ways")
    result = evaluate_run_robustness(run, n_queries=config.robustness_queries, seed=config.seed, split="val",
                                     ks=(1, config.precision_k), precision_k=config.precision_k)
    if result["n_queries"] == 0:
        return {"skipped": "no validation listing has 2 or more photos"}
    result["k"] = config.precision_k
    result["augmented_training"] = bool(run.config.train.augment)
    return result


def paired_differences(arms: dict[str, Any], k: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each arm against the first (attributes only) on the same test items: hold-out accuracy and
    gallery-completion hit@k over all listings, with 95% paired bootstrap intervals."""
    names = list(arms)
    base = arms[names[0]]
    out = {}
    for name in names[1:]:
        arm = arms[name]
        out[name] = {
            "holdout_accuracy": paired_bootstrap_difference(np.array(arm["holdout"]["correct"]),
                                                            np.array(base["holdout"]["correct"])),
            f"completion_recall_at_{k}": paired_bootstrap_difference(
                np.array(arm["clean_all_listings"]["ranks"]) <= k,
                np.array(base["clean_all_listings"]["ranks"]) <= k)}
    return out


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
        raise ValueError(f"{path}: not an ablation result ({type(err).__name__}: {err})") from None
    if not arms:
        raise ValueError(f"{path}: the ablation has no arms")
    run_fingerprint = ctx.run.manifest["catalogue"]["fingerprint"]
    ablation_fingerprint = setup.get("catalogue_fingerprint")
    if ablation_fingerprint != run_fingerprint:
        return {"skipped": f"{path} was made on another catalogue (fingerprint {ablation_fingerprint}, the run's is "
                           f"{run_fingerprint}): run `{command}` again", "source": str(path), "command": command}
    k = setup["k"]
    return {"source": str(path), "command": command, "setup": setup, "timings": data.get("timings", {}),
            "paired": paired_differences(arms, k), "arms": _without_per_item(arms)}


# --- Markdown, shared with benchmarks/ablation_visual_search.py ---


def _f(x: float) -> str:
    return f"{x:.3f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: list[str]) -> list[str]:
    return [_row(cells), "|" + "---|" * len(cells)]


def ablation_tables(arms: dict[str, Any], setup: dict[str, Any], paired: dict[str, Any],
                    heading: str = "##") -> list[str]:
    """The ablation's tables: hold-out and clean retrieval over all listings, paired differences against
    attributes only, then clean against corrupted query photos."""
    k, column = setup["k"], setup["holdout_column"]
    lines = [f"{heading} Hold-out accuracy and clean retrieval (all listings)", "",
             *_header(["arm", f"{column} accuracy [95% CI]", "completion recall@1", f"recall@{k}",
                       f"attribute precision@{k}", "epochs (best)", "train s (epochs)"])]
    for name, arm in arms.items():
        h, c = arm["holdout"], arm["clean_all_listings"]
        lines.append(_row([name, f"{_f(h['accuracy'])} [{_f(h['ci_low'])}, {_f(h['ci_high'])}]",
                           _f(c["recall_at_1"]), _f(c[f"recall_at_{k}"]), _f(c[f"mean_attribute_precision_at_{k}"]),
                           f"{arm['epochs_run']} ({arm['best_epoch']})", f"{arm['train_seconds']:.0f}"]))
    base_name = next(iter(arms))
    lines += ["", f"Paired differences against `{base_name}` (same test items; 95% bootstrap interval):", "",
              *_header(["arm", f"{column} accuracy", f"completion recall@{k} (all listings)"])]
    for name, diff in paired.items():
        cells = [diff["holdout_accuracy"], diff[f"completion_recall_at_{k}"]]
        lines.append(_row([name, *(f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" for d in cells)]))
    lines += ["", f"Majority-class accuracy of `{column}` on the same test listings: "
                  f"{_f(setup['holdout_majority_accuracy'])}.", ""]

    conditions = ["clean", *setup["corruptions"]]
    n_half = next(iter(arms.values()))["holdout"]["query_half"]["n_test"]
    lines += [f"{heading} Clean vs corrupted query photos", "",
              f"`{column}` accuracy of the same probe on the query half of the {n_half} labelled validation "
              "listings among the queries (half a gallery, so below the full-gallery accuracy above):", "",
              *_header(["arm", *conditions])]
    lines += [_row([name, *(_f(arm["holdout"]["query_half"][c]) for c in conditions)]) for name, arm in arms.items()]
    for title, key in ((f"Gallery-completion recall@{k} ({setup['n_queries']} query listings):", f"recall_at_{k}"),
                       (f"Attribute precision@{k} of the same queries (mean over attributes):",
                        f"mean_attribute_precision_at_{k}")):
        lines += ["", title, "", *_header(["arm", *conditions])]
        lines += [_row([name, *(_f(arm["robustness"]["conditions"][c][key]) for c in conditions)])
                  for name, arm in arms.items()]
    corrupted = setup["corruptions"]
    lines += ["", "Single-photo search with a corrupted catalogue photo: its clean original found first "
                  f"(recall@1) / its listing among the top {k} listings:", "", *_header(["arm", *corrupted])]
    for name, arm in arms.items():
        cond = arm["robustness"]["conditions"]
        lines.append(_row([name, *(f"{_f(cond[c]['photo_search']['photo_recall_at_1'])} / "
                                   f"{_f(cond[c]['photo_search'][f'listing_hit_at_{k}'])}" for c in corrupted)]))
    return lines + [""]


def robustness_table(result: dict[str, Any]) -> list[str]:
    """Clean against each corruption, for one model (``evaluate_run_robustness``'s result)."""
    k = result["k"]
    conditions = list(result["conditions"])
    cond = result["conditions"]
    corrupted = [c for c in conditions if c != "clean"]
    return [*_header(["measure", *conditions]),
            _row(["completion recall@1", *(_f(cond[c]["recall_at_1"]) for c in conditions)]),
            _row([f"completion recall@{k}", *(_f(cond[c][f"recall_at_{k}"]) for c in conditions)]),
            _row([f"attribute precision@{k}", *(_f(cond[c][f"mean_attribute_precision_at_{k}"])
                                                 for c in conditions)]),
            _row(["photo search recall@1", "-", *(_f(cond[c]["photo_search"]["photo_recall_at_1"])
                                                  for c in corrupted)]),
            _row([f"photo search listing hit@{k}", "-",
                  *(_f(cond[c]["photo_search"][f"listing_hit_at_{k}"]) for c in corrupted)]), ""]
