"""``evaluate``: run the registered sections (``gallery_core.evaluation.sections``) on a built run, in
report order, and write its report.

Each section is timed and isolated: one that fails is recorded as failed in the report (with the
error) and the others still run, so a long evaluation is not lost to one bad section; the caller
learns of the failure from ``EvaluationResult.failed``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gallery_core.artifacts.run import open_run
from gallery_core.artifacts.store import EVALUATION_DIR, REPORT_JSON
from gallery_core.errors import ConfigError, UsageError
from gallery_core.evaluation.config import EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.report import check_same_run, merge_update, section_verdicts, write_report
from gallery_core.evaluation.sections import load_section, section_names
from gallery_core.models.device import pick_device
from gallery_core.names import CLI

logger = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or ``taskset`` may allow fewer
    than the machine has), or the machine's count where affinity is not available."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores() -> float | None:
    """How many cores other work keeps busy: the 1-minute load average, None where there is none.

    It lags: a job that ended in the last minute still counts (once that halved this evaluation's
    threads), and processes waiting on I/O count too. Sampling /proc/stat over half a second saw the
    present better but only on Linux and by hand-parsing; the standard library's figure is enough for
    a thread count, and an explicit ``threads`` always wins.
    """
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return None


def choose_threads(requested: int | None = None) -> int:
    """Torch threads for the evaluation: ``requested``, else as many as there are idle cores (>= 1).

    On a shared machine, OpenMP threads that wait on cores busy with other work slow each other down:
    on 2 cores under a load of ~6, one thread trained an epoch ~3x faster than two (measured). The rule:
    a core counts as taken when other work keeps it at least 3/4 busy, i.e. idle cores = usable cores -
    int(load + 0.25), capped by torch's own thread count.
    """
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be >= 1, got {requested}")
        return requested
    busy = busy_cores()
    if busy is None:
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), usable_cores() - int(busy + 0.25)))


def _load_average() -> float | None:
    """The 1-minute load average: how busy the (possibly shared) machine was, for reading the timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def planned_work(config: EvaluationConfig, n_holdout_columns: int) -> str:
    """What the evaluation will train, said up front: the models are what takes the time."""
    parts = [part for name in section_names() if name not in config.skip
             if (part := load_section(name).plan(config, n_holdout_columns))]
    return ("plan: " + "; ".join(parts) + ". On the 2-core CPU machine a demo model takes 1-3 minutes, so the "
            "full default evaluation of the demo runs well over an hour; --quick keeps it under 15 minutes."
            if parts else "plan: no section trains a model")


def previous_report(out: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """``--update``: the report already in ``out``, checked to be of this run's model and catalogue."""
    path = out / REPORT_JSON
    if not path.is_file():
        raise UsageError(f"--update: no report to update in {out}; run evaluate without --update first")
    previous = json.loads(path.read_text())
    try:
        check_same_run(previous, run_info)
    except ValueError as err:
        raise UsageError(f"--update: {path}: {err}; run evaluate without --update for a new report") from None
    return previous


@dataclass
class EvaluationResult:
    report: dict[str, Any]
    markdown_path: Path
    failed: list[str]


def evaluate(run_dir: str | Path, config: EvaluationConfig | None = None, out_dir: str | Path | None = None,
             catalogue_dir: str | Path | None = None, device: str | None = None, progress: bool = True,
             copy_to: str | Path | None = None,
             command: str = f"{CLI} evaluate", threads: int | None = None) -> EvaluationResult:
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
    manifest = run.manifest
    run_info = {"name": run.name, "root": str(run.root), "n_listings": len(run.listings), "n_photos": len(run.photos),
                "backbone": manifest.get("backbone", {}).get("name", run.config.model.backbone),
                "weighting": run.config.train.weighting, "catalogue": manifest["catalogue"]["root"],
                "catalogue_fingerprint": manifest["catalogue"]["fingerprint"], "config": run.config.to_dict(),
                "model_checksum": manifest["files"].get(run.paths.checkpoint.name, {}).get("checksum")}
    previous = previous_report(out, run_info) if config.update else None  # refused now, not after an hour
    logger.info(planned_work(config, len(run.holdout)))
    sections: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    try:
        for name in section_names():
            if name in config.skip:
                continue
            logger.info(f"[{name}] running")
            section_started = time.perf_counter()
            try:
                sections[name] = load_section(name).run(ctx, config)
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
    report = {
        "format": "gallery-core-evaluation",
        "command": command,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "run": run_info,
        "config": config.to_dict(),
        "environment": {"device": str(pick_device(device)), "cpu_count": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "load_average_at_start": load_at_start, "load_average_at_end": _load_average()},
        "seconds": seconds,
        "sections": sections,
        "verdicts": section_verdicts(sections),
    }
    if previous is not None:
        report = merge_update(report, previous)
    markdown = write_report(report, out, Path(copy_to) if copy_to is not None else None)
    logger.info(f"evaluation report written to {markdown} in {seconds['total'] / 60:.1f} min")
    return EvaluationResult(report, markdown, failed)
