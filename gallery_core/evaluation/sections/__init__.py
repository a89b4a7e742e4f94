"""The report's sections, in report order. A new section is one module exposing ``SECTION`` (a
``base.Section``) and one line in ``REGISTRY`` (``gallery_core.evaluation.registry``).

The registry maps names to module paths, imported on first use: the CLI validates ``--skip`` from
the names without loading torch. A ``Section`` object may stand in place of a path (a test registers
one that way).
"""

from __future__ import annotations

import importlib

from gallery_core.evaluation.registry import REGISTRY, section_names
from gallery_core.evaluation.sections.base import Section

__all__ = ["REGISTRY", "Section", "load_section", "section_names"]


def load_section(name: str) -> Section:
    """The registered section ``name``, its module imported now."""
    entry = REGISTRY[name]
    section = entry if isinstance(entry, Section) else importlib.import_module(entry).SECTION
    if section.name != name:
        raise ValueError(f"section registered as {name!r} calls itself {section.name!r}")
    return section
