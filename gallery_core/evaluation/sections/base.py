"""The interface of a report section. Light on purpose (no torch, no matplotlib): the registry, and so
the CLI's ``--skip`` choices, are built from it without loading any model code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gallery_core.evaluation.config import EvaluationConfig
    from gallery_core.evaluation.context import Context

Result = dict[str, Any]


def no_verdicts(result: Result) -> list[str]:
    return []


def no_figures(result: Result, out_dir: Path) -> dict[str, Path]:
    return {}


def no_plan(config: EvaluationConfig, n_holdout_columns: int) -> str | None:
    return None


@dataclass(frozen=True)
class Section:
    """One section of the evaluation report: what it computes and how the report shows it.

    The runner calls ``run`` (its dict goes into ``report.json`` under ``name``); a result with a
    ``skipped`` or ``error`` key is shown as such and gets no verdicts or figures. Otherwise
    ``verdicts`` turns the numbers into sentences, ``figures`` writes PNGs into the report folder and
    ``markdown`` returns one body per title (the report writes the numbered headings, so a section
    added to the registry renumbers the ones after it by itself).
    """

    name: str  # its key in report.json and its --skip choice
    titles: tuple[str, ...]  # its Markdown headings, in order (most sections have one)
    run: Callable[[Context, EvaluationConfig], Result]
    markdown: Callable[[Result, list[str]], list[list[str]]]
    verdicts: Callable[[Result], list[str]] = no_verdicts
    figures: Callable[[Result, Path], dict[str, Path]] = no_figures
    figure_files: tuple[str, ...] = ()  # every file ``figures`` may write: removed first, so none is stale
    # Verdicts that open with one of these also go into the report's summary (after every section's first).
    summary_prefixes: tuple[str, ...] = ()
    # What the section will train, said before it starts (the models are what takes the time).
    plan: Callable[[EvaluationConfig, int], str | None] = no_plan
