"""The report's sections by name, in report order: a module path each (imported on first use), or a
``sections.base.Section`` standing in for one (a test registers one that way).

Imports nothing, so ``config`` (which checks ``skip`` against the names) sits below the sections, whose
interface (``sections.base``) refers to the config: the package has no import cycle. A new section is one
module exposing ``SECTION`` and one line here.
"""

from __future__ import annotations

from typing import Any

# name -> module path, or a Section object (typed loosely: naming Section here would import the sections)
REGISTRY: dict[str, Any] = {
    "holdout": "gallery_core.evaluation.sections.holdout",
    "transfer": "gallery_core.evaluation.sections.transfer",
    "task_folds": "gallery_core.evaluation.sections.task_folds",
    "quality": "gallery_core.evaluation.sections.quality",
    "retrieval": "gallery_core.evaluation.sections.retrieval",
    "robustness": "gallery_core.evaluation.sections.robustness",
    "ablation": "gallery_core.evaluation.sections.ablation",
    "audit": "gallery_core.evaluation.sections.audit",
}


def section_names() -> tuple[str, ...]:
    """The sections' names in report order (read when asked, so a registration made later counts)."""
    return tuple(REGISTRY)
