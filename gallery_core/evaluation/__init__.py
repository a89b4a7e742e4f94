"""Evaluation of a built run, after the gallery-encoder paper's section 4: hold-out task, per-task
quality against single-task models, class balance, retrieval and the audit.

``python -m gallery_core evaluate --artifacts DIR`` writes ``DIR/evaluation/report.md`` (with PNG
figures) and ``report.json``.
"""

from gallery_core.evaluation.config import SECTIONS, EvaluationConfig
from gallery_core.evaluation.runner import EvaluationResult, evaluate

__all__ = ["SECTIONS", "EvaluationConfig", "EvaluationResult", "evaluate"]
