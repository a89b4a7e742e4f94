"""``evaluate``: run the sections on a built run and write its report.

Each section is timed and isolated: one that fails is recorded as failed in the report (with the
error) and the others still run, so a long evaluation is not lost to one bad section; the caller
learns of the failure from ``EvaluationResult.failed``.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gallery_core.evaluation.audit_eval import evaluate_audit
from gallery_core.evaluation.config import SECTIONS, EvaluationConfig
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.holdout import evaluate_holdout
from gallery_core.evaluation.quality import evaluate_quality
from gallery_core.evaluation.report import all_verdicts, write_report
from gallery_core.evaluation.retrieval import evaluate_retrieval
from gallery_core.reports import EVALUATION_DIR
from gallery_core.run import open_run
from gallery_core.train import pick_device

SECTION_FUNCTIONS: dict[str, Callable[[Context, EvaluationConfig], dict[str, Any]]] = {
    "holdout": evaluate_holdout,
    "quality": evaluate_quality,
    "retrieval": evaluate_retrieval,
    "audit": evaluate_audit,
}


@dataclass
class EvaluationResult:
    report: dict[str, Any]
    markdown_path: Path
    failed: list[str]


def evaluate(run_dir: str | Path, config: EvaluationConfig | None = None, out_dir: str | Path | None = None,
             catalogue_dir: str | Path | None = None, device: str | None = None, progress: bool = True,
             log: Callable[[str], None] = print, copy_to: str | Path | None = None,
             command: str = "python -m gallery_core evaluate") -> EvaluationResult:
    """Evaluate a built run; write ``report.md``, ``report.json`` and figures to ``<run>/evaluation``."""
    config = (config or EvaluationConfig()).validate()
    started = time.perf_counter()
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.root / EVALUATION_DIR
    work = out / ".work"
    ctx = Context(run=run, work_dir=work, device=device, progress=progress, log=log, catalogue_dir=catalogue_dir)
    sections: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    try:
        for name in SECTIONS:
            if name in config.skip:
                continue
            log(f"[{name}] running")
            section_started = time.perf_counter()
            try:
                sections[name] = SECTION_FUNCTIONS[name](ctx, config)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # recorded, not fatal: the other sections still run
                failed.append(name)
                sections[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
                log(f"[{name}] failed: {type(err).__name__}: {err}")
            seconds[name] = round(time.perf_counter() - section_started, 2)
            if name not in failed:
                log(f"[{name}] done in {seconds[name]:.1f}s")
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
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "seconds": seconds,
        "sections": sections,
        "verdicts": all_verdicts(sections),
    }
    markdown = write_report(report, out, Path(copy_to) if copy_to is not None else None)
    log(f"evaluation report written to {markdown} in {seconds['total'] / 60:.1f} min")
    return EvaluationResult(report, markdown, failed)
