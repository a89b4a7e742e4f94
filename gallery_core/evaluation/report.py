"""The evaluation report: ``report.json`` (every number), ``report.md`` and its PNG figures.

The sections (``gallery_core.evaluation.sections``) write their own Markdown, verdicts and figures
with the helpers here; this module assembles the document around them (header, summary, numbered
headings, settings) and writes the files atomically.

Image links are bare file names, so the Markdown works wherever the folder is copied with its figures
(``<run>/evaluation/`` for the app's Model page, ``docs/evaluation/`` in the repository).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.store import REPORT_JSON, REPORT_MARKDOWN, atomic_path, write_json
from gallery_core.evaluation.sections import load_section, section_names
from gallery_core.evaluation.sections.base import Section

COLOURS = {"mtl": "#1f77b4", "imagenet": "#ff7f0e", "end_to_end": "#2ca02c", "product": "#1f77b4",
           "learned": "#9467bd", "imagenet_pca": "#ffbb78",
           "pseudo_uniform": "#1f77b4", "uncertainty": "#d62728", "chance": "#999999"}


def clean_for_json(value: Any) -> Any:
    """NaN and infinities become null: strict JSON readers (browsers, jq) reject them."""
    if isinstance(value, dict):
        return {str(k): clean_for_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_for_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# --- numbers in text ---


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def finite_or_nan(value: Any) -> float:
    """A number for a plot: missing values (None in report.json) become NaN, which plots leave out."""
    return float(value) if is_finite(value) else float("nan")


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: '–' for a missing number, yes/no, integers as they are, floats to ``digits``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def pct(value: Any) -> str:
    """A signed percentage (relative error increase): '+12.5%'."""
    return "–" if not is_finite(value) else f"{100 * value:+.1f}%"


# --- Markdown blocks ---


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table of already formatted cells, then a blank line. Numbers are not parsed again
    (tabulate would turn '0.500' into '0.5')."""
    text = pd.DataFrame(rows, columns=header).to_markdown(index=False, disable_numparse=True)
    return text.splitlines() + [""]


def bullets(lines: list[str]) -> list[str]:
    return [f"- {line}" for line in lines] + ([""] if lines else [])


def status(result: dict[str, Any]) -> str | None:
    """The line a skipped or failed section shows instead of its body; None when it ran."""
    if "skipped" in result:
        return f"_Skipped: {result['skipped']}._"
    if "error" in result:
        return f"_Failed: {result['error']}._"
    return None


def compact_json(data: Any) -> str:
    return json.dumps(clean_for_json(data), separators=(", ", ": "))


# --- figures ---


def subplots(*args: Any, **kwargs: Any) -> Any:
    """``plt.subplots`` on the Agg backend: figures go to files, no display is needed. Imported here,
    on first use, so that the backend is set before pyplot loads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# --- the document ---


def ran(result: dict[str, Any]) -> bool:
    """Whether a section has numbers to show (it was neither skipped nor failed)."""
    return "skipped" not in result and "error" not in result


def section_verdicts(sections: dict[str, Any]) -> dict[str, list[str]]:
    """Each section's sentences against the papers; none for a failed section, [] for a skipped one."""
    return {name: load_section(name).verdicts(result) if ran(result) else []
            for name, result in sections.items() if "error" not in result}


# What must match for a report's sections to be updated in place: the same model of the same catalogue. A report
# made before model_checksum was recorded is matched on the rest.
SAME_RUN = ("catalogue_fingerprint", "n_listings", "n_photos", "config", "model_checksum")


def check_same_run(previous: dict[str, Any], run: dict[str, Any]) -> None:
    """Raises ValueError, naming what differs, when the report ``previous`` is not of the run described by ``run``
    (a report's ``run`` entry)."""
    now = clean_for_json(run)
    differ = [k for k in SAME_RUN if k in previous["run"] and previous["run"][k] != now.get(k)]
    if differ:
        raise ValueError(f"it evaluates another model or catalogue ({', '.join(differ)} differ)")


