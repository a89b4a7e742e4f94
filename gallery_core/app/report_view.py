"""Finding a run's evaluation report and splitting its Markdown into text and figures.

The evaluation step writes ``<run>/evaluation/report.md`` with PNG figures beside it and
``report.json``. A Markdown renderer in a web app cannot resolve the relative image paths, so the
report is cut into parts: text blocks, and figures resolved to files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gallery_core.artifacts.store import EVALUATION_DIR, REPORT_JSON, REPORT_MARKDOWN

_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclass(frozen=True)
class ReportPart:
    kind: str  # "text" or "image"
    text: str = ""  # Markdown (text) or alt text (image)
    path: Path | None = None  # image file; None when it does not exist


@dataclass(frozen=True)
class EvaluationReport:
    folder: Path
    parts: list[ReportPart]
    json_path: Path | None
    unreferenced_figures: list[Path]  # PNGs in the folder that the Markdown does not show


def split_markdown(markdown: str, folder: Path) -> list[ReportPart]:
    """Text and image parts in order; image targets are resolved relative to ``folder``."""
    parts: list[ReportPart] = []
    position = 0
    for match in _IMAGE.finditer(markdown):
        text = markdown[position:match.start()]
        if text.strip():
            parts.append(ReportPart("text", text))
        target = match.group("target")
        path = None if "://" in target else (folder / target).resolve()
        parts.append(ReportPart("image", match.group("alt"), path if path is not None and path.is_file() else None))
        position = match.end()
    if markdown[position:].strip():
        parts.append(ReportPart("text", markdown[position:]))
    return parts


def load_evaluation_report(run_root: str | Path) -> EvaluationReport | None:
    """The run's evaluation report, or None when it has not been made."""
    folder = Path(run_root) / EVALUATION_DIR
    markdown_path = folder / REPORT_MARKDOWN
    if not markdown_path.is_file():
        return None
    parts = split_markdown(markdown_path.read_text(), folder)
    shown = {p.path for p in parts if p.path is not None}
    figures = sorted(p.resolve() for p in folder.glob("*.png") if p.resolve() not in shown)
    json_path = folder / REPORT_JSON
    return EvaluationReport(folder, parts, json_path if json_path.is_file() else None, figures)
