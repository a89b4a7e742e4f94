"""The report of ``bench_app_load.py``: what one measurement is, the Markdown section it writes into
docs/benchmarks/app.md (between its markers, the rest of the file kept)."""

from __future__ import annotations

import datetime
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

CACHED_GOAL_S = 0.2
SECTION_START = "<!-- bench_app_load: start -->"
SECTION_END = "<!-- bench_app_load: end -->"


@dataclass
class Measure:
    phase: str
    what: str
    sessions: int
    server_cpu_s: float  # per session
    client_cpu_s: float  # per session
    walls: list[float] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return self.phase in ("new session", "1st visit", "2nd visit", "deep link")


def _cell(m: Measure | None) -> str:
    if m is None:
        return "–"
    return f"{m.server_cpu_s:.3f} · {statistics.median(m.walls):.2f}/{max(m.walls):.2f}"


def version_table(measures: list[Measure], sessions: list[int]) -> list[str]:
    keys = list(dict.fromkeys((m.phase, m.what) for m in measures))
    by = {(m.phase, m.what, m.sessions): m for m in measures}
    lines = ["| phase | page / action | " + " | ".join(f"{n} session{'s' if n > 1 else ''}" for n in sessions) + " |",
             "|---|---|" + "---:|" * len(sessions)]
    for phase, what in keys:
        lines.append(f"| {phase} | {what} | " + " | ".join(_cell(by.get((phase, what, n))) for n in sessions) + " |")
    return lines


def summary_rows(label: str, measures: list[Measure], sessions: list[int]) -> list[str]:
    rows = []
    for n in sessions:
        cached = [m for m in measures if m.sessions == n and m.cached]
        interactions = [m for m in measures if m.sessions == n and m.phase == "interaction"]
        if not cached or not interactions:
            continue
        cpu = [m.server_cpu_s for m in cached]
        walls = [w for m in cached for w in m.walls]
        worst = max(cached, key=lambda m: m.server_cpu_s)
        decisions = [m.server_cpu_s for m in interactions if "audit decision" in m.what]
        decision = f"{statistics.mean(decisions):.3f}" if decisions else "–"
        rows.append(f"| {label} | {n} | {statistics.mean(cpu):.3f} | {worst.server_cpu_s:.3f} ({worst.phase}: "
                    f"{worst.what}) | {sum(c < CACHED_GOAL_S for c in cpu)} / {len(cpu)} | "
                    f"{statistics.mean(m.server_cpu_s for m in interactions):.3f} | {decision} | "
                    f"{statistics.median(walls):.2f} / {max(walls):.2f} | "
                    f"{statistics.mean(m.client_cpu_s for m in cached):.2f} |")
    return rows


def markdown_section(versions: dict[str, list[Measure]], sessions: list[int], command: str, machine: str,
                     started: datetime.datetime, run: Path, quick: bool) -> str:
    quick_note = (" This was a `--quick` run (1 session), a check that the benchmark works; the full "
                  "measurement is `python benchmarks/bench_app_load.py --compare REV` on an otherwise idle machine."
                  if quick else "")
    lines = [SECTION_START, "## Server CPU per page load and per interaction, 1 to 16 concurrent sessions", "",
             f"Made by `{command}` on {started:%Y-%m-%d %H:%M} (local time), run `{run.name}`. "
             f"Machine: {machine}. The machine was shared with other jobs, so wall times are indicative; "
             f"CPU seconds of the server process are the measure.{quick_note}", "",
             "Method: a real `streamlit run app.py` server (from the repository root, so `.streamlit/config.toml` "
             "applies) and headless Chromium tabs driven by Playwright, one Streamlit session per tab, all in one "
             "browser profile (static JavaScript cached, as for a returning user). For each action, every tab does "
             "it at the same time; the server's CPU time (utime + stime of its process, all threads, from "
             "`/proc/<pid>/stat`) from before the action until the server is idle again after every tab has drawn "
             "the page (photo requests included) is divided by the number of tabs. The browser's CPU is counted "
             "apart (last column of the summary). Wall time: per tab, until the title is shown, the script run has "
             "finished and the images have loaded; with many tabs it includes waiting for Chromium on the same "
             "two cores. A fresh server (caches empty) is started for every number of sessions; one tab first opens "
             "every page by its URL (*fresh server*); tabs in browser profiles of their own open the app (*new "
             "browser*: a first-time visitor, whose browser downloads Streamlit's JavaScript); then the tabs of "
             "one profile open the app (*new session*), visit every page "
             "from the sidebar (*1st visit*, the Listing page through the first suspect on Audit), again (*2nd visit*), "
             "do one interaction per page, and finally open each page by its URL in a new session (*deep link*). "
             f"A cached page load is any visit except the fresh-server ones; the goal is under {CACHED_GOAL_S} "
             "server CPU-seconds.", ""]
    lines += ["### Summary", "",
              "| app | sessions | cached page load: mean server CPU-s | slowest | under the goal | interaction: mean "
              "server CPU-s | audit decision: server CPU-s | wall per load, median / max (s) | browser CPU-s per load |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for label, measures in versions.items():
        lines += summary_rows(label, measures, sessions)
    for label, measures in versions.items():
        lines += ["", f"### {label}", "",
                  "Server CPU-seconds per session · wall seconds per session (median/max).", ""]
        lines += version_table(measures, sessions)
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Put the section into the file, replacing an earlier one; the rest of the file is kept."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END) + "\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
