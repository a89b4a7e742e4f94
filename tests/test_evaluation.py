"""``evaluate`` end to end on the tiny run (a minimal configuration), its CLI, and its generated verdicts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from gallery_core.app.report_view import load_evaluation_report
from gallery_core.artifacts.run import open_run
from gallery_core.cli import main
from gallery_core.evaluation import EvaluationConfig, evaluate
from gallery_core.evaluation.cli import add_parser, config_from_args
from gallery_core.evaluation.config import ProbeConfig
from gallery_core.evaluation.sections.holdout import holdout_verdicts
from gallery_core.evaluation.sections.quality import quality_verdicts


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def test_smoke_evaluate_on_the_tiny_run(tiny_run, tmp_path):
    # Minimal: 2 fractions, 3 single-task models, 1 epoch each; about 20 s on 2 free cores (no time limit
    # asserted: the machine is shared and its timings are noisy).
    config = EvaluationConfig(fractions=(0.5, 1.0), single_task_tasks=("balcony", "kitchen", "pool"), epochs=1,
                              ann_queries=20, probe=ProbeConfig(max_epochs=10, patience=3), transfer_seeds=(0, 1),
                              transfer_end_to_end_fractions=(1.0,), transfer_folds=2, fold_fractions=(1.0,))
    result = evaluate(tiny_run, config, out_dir=tmp_path / "evaluation", progress=False,
                      copy_to=tmp_path / "docs")
    assert result.failed == []
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"holdout", "transfer", "task_folds", "quality", "retrieval", "robustness", "ablation",
                             "audit"}
    folds = sections["task_folds"]
    assert len(folds["folds"]) == 2 and len(folds["models"]) == 4  # 2 seeds x 2 folds
    assert set(folds["targets"]) == {"mlp", "linear"}

    transfer = sections["transfer"]
    held = [h["task"] for h in transfer["held_out"]]
    assert held[0] == "star_rating" and len(held) >= 4  # the hold-out column, then the rule's training tasks
    assert not set(held) & set(transfer["trained_on"])
    assert {r["seed"] for r in transfer["rows"]} == {0, 1}
    assert {(r["method"], r["fraction"]) for r in transfer["per_fraction"]} == {
        *((m, f) for m in ("product", "learned", "imagenet", "imagenet_pca") for f in (0.5, 1.0)), ("end_to_end", 1.0)}
    assert all(r["low"] <= r["mean"] <= r["high"] for r in transfer["per_fraction"])
    assert transfer["dims"]["product"] == 1280 + 16
    assert all(r["mean"] >= 1 for r in transfer["effective_rank"].values())

    holdout = sections["holdout"]
    assert holdout["column"] == "star_rating"
    assert {(r["method"], r["fraction"]) for r in holdout["rows"]} == {
        (m, f) for m in ("mtl", "imagenet", "end_to_end") for f in (0.5, 1.0)}
    assert all(0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1 for r in holdout["rows"])

    quality = sections["quality"]
    assert quality["weightings"] == ["pseudo_uniform", "uncertainty"]
    assert quality["reused_run_model"] is None  # a budget of 1 epoch is not the run's 2: both retrained
    compared = [r for r in quality["rows"] if "single_task" in r]
    assert sorted(r["task"] for r in compared) == ["balcony", "kitchen", "pool"]
    assert quality["class_balance_correlation"]["pseudo_uniform"]["n"] == 3

    retrieval = sections["retrieval"]
    assert 0 <= retrieval["gallery_completion"]["mtl"]["top1"] <= retrieval["gallery_completion"]["mtl"]["top10"]
    # queried: the validation listings alone (the retrieval whitening was learned from the training ones)
    n_val = int(((run_listings := open_run(tiny_run).listings)["split"] == "val").sum())
    assert retrieval["gallery_completion"]["queries"] == "validation listings"
    assert retrieval["gallery_completion"]["n_queries"] <= n_val < len(run_listings)
    assert retrieval["gallery_completion"]["n_candidates"] == len(run_listings)
    assert 0 <= retrieval["ann"]["recall"] <= 1

    # The audit counts every known flip of a binary task (the tiny catalogue flips a few), per task and pooled.
    run = open_run(tiny_run)
    flipped = pd.read_csv(Path(run.manifest["catalogue"]["root"]) / "truth" / "flipped_flags.csv")
    expected = int(flipped["column"].isin({t.column for t in run.tasks if t.kind == "binary"}).sum())
    audit = sections["audit"]
    assert audit["pooled"]["n_flipped"] == sum(t["n_flipped"] for t in audit["tasks"].values()) == expected > 0
    assert audit["pooled"]["base_rate"] == pytest.approx(expected / audit["pooled"]["n_ranked"])

    robustness = sections["robustness"]
    assert list(robustness["conditions"]) == ["clean", "jpeg", "crop", "scribble", "watermark"]
    assert all(0 <= c["recall_at_1"] <= c["recall_at_10"] <= 1 for c in robustness["conditions"].values())
    # No ablation was run for this run: the section says how to make one instead of failing.
    assert "ablation_visual_search.py" in sections["ablation"]["skipped"]

    # The Markdown's figures resolve both in the run's folder and in the copy.
    for folder in (tmp_path / "evaluation", tmp_path / "docs"):
        markdown = (folder / "report.md").read_text()
        assert "## 1. Hold-out task" in markdown and "paper" in markdown
        assert "## 7. Robustness" in markdown and "## 8. Visual-search objectives" in markdown
        assert "## 2. Leave tasks out" in markdown and "## 3. Task folds" in markdown
        for name in ("holdout_accuracy.png", "transfer.png", "relative_error.png", "class_balance.png", "retrieval.png",
                     "audit.png", "task_folds.png"):
            assert f"]({name})" in markdown and (folder / name).is_file()
    assert "NaN" not in (tmp_path / "evaluation" / "report.json").read_text()  # strict JSON


def test_the_apps_loader_finds_the_report(run_copy):
    config = EvaluationConfig(skip=("holdout", "transfer", "task_folds", "quality"), ann_queries=10)
    evaluate(run_copy, config, progress=False)
    report = load_evaluation_report(run_copy)
    assert report is not None and report.json_path is not None
    assert [p.path.name for p in report.parts if p.kind == "image"] == ["retrieval.png", "audit.png"]
    assert all(p.path is not None for p in report.parts if p.kind == "image")


def test_cli_flags_make_the_config():
    args = _parse("--fractions", "0.5", "1", "--single-task-tasks", "pool", "--epochs", "2", "--skip", "audit")
    config = config_from_args(args)
    assert config.fractions == (0.5, 1.0) and config.single_task_tasks == ("pool",) and config.epochs == 2
    assert config.skip == ("audit",)
    assert config_from_args(_parse()).single_task_tasks is None  # the default spread
    assert config_from_args(_parse("--single-task-tasks")).single_task_tasks == ()  # none at all


def test_quick_is_a_short_setting_that_explicit_flags_override():
    config = config_from_args(_parse("--quick"))
    assert config.fractions == (0.2, 1.0) and config.transfer_end_to_end_fractions == ()
    assert set(config.skip) == {"holdout", "quality", "robustness", "task_folds"} and len(config.transfer_seeds) >= 3
    config = config_from_args(_parse("--quick", "--fractions", "0.5", "1", "--skip", "audit"))
    assert config.fractions == (0.5, 1.0)
    assert set(config.skip) == {"audit", "holdout", "quality", "robustness", "task_folds"}


@pytest.mark.parametrize("argv, message", [
    (["--fractions", "0"], "fractions"),
    (["--epochs", "0"], "epochs"),
    (["--audit-k", "0"], "audit_ks"),
])
def test_bad_settings_are_clear_errors(argv, message, capsys, tmp_path):
    assert main(["evaluate", "--artifacts", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_unknown_single_task_is_reported(run_copy):
    config = EvaluationConfig(skip=("holdout", "transfer", "retrieval", "audit"), single_task_tasks=("no_such_task",))
    result = evaluate(run_copy, config, progress=False)
    assert result.failed == ["quality"]
    assert "no_such_task" in result.report["sections"]["quality"]["error"]


# --- the sentences follow the numbers ---


def _holdout(acc: dict[str, float]) -> dict:
    rows = [{"method": m, "fraction": f, "accuracy": a} for m, a in acc.items() for f in (0.2, 1.0)]
    same = {"difference": 0.0, "low": -0.1, "high": 0.1}
    return {"column": "stars", "n_test": 100, "fractions": [0.2, 1.0], "rows": rows,
            "comparisons_at_largest_fraction": {"mtl_vs_end_to_end": same, "mtl_vs_imagenet": same},
            "majority_baseline": {"accuracy": 0.3}}


def test_holdout_verdict_agrees_or_disagrees_with_the_numbers():
    agree = holdout_verdicts(_holdout({"mtl": 0.6, "end_to_end": 0.55, "imagenet": 0.5}))
    assert "agrees with the paper's Table 2" in agree[0]
    differ = holdout_verdicts(_holdout({"mtl": 0.5, "end_to_end": 0.55, "imagenet": 0.6}))
    assert "differs from the paper's Table 2" in differ[0]
    assert any("does not agree" in v for v in differ)  # MTL is not best with little data


def test_quality_verdict_follows_the_correlation():
    base = {"run_weighting": "pseudo_uniform", "rows": [], "weightings": ["pseudo_uniform"], "models": {},
            "epoch_budget": 3, "pseudo_uniform_better": {"n_better": 0, "n_worse": 0, "n_tied": 0, "n_tasks": 0}}
    positive = quality_verdicts(base | {"class_balance_correlation": {
        "pseudo_uniform": {"r": 0.9, "p": 0.001, "n": 8, "paper_r": 0.78}}})
    assert any("agrees with the paper" in v for v in positive)
    negative = quality_verdicts(base | {"class_balance_correlation": {
        "pseudo_uniform": {"r": -0.4, "p": 0.3, "n": 8, "paper_r": 0.78}}})
    assert any("does not agree" in v for v in negative)


def test_threads_follow_the_idle_cores(monkeypatch):
    import gallery_core.evaluation.runner as module

    monkeypatch.setattr(module, "usable_cores", lambda: 2)
    monkeypatch.setattr(module.torch, "get_num_threads", lambda: 2)
    # A core counts as taken at a load of 3/4 of it; no load average: torch's own count.
    for busy, threads in [(0.2, 2), (0.7, 2), (0.8, 1), (1.5, 1), (6.0, 1), (None, 2)]:
        monkeypatch.setattr(module, "busy_cores", lambda busy=busy: busy)
        assert module.choose_threads() == threads, busy
    assert module.choose_threads(3) == 3
    with pytest.raises(ValueError, match="threads"):
        module.choose_threads(0)


def test_busy_and_usable_cores_come_from_the_standard_library(monkeypatch):
    import gallery_core.evaluation.runner as module

    monkeypatch.setattr(module.os, "getloadavg", lambda: (1.5, 0.5, 0.25))
    assert module.busy_cores() == 1.5  # the 1-minute load average
    monkeypatch.setattr(module.os, "getloadavg", lambda: (_ for _ in ()).throw(OSError("no load average")))
    assert module.busy_cores() is None
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert module.usable_cores() == 2  # the cores this process may use, not the machine's


def test_update_reruns_the_named_sections_into_the_report_and_keeps_the_others(run_copy):
    from gallery_core.errors import UsageError
    from gallery_core.evaluation.sections import section_names

    def only(*names: str) -> tuple[str, ...]:
        return tuple(n for n in section_names() if n not in names)

    folder = run_copy / "evaluation"
    with pytest.raises(UsageError, match="no report to update"):
        evaluate(run_copy, EvaluationConfig(skip=only("audit"), update=True), progress=False)
    evaluate(run_copy, EvaluationConfig(skip=only("retrieval", "audit"), ann_queries=10), progress=False,
             command="gallery-core evaluate --first")
    before = json.loads((folder / "report.json").read_text())
    evaluate(run_copy, EvaluationConfig(skip=only("audit"), audit_ks=(5,), update=True), progress=False,
             command="gallery-core evaluate --update audit")
    after = json.loads((folder / "report.json").read_text())
    assert after["sections"]["retrieval"] == before["sections"]["retrieval"]  # kept as it was, with its verdicts
    assert after["verdicts"]["retrieval"] == before["verdicts"]["retrieval"]
    assert after["sections"]["audit"]["ks"] == [5] and before["sections"]["audit"]["ks"] != [5]  # re-made
    assert after["command"] == "gallery-core evaluate --first"
    assert [u["sections"] for u in after["updates"]] == [["audit"]]
    assert after["updates"][0]["config"]["audit_ks"] == [5]
    markdown = (folder / "report.md").read_text()
    assert "re-made by `gallery-core evaluate --update audit`" in markdown
    assert "](retrieval.png)" in markdown and (folder / "retrieval.png").is_file()  # the kept section's figure too
    # A report of another model is refused before any section runs, and left as it was.
    after["run"]["model_checksum"] = "0" * 32
    (folder / "report.json").write_text(json.dumps(after))
    with pytest.raises(UsageError, match="model_checksum"):
        evaluate(run_copy, EvaluationConfig(skip=only("audit"), update=True), progress=False)
    assert json.loads((folder / "report.json").read_text()) == after


def test_update_on_the_command_line_runs_only_its_sections():
    from gallery_core.errors import UsageError

    config = config_from_args(_parse("--update", "transfer"))
    assert config.update and "transfer" not in config.skip and {"holdout", "task_folds", "audit"} <= set(config.skip)
    with pytest.raises(UsageError, match="--update"):
        config_from_args(_parse("--update", "transfer", "--skip", "audit"))