def merge_update(report: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """``evaluate --update``: ``report``'s sections (just run) replace theirs in ``previous``, which keeps the
    others, its header and settings; the update is listed under ``updates`` with its own command, time, settings
    and machine. Raises ValueError, naming what differs, when ``previous`` evaluates another model or catalogue."""
    check_same_run(previous, report["run"])
    names = [n for n in section_names() if n in report["sections"] or n in previous["sections"]]
    source = {n: report if n in report["sections"] else previous for n in names}
    sections = {n: source[n]["sections"][n] for n in names}
    seconds = {n: source[n]["seconds"].get(n) for n in names}
    # Verdicts as each was written from its section's numbers in memory (read back from JSON, a dict keyed by
    # fraction has string keys, which the verdict functions do not take).
    verdicts = {n: source[n]["verdicts"].get(n, []) for n in names}
    update = {"command": report["command"], "generated_at": report["generated_at"], "sections": list(report["sections"]),
              "seconds": report["seconds"]["total"], "config": report["config"], "environment": report["environment"]}
    return {**previous, "run": report["run"], "sections": sections,
            "seconds": {**seconds, "total": previous["seconds"]["total"]}, "verdicts": verdicts,
            "updates": [*previous.get("updates", []), update]}


def _shared(env: dict[str, Any]) -> bool:
    """Whether other work shared the machine: a load average above its number of cores."""
    loads = [x for x in (env.get("load_average_at_start"), env.get("load_average_at_end")) if is_finite(x)]
    return bool(loads) and max(loads) > (env.get("cpu_count") or 1)


def _machine(env: dict[str, Any]) -> str:
    """Where a report (or an update of it) ran, and whether other work shared the machine."""
    return (f"{env['device']}, {env['cpu_count']} CPU cores, {env['torch_threads']} torch "
            f"thread{'' if env['torch_threads'] == 1 else 's'}; load average "
            f"{fmt(env.get('load_average_at_start'), 1)} at the start, {fmt(env.get('load_average_at_end'), 1)} at "
            "the end: " + ("above the number of cores, other work shared the machine and every time is inflated"
                           if _shared(env) else "at most the number of cores: the evaluation had the machine to itself"))


def _registered() -> list[tuple[Section, int]]:
    """Every registered section with the number of its first heading: numbers follow the registry, run
    or not, so a section keeps its number from one report to the next."""
    out, number = [], 1
    for name in section_names():
        section = load_section(name)
        out.append((section, number))
        number += len(section.titles)
    return out


def _section_markdown(section: Section, number: int, result: dict[str, Any], verdicts: list[str]) -> list[str]:
    headings = [f"## {number + i}. {title}" for i, title in enumerate(section.titles)]
    if (line := status(result)) is not None:
        return [headings[0], "", line, ""]
    lines = []
    for heading, body in zip(headings, section.markdown(result, verdicts), strict=True):
        lines += [heading, "", *body]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    sections, verdicts = report["sections"], report["verdicts"]
    env = report["environment"]
    updates = "".join(f" Section{'s' if len(u['sections']) > 1 else ''} {', '.join(u['sections'])} re-made by "
                      f"`{u['command']}` on {u['generated_at']} in {u['seconds'] / 60:.1f} min ({_machine(u['environment'])})."
                      for u in report.get("updates", []))
    shared = any(_shared(e) for e in [env, *(u["environment"] for u in report.get("updates", []))])
    lines = [f"# Evaluation of run `{report['run']['name']}`", "",
             f"Made by `{report['command']}` on {report['generated_at']} in {report['seconds']['total'] / 60:.1f} min "
             f"({_machine(env)}).{updates} Run: "
             f"{report['run']['n_listings']} listings, {report['run']['n_photos']} photos, backbone "
             f"`{report['run']['backbone']}`, `{report['run']['weighting']}` weighting. Every number below comes from "
             "this run and the models trained for this report (all in `report.json`); the sentences comparing "
             "them with the papers are generated from those numbers. Times are wall clock"
             + (" and noisy on a shared machine." if shared else "."), "", "## Summary against the papers", ""]
    registered = _registered()
    summary = [v for section, _ in registered for v in verdicts.get(section.name, [])[:1]]
    summary += [v for section, _ in registered if section.summary_prefixes
                for v in verdicts.get(section.name, []) if v.startswith(section.summary_prefixes)]
    lines += bullets(list(dict.fromkeys(summary)) or ["No section was run."])
    for section, number in registered:
        if section.name in sections:
            lines += _section_markdown(section, number, sections[section.name], verdicts.get(section.name, []))
    lines += ["## Settings and timings", "", "Section wall times: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in report["seconds"].items() if k != "total") + ".", "",
        "Settings (all of them, and every model's epochs, are in `report.json`): `" + compact_json(report["config"])
        + "`", ""] + [f"Settings of the update of {', '.join(u['sections'])}: `{compact_json(u['config'])}`"
                      for u in report.get("updates", [])] + ([""] if report.get("updates") else [])
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path, copy_to: Path | None = None) -> Path:
    """Write figures, report.json and report.md into ``out_dir`` (and copy them to ``copy_to``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_files = [name for section, _ in _registered() for name in section.figure_files]
    for name in figure_files:  # figures of sections not run this time would be stale
        (out_dir / name).unlink(missing_ok=True)
    for name, result in report["sections"].items():
        if ran(result):
            load_section(name).figures(result, out_dir)
    write_json(out_dir / REPORT_JSON, clean_for_json(report))
    with atomic_path(out_dir / REPORT_MARKDOWN) as tmp:
        tmp.write_text(render_markdown(report))
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        for name in (REPORT_MARKDOWN, REPORT_JSON, *figure_files):
            (copy_to / name).unlink(missing_ok=True)
            if (out_dir / name).is_file():
                shutil.copyfile(out_dir / name, copy_to / name)
    return out_dir / REPORT_MARKDOWN
