"""The visual-search sections of the evaluation: an ablation arm scored, the ablation's results read,
checked and compared the way the report says, the sentences following the numbers, and the benchmark
that trains the arms running as a plain script."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gallery_core.artifacts.run import open_run
from gallery_core.data.catalogue import load_catalogue
from gallery_core.evaluation import EvaluationConfig, evaluate
from gallery_core.evaluation.metrics import split_galleries
from gallery_core.evaluation.objective_ablation import (
    ABLATION_FILE,
    ablation_queries,
    evaluate_arm,
    paired_differences,
)
from gallery_core.evaluation.robustness import query_photo_rows
from gallery_core.evaluation.sections.ablation import ablation_tables, ablation_verdicts
from gallery_core.evaluation.sections.robustness import robustness_verdicts

CONDITIONS = ("clean", "jpeg", "crop", "scribble", "watermark")


def _conditions(recall_at_10: dict[str, float]) -> dict:
    out = {}
    for name, recall in recall_at_10.items():
        out[name] = {"recall_at_1": recall / 2, "recall_at_10": recall, "mean_attribute_precision_at_10": 0.4}
        if name != "clean":
            out[name]["photo_search"] = {"photo_recall_at_1": 0.5, "listing_hit_at_10": 0.6}
    return out


def _arm(correct: list[int], ranks: list[int]) -> dict:
    return {"epochs_run": 3, "best_epoch": 2, "train_seconds": 10.0,
            "holdout": {"accuracy": float(np.mean(correct)), "ci_low": 0.0, "ci_high": 1.0, "correct": correct,
                        "query_half": {"n_test": len(correct), **{c: 0.5 for c in CONDITIONS}}},
            "clean_all_listings": {"recall_at_1": float(np.mean(np.array(ranks) <= 1)),
                                   "recall_at_10": float(np.mean(np.array(ranks) <= 10)),
                                   "mean_attribute_precision_at_10": 0.4, "ranks": ranks},
            "robustness": {"conditions": _conditions({c: 0.3 for c in CONDITIONS})}}


def _ablation(fingerprint: str) -> dict:
    # 10 test listings. attributes: 5 right, completion hits (rank <= 10) on 4 of 10.
    # + vae: the same 5 right plus 2 more; hits on the same 4 plus 2 more.
    base = _arm([1] * 5 + [0] * 5, [1, 2, 3, 4, 50, 60, 70, 80, 90, 99])
    vae = _arm([1] * 7 + [0] * 3, [1, 2, 3, 4, 5, 6, 70, 80, 90, 99])
    setup = {"catalogue_fingerprint": fingerprint, "k": 10, "holdout_column": "star_rating",
             "holdout_majority_accuracy": 0.4, "corruptions": list(CONDITIONS[1:]), "n_queries": 10,
             "backbone": "efficientnet_lite0", "trainable_stages": 0, "lr": 1e-3, "max_epochs": 3, "seed": 0,
             "triplet_weight": 10.0, "level_edges": [0.7, 0.55, 0.4], "vae_weight": 30.0, "vae_image_size": 32,
             "n_val": 10, "n_listings": 40}
    return {"arms": {"attributes": base, "attributes+vae": vae}, "setup": setup, "timings": {"total_s": 60.0}}


def test_paired_differences_against_attributes_only():
    data = _ablation("x")
    diff = paired_differences(data["arms"], k=10)["attributes+vae"]
    assert diff["holdout_accuracy"]["difference"] == pytest.approx(0.2)
    assert diff["completion_recall_at_10"]["difference"] == pytest.approx(0.2)
    # Every resampled difference is >= 0 (the arm is never worse on any item), so the interval is too.
    assert diff["completion_recall_at_10"]["low"] >= 0


def test_ablation_tables_show_every_arm_and_condition():
    data = _ablation("x")
    text = "\n".join(ablation_tables(data["arms"], data["setup"], paired_differences(data["arms"], 10)))
    assert "| attributes+vae | +0.200 [" in text
    for condition in CONDITIONS:
        assert condition in text


def test_the_ablation_section_reads_results_for_this_catalogue_only(run_copy, tmp_path):
    config = EvaluationConfig(skip=("holdout", "transfer", "task_folds", "quality", "retrieval", "robustness", "audit"))
    fingerprint = open_run(run_copy).manifest["catalogue"]["fingerprint"]
    folder = run_copy / "evaluation"
    folder.mkdir(exist_ok=True)

    (folder / ABLATION_FILE).write_text(json.dumps(_ablation("another catalogue")))
    section = evaluate(run_copy, config, progress=False).report["sections"]["ablation"]
    assert "another catalogue" in section["skipped"]

    (folder / ABLATION_FILE).write_text(json.dumps(_ablation(fingerprint)))
    result = evaluate(run_copy, config, progress=False)
    section = result.report["sections"]["ablation"]
    assert result.failed == []
    assert section["paired"]["attributes+vae"]["holdout_accuracy"]["difference"] == pytest.approx(0.2)
    assert "ranks" not in json.dumps(section["arms"])  # per-item arrays stay in the ablation's own file
    markdown = result.markdown_path.read_text()
    assert "## 8. Visual-search objectives" in markdown and "| attributes+vae |" in markdown

    (folder / ABLATION_FILE).write_text("{not json")
    result = evaluate(run_copy, config, progress=False)
    assert result.failed == ["ablation"] and ABLATION_FILE in result.report["sections"]["ablation"]["error"]


def test_ablation_verdict_follows_the_numbers():
    data = _ablation("x")
    arms = {"attributes": data["arms"]["attributes"], "attributes+triplet+vae": data["arms"]["attributes+vae"]}
    section = {"setup": data["setup"], "arms": arms, "paired": paired_differences(arms, 10)}
    assert "agrees with the reseller paper" in ablation_verdicts(section)[0]
    arms["attributes+triplet+vae"] = arms["attributes"]
    section["paired"] = paired_differences(arms, 10)
    assert "does not agree with" in ablation_verdicts(section)[0]


def test_robustness_verdict_names_the_worst_corruption_and_the_noise():
    section = {"k": 10, "n_queries": 400, "augmented_training": False,
               "conditions": _conditions({"clean": 0.30, "jpeg": 0.29, "crop": 0.28, "scribble": 0.15,
                                          "watermark": 0.27})}
    verdict = robustness_verdicts(section)[0]
    assert "worst is scribble (+0.150 below clean)" in verdict
    assert "scribble cost more than the test set's noise" in verdict and "jpeg," not in verdict
    assert "trained without" in verdict


def test_an_arm_is_scored_by_the_evaluations_protocol(tiny_catalogue):
    # A fake arm whose photo embedding is its listing's one-hot vector plus a little noise: every gallery
    # completes itself first, and "corrupted" query photos identical to the clean ones change nothing.
    catalogue = load_catalogue(tiny_catalogue)
    n = len(catalogue.listings)
    listing_index = np.repeat(np.arange(n), catalogue.gallery_sizes())
    features = (np.eye(n)[listing_index] + np.random.default_rng(0).normal(scale=0.01, size=(len(listing_index), n)))
    model = types.SimpleNamespace(encoder=types.SimpleNamespace(embed_photos=lambda x, from_trunk: x))
    in_query = split_galleries(listing_index, n, seed=0)
    is_val = np.arange(n) % 4 == 0
    queries, n_val = ablation_queries(listing_index, in_query, is_val, 12, seed=0)
    assert len(queries) == 12 and n_val == is_val.sum() and is_val[queries].sum() == n_val  # validation first
    rows = query_photo_rows(listing_index, in_query, queries)
    checkpoint = {"val_listing_ids": catalogue.listings["listing_id"][is_val].tolist(),
                  "config": {"model": {"head_hidden": 8}}}
    torch.manual_seed(0)
    arm = evaluate_arm(model, checkpoint, catalogue, features.astype(np.float32), {"same": features[rows]},
                       listing_index, in_query, queries, ["city"], catalogue.holdout[0], 5, seed=0)
    assert arm["clean_all_listings"]["recall_at_1"] == 1.0 and set(arm["clean_all_listings"]["ranks"]) == {1}
    conditions = arm["robustness"]["conditions"]
    assert conditions["same"]["recall_at_5"] == conditions["clean"]["recall_at_5"] == 1.0
    assert arm["holdout"]["query_half"]["same"] == arm["holdout"]["query_half"]["clean"]
    assert len(arm["holdout"]["correct"]) == arm["holdout"]["n_test"] > 0
    assert arm["holdout"]["ci_low"] <= arm["holdout"]["accuracy"] <= arm["holdout"]["ci_high"]


def test_the_ablation_benchmark_runs_as_a_plain_script(tmp_path):
    # No sys.path edits: the installed package is found from any folder.
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "ablation_visual_search.py"
    out = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "--arms" in out and "attributes+triplet+vae" in out
