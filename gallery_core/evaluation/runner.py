"""``evaluate``: run the sections on a built run and write its report.

Each section is timed and isolated: one that fails is recorded as failed in the report (with the
error) and the others still run, so a long evaluation is not lost to one bad section; the caller
learns of the failure from ``EvaluationResult.failed``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gallery_core.artifacts.run import open_run
from gallery_core.artifacts.store import EVALUATION_DIR
from gallery_core.errors import ConfigError
from gallery_core.evaluation.audit_eval import evaluate_audit
from gallery_core.evaluation.config import SECTIONS, EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.holdout import evaluate_holdout
from gallery_core.evaluation.objectives import evaluate_ablation, evaluate_robustness
from gallery_core.evaluation.quality import evaluate_quality
from gallery_core.evaluation.report import all_verdicts, write_report
from gallery_core.evaluation.retrieval import evaluate_retrieval
from gallery_core.evaluation.transfer import evaluate_transfer
from gallery_core.training.loop import pick_device

logger = logging.getLogger(__name__)

SECTION_FUNCTIONS: dict[str, Callable[[Context, EvaluationConfig], dict[str, Any]]] = {
    "holdout": evaluate_holdout,
    "transfer": evaluate_transfer,
    "quality": evaluate_quality,
    "retrieval": evaluate_retrieval,
    "robustness": evaluate_robustness,
    "ablation": evaluate_ablation,
    "audit": evaluate_audit,
}


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        fields = [int(x) for x in stat.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])  # user..steal; guest time is already in user


def busy_cores(sample_seconds: float = 0.5, stat: Path = Path("/proc/stat")) -> float | None:
    """How many cores other work keeps busy right now (sampled over ``sample_seconds``), or the 1-minute
    load average where /proc/stat is missing. The load average alone lags: a job that has just ended
    still counts for a minute, which once halved this evaluation's threads."""
    first = _cpu_times(stat)
    if first is not None:
        time.sleep(sample_seconds)
        second = _cpu_times(stat)
        if second is not None and second[1] > first[1]:
            return (os.cpu_count() or 1) * (second[0] - first[0]) / (second[1] - first[1])
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return None


def choose_threads(requested: int | None = None) -> int:
    """Torch threads for the evaluation: ``requested``, else as many as the machine has idle cores (>= 1).

    On a shared machine, OpenMP threads that wait on cores busy with other work slow each other down:
    on 2 cores under a load of ~6, one thread trained an epoch ~3x faster than two (measured).
    """
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be >= 1, got {requested}")
        return requested
    busy = busy_cores()
    if busy is None:
        return torch.get_num_threads()
    cores = os.cpu_count() or 1
    # A core counts as taken when other work keeps it at least 3/4 busy.
    return max(1, min(torch.get_num_threads(), cores - int(busy + 0.25)))


def _load_average() -> float | None:
    """The 1-minute load average: how busy the (possibly shared) machine was, for reading the timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def planned_work(config: EvaluationConfig, n_holdout_columns: int) -> str:
    """What the evaluation will train, said up front: the models are what takes the time."""
    parts = []
    if "holdout" not in config.skip and n_holdout_columns:
        parts.append(f"hold-out: {len(config.fractions)} end-to-end models")
    if "transfer" not in config.skip:
        n_tasks = n_holdout_columns + config.transfer_binary + 2 if config.transfer_tasks is None else \
            n_holdout_columns + len(config.transfer_tasks)
        per_seed = 1 + n_tasks * len(config.transfer_end_to_end_fractions)
        parts.append(f"leave tasks out: {len(config.transfer_seeds)} seeds x ({per_seed} models, probes at "
                     f"{len(config.fractions)} fractions)")
    if "quality" not in config.skip:
        n_single = config.n_single_task + 2 if config.single_task_tasks is None else len(config.single_task_tasks)
        parts.append(f"quality: up to {n_single + 2} models")
    return ("plan: " + "; ".join(parts) + ". On the 2-core CPU machine a demo model takes 1-3 minutes, so the "
            "full default evaluation of the demo runs well over an hour; --quick keeps it under 15 minutes."
            if parts else "plan: no section trains a model")


@dataclass
class EvaluationResult:
    report: dict[str, Any]
    markdown_path: Path
    failed: list[str]


def evaluate(run_dir: str | Path, config: EvaluationConfig | None = None, out_dir: str | Path | None = None,
             catalogue_dir: str | Path | None = None, device: str | None = None, progress: bool = True,
             copy_to: str | Path | None = None,
             command: str = "python -m gallery_core evaluate", threads: int | None = None) -> EvaluationResult:
    """Evaluate a built run; write ``report.md``, ``report.json`` and figures to ``<run>/evaluation``.

    ``threads``: torch threads (default: the idle cores, see ``choose_threads``).
    """
    config = (config or EvaluationConfig()).validate()
    previous_threads = torch.get_num_threads()
    n_threads = choose_threads(threads)
    torch.set_num_threads(n_threads)
    logger.info(f"using {n_threads} torch thread(s) of {os.cpu_count()} cores")
    try:
        return _evaluate(run_dir, config, out_dir, catalogue_dir, device, progress, copy_to, command)
    finally:
        torch.set_num_threads(previous_threads)


def _evaluate(run_dir: str | Path, config: EvaluationConfig, out_dir: str | Path | None,
              catalogue_dir: str | Path | None, device: str | None, progress: bool,
              copy_to: str | Path | None, command: str) -> EvaluationResult:
    started = time.perf_counter()
    load_at_start = _load_average()
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.root / EVALUATION_DIR
    work = out / ".work"
    ctx = Context(run=run, work_dir=work, report_dir=out, device=device, progress=progress,
                  catalogue_dir=catalogue_dir)
    logger.info(planned_work(config, len(run.holdout)))
    sections: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    try:
        for name in SECTIONS:
            if name in config.skip:
                continue
            logger.info(f"[{name}] running")
            section_started = time.perf_counter()
            try:
                sections[name] = SECTION_FUNCTIONS[name](ctx, config)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # recorded, not fatal: the other sections still run
                failed.append(name)
                sections[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
                logger.info(f"[{name}] failed: {type(err).__name__}: {err}")
            seconds[name] = round(time.perf_counter() - section_started, 2)
            if name not in failed:
                logger.info(f"[{name}] done in {seconds[name]:.1f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - started, 2)
    manifest = run.manifest
    report = {
        "format": "gallery-core-evaluation",
        "command": command,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "run": {"name": run.name, "root": str(run.root), "n_listings": len(run.listings), "n_photos": len(run.photos),
                "backbone": manifest.get("backbone", {}).get("name", run.config.model.backbone),
                "weighting": run.config.train.weighting, "catalogue": manifest["catalogue"]["root"],
                "catalogue_fingerprint": manifest["catalogue"]["fingerprint"], "config": run.config.to_dict()},
        "config": config.to_dict(),
        "environment": {"device": str(pick_device(device)), "cpu_count": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "load_average_at_start": load_at_start, "load_average_at_end": _load_average()},
        "seconds": seconds,
        "sections": sections,
        "verdicts": all_verdicts(sections),
    }
    markdown = write_report(report, out, Path(copy_to) if copy_to is not None else None)
    logger.info(f"evaluation report written to {markdown} in {seconds['total'] / 60:.1f} min")
    return EvaluationResult(report, markdown, failed)
