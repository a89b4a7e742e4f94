"""The task-fold protocol: the fold rule, the summary's margins, and one fold's model never seeing its tasks."""

from __future__ import annotations

import numpy as np
import pytest

from gallery_core.artifacts.run import open_run
from gallery_core.data.tasks import TaskSpec
from gallery_core.evaluation.config import EvaluationConfig, ProbeConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.task_folds import fold_targets, run_task_folds, summarise_folds, task_folds


def _tasks() -> list[TaskSpec]:
    binary = [TaskSpec(f"b{i}", f"b{i}", "binary") for i in range(12)]
    multi = [TaskSpec(f"m{i}", f"m{i}", "multiclass", classes=("x", "y", "z")) for i in range(5)]
    regression = [TaskSpec(f"r{i}", f"r{i}", "regression") for i in range(4)]
    return binary + multi + regression


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_every_task_is_held_out_exactly_once_and_kinds_are_spread(k):
    tasks = _tasks()
    folds = task_folds(tasks, k, seed=0)
    names = [t.name for fold in folds for t in fold]
    assert sorted(names) == sorted(t.name for t in tasks)  # each exactly once
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for kind in ("binary", "multiclass", "regression"):
        per_fold = [sum(t.kind == kind for t in f) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1  # every kind spread over the folds


def test_the_rule_is_fixed_by_its_seed_and_independent_of_task_order():
    tasks = _tasks()
    a = [[t.name for t in f] for f in task_folds(tasks, 5, seed=0)]
    assert a == [[t.name for t in f] for f in task_folds(list(reversed(tasks)), 5, seed=0)]
    assert a != [[t.name for t in f] for f in task_folds(tasks, 5, seed=1)]


def test_impossible_fold_counts_are_refused():
    with pytest.raises(ValueError, match="k must be >= 2"):
        task_folds(_tasks(), 1)
    with pytest.raises(ValueError, match="at least 30 training tasks"):
        task_folds(_tasks(), 30)


def _row(seed, method, task, score, probe="linear", fraction=1.0, fold=0):
    return {"seed": seed, "fold": fold, "probe": probe, "method": method, "task": task, "kind": "binary",
            "source": "training task", "fraction": fraction, "n_train": 10, "score": score}


def test_margins_are_paired_per_seed_and_flag_a_task_significantly_below():
    rows = []
    for seed, noise in enumerate([0.0, 0.01, -0.01]):
        rows += [_row(seed, "imagenet", "a", 0.80 + noise), _row(seed, "product", "a", 0.70 + noise),  # always -0.1
                 _row(seed, "imagenet", "b", 0.60), _row(seed, "product", "b", 0.60 + (0.05 if seed else -0.05))]
    summary = summarise_folds(rows)
    margins = {r["task"]: r for r in summary["margins"]}
    assert margins["a"]["mean"] == pytest.approx(-0.1) and margins["a"]["high"] < 0
    assert margins["b"]["low"] < 0 < margins["b"]["high"]
    target = fold_targets(summary)["linear"]
    assert target["worst_task"] == "a" and target["tasks_significantly_below"] == ["a"]
    assert not target["mean_at_least_baseline"]


def test_a_task_probed_in_several_folds_counts_once_per_seed():
    rows = [_row(0, "product", "star", 0.5, fold=0), _row(0, "product", "star", 0.7, fold=1),
            _row(0, "imagenet", "star", 0.6, fold=0), _row(0, "imagenet", "star", 0.6, fold=1)]
    per_task = {(r["method"], r["task"]): r for r in summarise_folds(rows)["per_task"]}
    assert per_task["product", "star"]["mean"] == pytest.approx(0.6) and per_task["product", "star"]["n"] == 1


def test_each_fold_model_never_sees_its_tasks(tiny_run, tmp_path):
    run = open_run(tiny_run)
    ctx = Context(run=run, work_dir=tmp_path / "work", report_dir=tmp_path, progress=False)
    config = EvaluationConfig(transfer_folds=2, transfer_seeds=(0,), fold_fractions=(1.0,), fold_probes=("linear",),
                              epochs=1, probe=ProbeConfig(max_epochs=5, patience=2)).validate()
    seen = {}

    def extra(trained, learned, seeded, seed):
        heads = {t.name for t in trained.model.heads.tasks}
        losses = set().union(*(h["train_task_losses"] for h in trained.checkpoint["history"]))
        seen[len(seen)] = (heads, losses)
        return {"learned_copy": learned}

    result = run_task_folds(ctx, config, extra_features=extra)
    folds = result["folds"]
    assert sorted(n for f in folds for n in f) == sorted(t.name for t in run.tasks)
    for i, fold in enumerate(folds):
        heads, losses = seen[i]
        assert not heads & set(fold) and not losses & set(fold)  # no head, no loss of a held-out task
        probed = {r["task"] for r in result["rows"] if r["fold"] == i}
        assert probed == set(fold) | set(run.holdout)  # its tasks and the hold-out column, from that model
    assert {r["method"] for r in result["rows"]} == {"product", "learned", "imagenet", "imagenet_pca", "learned_copy"}
    assert all(np.isfinite(r["score"]) for r in result["rows"])


@pytest.mark.parametrize("probes", [("linear",), ("mlp", "linear")])
def test_the_section_names_only_the_probes_it_ran(probes):
    from gallery_core.evaluation.sections.task_folds import fold_markdown, fold_verdicts

    rows = [_row(s, m, "a", 0.7 + 0.01 * s, probe=p) for s in range(2) for m in ("product", "imagenet") for p in probes]
    summary = summarise_folds(rows)
    t = {"rule": "a rule", "folds": [["a"]], "seeds": [0, 1], "fractions": [1.0], "epoch_budget": 1,
         "holdout_columns": [], "new_task_features": "pretrained+learned", "effective_rank": {},
         "models": [{"seconds": 1.0}], **summary, "targets": fold_targets(summary)}
    text = "\n".join(fold_markdown(t, fold_verdicts(t))[0])
    assert ("2-layer MLP probe" in text) == ("mlp" in probes)
    assert "a linear probe (logistic / ridge regression)" in text
