"""Evaluation of a built run, after the gallery-encoder paper's section 4: hold-out task, per-task
quality against single-task models, class balance, retrieval and the audit (and the reseller paper's
robustness and objective ablation).

``python -m gallery_core evaluate --artifacts DIR`` writes ``DIR/evaluation/report.md`` (with PNG
figures) and ``report.json``. Each report section is one module of ``sections/``, registered in
``sections.REGISTRY``. ``evaluate`` is imported on first use: the CLI registers the command without
loading torch or matplotlib.
"""

from typing import Any

from gallery_core.evaluation.config import EvaluationConfig, ProbeConfig

__all__ = ["SECTIONS", "EvaluationConfig", "EvaluationResult", "ProbeConfig", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvaluationResult"):
        from gallery_core.evaluation import runner

        return getattr(runner, name)
    if name == "SECTIONS":  # the registered sections' names, in report order
        from gallery_core.evaluation.sections import section_names

        return section_names()
    raise AttributeError(f"module 'gallery_core.evaluation' has no attribute {name!r}")
