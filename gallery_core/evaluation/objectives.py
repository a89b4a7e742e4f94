"""Visual-search sections of the evaluation (the reseller paper): robustness of the run's own model to
corrupted query photos, and the ablation of the training objectives.

- ``robustness``: gallery completion and attribute precision with the query halves clean, then JPEG
  re-compressed, cropped, scribbled and watermarked (``gallery_core.evaluation.robustness``), on validation listings.
- ``ablation``: four models that differ only in their objectives (attributes; + triplet; + VAE; all
  three). Training them is a job of its own (``benchmarks/ablation_visual_search.py``, which writes
  ``visual_search_ablation.json`` into the run's evaluation folder); this section reads its results,
  checks they were made on the run's catalogue, and reports them with paired differences.

Their tables are rendered by ``report.ablation_tables`` / ``report.robustness_table`` (the benchmark's own
page uses the same).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gallery_core.errors import UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import paired_bootstrap_difference
from gallery_core.evaluation.robustness import evaluate_run_robustness

logger = logging.getLogger(__name__)

ABLATION_FILE = "visual_search_ablation.json"
ABLATION_COMMAND = "python benchmarks/ablation_visual_search.py --run {run}"
PER_ITEM_KEYS = ("correct", "ranks")  # per test item, for the paired differences; left out of report.json


def evaluate_robustness(ctx: Context, config: EvaluationConfig) -> dict[str, Any]:
    run = ctx.run
    if config.robustness_queries == 0:
        return {"skipped": "robustness_queries is 0"}
    logger.info(f"[robustness] {config.robustness_queries} validation listings, query photos corrupted 4 ways")
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
