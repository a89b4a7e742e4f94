"""Audit decisions: a person's verdict on a recorded attribute, kept per run in a file that outlives the app.

``<run>/user/audit_decisions.csv`` holds one row per (listing, task) decided: the recorded value, the
decision (``confirmed``: the recorded value is right; ``wrong``: it is not, with the corrected value when
one is known) and when it was made (UTC). The ``user/`` folder is the user's, not the build's: it is not in
the manifest, so loading and checking a run ignore it and a rebuild never touches it.

Every change re-reads the file first (another browser session may have decided since) and writes the whole
file atomically (a temporary file renamed into place), so a crash never leaves half a file. A file that
cannot be read as decisions raises ``DecisionFileError`` naming the file and line, and is never overwritten:
nothing a person decided is lost to a bad edit of the file.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from gallery_core.artifacts.store import atomic_path
from gallery_core.errors import UsageError

USER_DIR = "user"
DECISIONS_FILE = "audit_decisions.csv"
CONFIRMED = "confirmed"
WRONG = "wrong"
DECISIONS = (CONFIRMED, WRONG)
COLUMNS = ["listing_id", "task", "column", "recorded", "decision", "corrected", "decided_at"]
CORRECTIONS_COLUMNS = ["listing_id", "column", "recorded", "corrected", "decided_at"]


class DecisionFileError(UsageError):
    """The decisions file exists but is not a decisions file; the message names the file and line."""


def decisions_path(run_root: str | Path) -> Path:
    return Path(run_root) / USER_DIR / DECISIONS_FILE


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_decisions(path: str | Path) -> pd.DataFrame:
    """The decisions in ``path`` (COLUMNS, all text; empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS, dtype=object)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DecisionFileError(f"{path}: cannot be read as audit decisions ({err}); fix or move the file "
                                "(nothing is written to it until then)") from err
    if not rows or rows[0] != COLUMNS:
        raise DecisionFileError(f"{path}, line 1: the header must be {','.join(COLUMNS)}; got "
                                f"{','.join(rows[0]) if rows else 'an empty file'}. Fix or move the file "
                                "(nothing is written to it until then)")
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        problem = _row_problem(row, seen, line)
        if problem:
            raise DecisionFileError(f"{path}, line {line}: {problem}. Fix or move the file (nothing is written to "
                                    "it until then)")
    return pd.DataFrame(rows[1:], columns=COLUMNS, dtype=object)


def _row_problem(row: list[str], seen: dict[tuple[str, str], int], line: int) -> str | None:
    if len(row) != len(COLUMNS):
        return f"{len(row)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)})"
    record = dict(zip(COLUMNS, row, strict=True))
    for column in ("listing_id", "task", "column"):
        if not record[column].strip():
            return f"empty {column}"
    if record["decision"] not in DECISIONS:
        return f"decision {record['decision']!r} is not one of {', '.join(DECISIONS)}"
    try:
        datetime.strptime(record["decided_at"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return f"decided_at {record['decided_at']!r} is not a UTC time like 2026-01-31T12:00:00Z"
    pair = (record["listing_id"], record["task"])
    if pair in seen:
        return f"listing {pair[0]} task {pair[1]} was already decided on line {seen[pair]}"
    seen[pair] = line
    return None


class AuditDecisions:
    """The decisions of one run. ``AuditDecisions(run_root)`` reads the file (``DecisionFileError`` when it
    is corrupt); ``decide``/``undo`` change it on disk at once."""

    def __init__(self, run_root: str | Path):
        self.path = decisions_path(run_root)
        self.table = read_decisions(self.path)  # (decisions, COLUMNS)

    def reload(self) -> None:
        self.table = read_decisions(self.path)

    def get(self, listing_id: str, task: str) -> dict[str, str] | None:
        """The decision on one listing's task, or None."""
        match = self.table[(self.table["listing_id"] == listing_id) & (self.table["task"] == task)]
        return None if match.empty else match.iloc[0].to_dict()

    def for_task(self, task: str) -> pd.DataFrame:
        return self.table[self.table["task"] == task].reset_index(drop=True)

    def decide(self, listing_id: str, task: str, column: str, recorded: object, decision: str,
               corrected: object = None, decided_at: str | None = None) -> dict[str, str]:
        """Record (or replace) the decision on one listing's task and write the file; returns the row."""
        if decision not in DECISIONS:
            raise UsageError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if decision == CONFIRMED:
            corrected = None
        row = {"listing_id": str(listing_id), "task": str(task), "column": str(column), "recorded": _text(recorded),
               "decision": decision, "corrected": _text(corrected), "decided_at": decided_at or now_utc()}
        self.reload()
        self.table = pd.concat([self._without(listing_id, task), pd.DataFrame([row], dtype=object)],
                               ignore_index=True)
        self._write()
        return row

    def undo(self, listing_id: str, task: str) -> dict[str, str] | None:
        """Forget the decision on one listing's task (written at once); returns it, or None if there was none."""
        self.reload()
        removed = self.get(listing_id, task)
        if removed is not None:
            self.table = self._without(listing_id, task)
            self._write()
        return removed

    def corrections(self) -> pd.DataFrame:
        """The values marked wrong: listing_id, column, recorded, corrected, decided_at."""
        return self.table[self.table["decision"] == WRONG][CORRECTIONS_COLUMNS].reset_index(drop=True)

    def corrections_csv(self) -> str:
        return self.corrections().to_csv(index=False)

    def _without(self, listing_id: str, task: str) -> pd.DataFrame:
        keep = ~((self.table["listing_id"] == str(listing_id)) & (self.table["task"] == str(task)))
        return self.table[keep].reset_index(drop=True)

    def _write(self) -> None:
        with atomic_path(self.path) as tmp:
            self.table[COLUMNS].to_csv(tmp, index=False)


def _text(value: object) -> str:
    """A value as the file holds it: text, blank for missing, integral floats without '.0' (a class '3')."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
