"""The audit decisions' CSV file of before the database (``<run>/user/audit_decisions.csv``): read and checked
line by line, so that ``gallery_core.app.decisions`` can import it once into the database.

A file that cannot be read as decisions raises ``DecisionFileError`` naming the file and line, and is never
imported, moved or overwritten: nothing a person decided is lost to a bad edit of the file.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pandas as pd

from gallery_core.errors import UsageError

CONFIRMED = "confirmed"
WRONG = "wrong"
DECISIONS = (CONFIRMED, WRONG)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The CSV file's columns (the database has one more: decided_by).
COLUMNS = ["listing_id", "task", "column", "recorded", "decision", "corrected", "decided_at"]


class DecisionFileError(UsageError):
    """The decisions file exists but is not a decisions file; the message names the file and line."""


def read_decisions_csv(path: str | Path) -> pd.DataFrame:
    """The decisions in the CSV file ``path`` (COLUMNS, all text; empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS, dtype=object)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DecisionFileError(f"{path}: cannot be read as audit decisions ({err}); fix or move the file "
                                "(nothing is imported from it until then)") from err
    if not rows or rows[0] != COLUMNS:
        raise DecisionFileError(f"{path}, line 1: the header must be {','.join(COLUMNS)}; got "
                                f"{','.join(rows[0]) if rows else 'an empty file'}. Fix or move the file "
                                "(nothing is imported from it until then)")
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        problem = _row_problem(row, seen, line)
        if problem:
            raise DecisionFileError(f"{path}, line {line}: {problem}. Fix or move the file (nothing is imported "
                                    "from it until then)")
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
        datetime.strptime(record["decided_at"], TIME_FORMAT)
    except ValueError:
        return f"decided_at {record['decided_at']!r} is not a UTC time like 2026-01-31T12:00:00Z"
    pair = (record["listing_id"], record["task"])
    if pair in seen:
        return f"listing {pair[0]} task {pair[1]} was already decided on line {seen[pair]}"
    seen[pair] = line
    return None
