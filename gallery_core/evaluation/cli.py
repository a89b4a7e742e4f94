"""The ``evaluate`` subcommand: ``add_parser(subparsers)`` registers it on the main CLI's parser.

Usage: ``python -m gallery_core evaluate --artifacts DIR [--fractions F ...] [--single-task-tasks T ...]
[--epochs N] [--skip SECTION ...]``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from gallery_core.config import DEMO_RUN_NAME, artifacts_root
from gallery_core.errors import UsageError
from gallery_core.evaluation.config import DEFAULT_MAX_EPOCHS, EvaluationConfig, ProbeConfig
from gallery_core.evaluation.sections import section_names
from gallery_core.names import CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    default_run = artifacts_root() / DEMO_RUN_NAME
    defaults = EvaluationConfig()
    p = subparsers.add_parser(
        "evaluate", help="evaluate a built run as the gallery-encoder paper does (report in <run>/evaluation)",
        description="Hold-out task (MTL embeddings vs ImageNet transfer vs end-to-end), leave tasks out (training "
                    "tasks held out of training, several seeds), per-task quality against "
                    "trivial baselines and single-task models for both MTL weightings, class balance, retrieval "
                    "and the audit. Writes report.md, report.json and PNG figures to <run>/evaluation.")
    p.add_argument("--artifacts", type=Path, default=default_run, help=f"run folder (default {default_run})")
    p.add_argument("--out", type=Path, default=None, help="report folder (default <run>/evaluation)")
    p.add_argument("--copy-to", type=Path, default=None, help="also copy the report and figures here (e.g. docs/evaluation)")
    p.add_argument("--catalogue", type=Path, default=None, help="catalogue folder (default: the one the run was built from)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(defaults.fractions), metavar="F",
                   help="fractions of the labelled training listings for the hold-out task "
                        f"(default {' '.join(map(str, defaults.fractions))})")
    p.add_argument("--holdout-column", default=None, help="hold-out column (default: the run's first)")
    p.add_argument("--transfer-tasks", nargs="+", default=None, metavar="TASK",
                   help="training tasks to hold out of training in the leave-tasks-out section (default: the rule "
                        "in the report: binary tasks spread over class balance, the largest multiclass and the first "
                        "regression task)")
    p.add_argument("--transfer-binary", type=int, default=defaults.transfer_binary,
                   help=f"binary tasks the rule holds out (default {defaults.transfer_binary})")
    p.add_argument("--transfer-seeds", type=int, nargs="+", default=list(defaults.transfer_seeds), metavar="SEED",
                   help="training seeds of the leave-tasks-out models (default "
                        f"{' '.join(map(str, defaults.transfer_seeds))})")
    p.add_argument("--transfer-end-to-end-fractions", type=float, nargs="*",
                   default=list(defaults.transfer_end_to_end_fractions), metavar="F",
                   help="fractions at which an end-to-end model trains per held-out task and seed (default "
                        f"{' '.join(map(str, defaults.transfer_end_to_end_fractions))}; none: pass no value)")
    p.add_argument("--transfer-folds", type=int, default=defaults.transfer_folds, metavar="K",
                   help="task folds: every training task held out once, one model retrained without each of K folds "
                        f"per seed (default {defaults.transfer_folds}; 0 skips the section)")
    p.add_argument("--fold-fractions", type=float, nargs="+", default=list(defaults.fold_fractions), metavar="F",
                   help="fractions of the labels the task-fold probes train on (default "
                        f"{' '.join(map(str, defaults.fold_fractions))})")
    p.add_argument("--fold-probes", nargs="+", default=list(defaults.fold_probes), choices=("mlp", "linear"),
                   help="probes of the task-fold section (default: both)")
    p.add_argument("--quick", action="store_true",
                   help="under 15 minutes on the demo (2-core CPU): fractions 0.2 and 1.0, no end-to-end models in "
                        "the leave-tasks-out section, and skip holdout, quality, robustness and the task folds (15 "
                        "models); explicit flags win")
    p.add_argument("--single-task-tasks", nargs="*", default=None, metavar="TASK",
                   help="tasks that get a single-task model (default: a spread of --n-single-task binary tasks over "
                        "class balance, the largest multiclass task and one regression task; none: pass no names)")
    p.add_argument("--n-single-task", type=int, default=defaults.n_single_task,
                   help=f"binary tasks in the default single-task selection (default {defaults.n_single_task})")
    p.add_argument("--epochs", type=int, default=defaults.epochs,
                   help="epoch budget of every model evaluate trains (default: the run's max_epochs, at most "
                        f"{DEFAULT_MAX_EPOCHS})")
    p.add_argument("--probe-epochs", type=int, default=ProbeConfig().max_epochs,
                   help=f"epoch budget of the shallow probes (default {ProbeConfig().max_epochs})")
    p.add_argument("--completion-queries", type=int, default=defaults.completion_queries,
                   help="listings queried for gallery completion (default 0 = all)")
    p.add_argument("--precision-k", type=int, default=defaults.precision_k,
                   help=f"k of attribute precision@k (default {defaults.precision_k})")
    p.add_argument("--ann-queries", type=int, default=defaults.ann_queries,
                   help=f"queries for Annoy recall and latency (default {defaults.ann_queries})")
    p.add_argument("--robustness-queries", type=int, default=defaults.robustness_queries,
                   help="validation listings queried with corrupted photos (default "
                        f"{defaults.robustness_queries}; 0 skips)")
    p.add_argument("--ablation", type=Path, default=None,
                   help="results of benchmarks/ablation_visual_search.py to report (default "
                        "<report dir>/visual_search_ablation.json)")
    p.add_argument("--audit-k", type=int, nargs="+", default=list(defaults.audit_ks), metavar="K",
                   help=f"k of the audit's precision/recall@k (default {' '.join(map(str, defaults.audit_ks))})")
    p.add_argument("--truth", type=Path, default=None,
                   help="folder with flipped_flags.csv for the audit (default <catalogue>/truth)")
    sections = section_names()  # the registry's, read now: a section registered later is a choice too
    p.add_argument("--skip", nargs="+", default=[], choices=sections, metavar="SECTION",
                   help=f"sections to leave out: {', '.join(sections)}")
    p.add_argument("--update", nargs="+", default=None, choices=sections, metavar="SECTION",
                   help="rerun only these sections and put them into the report already in --out (same model and "
                        "catalogue, checked), keeping its other sections; e.g. --update transfer after a fix to that "
                        "section, instead of the whole evaluation again")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of every split and model (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the cores not busy with other work, at least 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or logs")
    p.set_defaults(func=cmd_evaluate)
    return p


# The task folds retrain 15 models (their section took 2,817 s in the demo's report of 2026-12-08), so --quick skips
# them with the other long sections.
QUICK = {"fractions": [0.2, 1.0], "transfer_end_to_end_fractions": [],
         "skip": ["holdout", "quality", "robustness", "task_folds"]}


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    if getattr(args, "update", None):
        if args.skip or getattr(args, "quick", False):
            raise UsageError("--update names the sections to run; leave out --skip and --quick")
        args.skip = [name for name in section_names() if name not in args.update]
    if getattr(args, "quick", False):
        defaults = EvaluationConfig()
        for name, value in QUICK.items():
            current = getattr(args, name)
            if name == "skip":
                setattr(args, name, sorted(set(current) | set(value)))
            elif list(current) == list(getattr(defaults, name)):  # not given on the command line
                setattr(args, name, value)
    return EvaluationConfig(
        transfer_tasks=tuple(args.transfer_tasks) if args.transfer_tasks is not None else None,
        transfer_binary=args.transfer_binary, transfer_seeds=tuple(args.transfer_seeds),
        transfer_folds=args.transfer_folds, fold_fractions=tuple(args.fold_fractions),
        fold_probes=tuple(args.fold_probes),
        transfer_end_to_end_fractions=tuple(args.transfer_end_to_end_fractions),
        fractions=tuple(args.fractions), holdout_column=args.holdout_column,
        single_task_tasks=tuple(args.single_task_tasks) if args.single_task_tasks is not None else None,
        n_single_task=args.n_single_task, epochs=args.epochs, completion_queries=args.completion_queries,
        precision_k=args.precision_k, ann_queries=args.ann_queries,
        robustness_queries=args.robustness_queries,
        ablation_path=str(args.ablation) if args.ablation is not None else None, audit_ks=tuple(args.audit_k),
        truth_dir=str(args.truth) if args.truth is not None else None, skip=tuple(args.skip),
        update=bool(getattr(args, "update", None)), seed=args.seed,
        probe=ProbeConfig(max_epochs=args.probe_epochs)).validate()


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gallery_core.evaluation.runner import evaluate

    config = config_from_args(args)
    # The command as typed, recorded in the report so it can be rerun (the main CLI sets args.argv).
    argv = getattr(args, "argv", None) or ["evaluate"]
    command = f"{CLI} " + " ".join(shlex.quote(a) for a in argv)
    result = evaluate(args.artifacts, config, out_dir=args.out, catalogue_dir=args.catalogue, device=args.device,
                      progress=not args.quiet, copy_to=args.copy_to, command=command.strip(),
                      threads=args.threads)
    if result.failed:
        print(f"error: sections failed: {', '.join(result.failed)} (details in {result.markdown_path.parent}/"
              "report.json)", file=sys.stderr)
        return 1
    return 0
