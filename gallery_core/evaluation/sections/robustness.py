"""Robustness to corrupted query photos (report section 6, the reseller paper): the run's own model on
validation listings, gallery completion and attribute precision with the query halves clean, then JPEG
re-compressed, cropped, scribbled and watermarked. The measures are ``gallery_core.evaluation.robustness``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.report import bullets, fmt, table
from gallery_core.evaluation.robustness import evaluate_run_robustness
from gallery_core.evaluation.sections.base import Section

logger = logging.getLogger(__name__)


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


def robustness_verdicts(r: dict[str, Any]) -> list[str]:
    """The reseller paper names compressed, cropped and scribbled photos as its domain's challenge (no
    figures): how much of the clean recall each corruption costs this run's model."""
    k, n = r["k"], r["n_queries"]
    cond = r["conditions"]
    clean = cond["clean"][f"recall_at_{k}"]
    noise = 1.96 * math.sqrt(max(clean * (1 - clean), 1e-12) / n)  # binomial 95% half-width of the clean recall
    recalls = {c: v[f"recall_at_{k}"] for c, v in cond.items() if c != "clean"}
    drops = {c: clean - v for c, v in recalls.items()}
    beyond = [c for c, d in drops.items() if abs(d) > noise]
    trained = "trained with" if r.get("augmented_training") else "trained without"
    worst = max(drops, key=drops.get)
    return [f"Robustness ({trained} corruption augmentation): gallery-completion recall@{k} {clean:.3f} with clean "
            f"query photos; {', '.join(f'{c} {v:.3f}' for c, v in recalls.items())} ({n} validation "
            f"listings). The worst is {worst} ({drops[worst]:+.3f} below clean); "
            + (f"{', '.join(beyond)} cost more than the test set's noise (+-{noise:.3f})" if beyond else
               f"no corruption costs more than the test set's noise (+-{noise:.3f})")
            + ". The reseller paper names these corruptions as its domain's challenge, without figures to compare."]


def robustness_table(result: dict[str, Any]) -> list[str]:
    """Clean against each corruption for one model (``robustness.evaluate_run_robustness`` plus its ``k``;
    also on the ablation benchmark's own page)."""
    k, cond = result["k"], result["conditions"]
    corrupted = [c for c in cond if c != "clean"]
    rows = [["completion recall@1", *(fmt(cond[c]["recall_at_1"]) for c in cond)],
            [f"completion recall@{k}", *(fmt(cond[c][f"recall_at_{k}"]) for c in cond)],
            [f"attribute precision@{k}", *(fmt(cond[c][f"mean_attribute_precision_at_{k}"]) for c in cond)],
            ["photo search recall@1", "-", *(fmt(cond[c]["photo_search"]["photo_recall_at_1"]) for c in corrupted)],
            [f"photo search listing hit@{k}", "-",
             *(fmt(cond[c]["photo_search"][f"listing_hit_at_{k}"]) for c in corrupted)]]
    return table(["measure", *cond], rows)


def robustness_markdown(r: dict[str, Any], verdicts: list[str]) -> list[list[str]]:
    lines = [f"This run's model on {r['n_queries']} validation listings ({r['n_query_photos']} query photos): the "
             "gallery-completion protocol of section 4 with the query half clean, then each photo of it JPEG "
             "re-compressed (quality 10-30), cropped, scribbled or watermarked (`gallery_core.data.corruptions`, "
             "seeded); the catalogue's photos stay clean. Photo search: each corrupted photo searched among all "
             "clean photos.", ""]
    return [lines + robustness_table(r) + bullets(verdicts)]


SECTION = Section(name="robustness", titles=("Robustness to corrupted query photos (the reseller paper)",),
                  run=evaluate_robustness, verdicts=robustness_verdicts, markdown=robustness_markdown)
