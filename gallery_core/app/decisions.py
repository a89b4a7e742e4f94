"""Audit decisions: a person's verdict on a recorded attribute, kept per run in a database that outlives the app.

``<run>/user/audit_decisions.sqlite`` holds one row per (listing, task) decided: the recorded value, the
decision (``confirmed``: the recorded value is right; ``wrong``: it is not, with the corrected value when
one is known), when it was made (UTC) and by whom (the signed-in user, when the app knows one). The ``user/``
folder is the user's, not the build's: it is not in the manifest, so loading and checking a run ignore it and
a rebuild never touches it.

Why SQLite: several people audit one run at once, from browser sessions of one server (threads) or of
several server processes. A file that is re-read, changed and renamed into place loses every decision but
one when they land together (measured before this store: 15 of 16 threads' decisions lost). SQLite's own
locks make each decision one transaction: ``BEGIN IMMEDIATE`` takes the write lock before anything is read,
writers queue behind it up to ``BUSY_TIMEOUT_S``, and WAL mode lets readers (every rerun of the Audit page)
read the last committed state without waiting for a writer. A writer killed mid-transaction leaves nothing
behind: its lock goes with the process and its uncommitted rows are rolled back on the next open.

The CSV file of before (``audit_decisions.csv``) is imported once, on first open, and renamed to
``audit_decisions.imported-<UTC time>.csv`` as a backup; a decision already in the database wins over the
file's. A CSV that cannot be read is neither imported nor moved (``DecisionFileError`` names file and line).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from gallery_core.app.decisions_csv import (
    COLUMNS as CSV_COLUMNS,
)
from gallery_core.app.decisions_csv import (
    CONFIRMED,
    DECISIONS,
    TIME_FORMAT,
    WRONG,
    DecisionFileError,
    read_decisions_csv,
)
from gallery_core.errors import UsageError

__all__ = ["AuditDecisions", "CONFIRMED", "WRONG", "DECISIONS", "COLUMNS", "DecisionFileError",
           "decisions_path", "legacy_csv_path", "now_utc"]

USER_DIR = "user"
DATABASE_FILE = "audit_decisions.sqlite"
LEGACY_CSV = "audit_decisions.csv"
COLUMNS = [*CSV_COLUMNS, "decided_by"]
CORRECTIONS_COLUMNS = ["listing_id", "column", "recorded", "corrected", "decided_at"]
# How long a writer waits for another one's transaction before giving up: a decision's transaction takes
# milliseconds, so only a stuck process (or a disk that stopped) makes a person wait this long.
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1
# "column" is an SQL keyword: the table calls it column_name; the DataFrame and CSV keep "column".
_SQL_COLUMNS = ["listing_id", "task", "column_name", "recorded", "decision", "corrected", "decided_at", "decided_by"]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decisions (
    listing_id TEXT NOT NULL, task TEXT NOT NULL, column_name TEXT NOT NULL, recorded TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('{CONFIRMED}', '{WRONG}')), corrected TEXT NOT NULL,
    decided_at TEXT NOT NULL, decided_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (listing_id, task)
);
PRAGMA user_version = {SCHEMA_VERSION};
"""
_UPSERT = (f"INSERT INTO decisions ({', '.join(_SQL_COLUMNS)}) VALUES ({', '.join('?' * len(_SQL_COLUMNS))}) "
           "ON CONFLICT (listing_id, task) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _SQL_COLUMNS[2:]))


def decisions_path(run_root: str | Path) -> Path:
    """The run's decisions database."""
    return Path(run_root) / USER_DIR / DATABASE_FILE


def legacy_csv_path(run_root: str | Path) -> Path:
    """The CSV file that held the decisions before the database (imported once, then kept as a backup)."""
    return Path(run_root) / USER_DIR / LEGACY_CSV


def now_utc() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


class AuditDecisions:
    """The decisions of one run. ``AuditDecisions(run_root)`` opens (creating when needed) the database and
    reads its decisions into ``table``; ``decide``/``undo`` are one transaction each, committed at once.

    ``read_only=True`` never creates or changes a file (the app's read-only mode): a run without a database
    has no decisions (or those of its legacy CSV), and ``decide``/``undo`` raise ``UsageError``.
    ``DecisionFileError`` when the database or the legacy CSV cannot be read (naming the file)."""

    def __init__(self, run_root: str | Path, read_only: bool = False):
        self.path = decisions_path(run_root)
        self.csv_path = legacy_csv_path(run_root)
        self.read_only = read_only
        if not read_only:
            self._open_database()
        self.reload()

    # --- reading ---

    def reload(self) -> None:
        """Read every decision again (another session or process may have decided since)."""
        if not self.path.exists():  # read-only, nothing decided in the database yet
            self.table = read_decisions_csv(self.csv_path).assign(decided_by="")[COLUMNS]
            return
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_SQL_COLUMNS)} FROM decisions ORDER BY decided_at, rowid").fetchall()
        self.table = pd.DataFrame(rows, columns=COLUMNS, dtype=object)  # (decisions, COLUMNS)

    def get(self, listing_id: str, task: str) -> dict[str, str] | None:
        """The decision on one listing's task, or None (as of the last ``reload``)."""
        match = self.table[(self.table["listing_id"] == listing_id) & (self.table["task"] == task)]
        return None if match.empty else match.iloc[0].to_dict()

    def for_task(self, task: str) -> pd.DataFrame:
        return self.table[self.table["task"] == task].reset_index(drop=True)

    def corrections(self) -> pd.DataFrame:
        """The values marked wrong: listing_id, column, recorded, corrected, decided_at."""
        return self.table[self.table["decision"] == WRONG][CORRECTIONS_COLUMNS].reset_index(drop=True)

    def corrections_csv(self) -> str:
        return self.corrections().to_csv(index=False)

    # --- writing: one transaction each ---

    def decide(self, listing_id: str, task: str, column: str, recorded: object, decision: str,
               corrected: object = None, decided_at: str | None = None, decided_by: str | None = None,
               ) -> dict[str, str]:
        """Record (or replace: the later decision wins) the decision on one listing's task; returns the row."""
        self._refuse_if_read_only()
        if decision not in DECISIONS:
            raise UsageError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if decision == CONFIRMED:
            corrected = None
        row = {"listing_id": str(listing_id), "task": str(task), "column": str(column), "recorded": _text(recorded),
               "decision": decision, "corrected": _text(corrected), "decided_at": decided_at or now_utc(),
               "decided_by": decided_by or ""}
        with self._transaction() as db:
            db.execute(_UPSERT, [row[c] for c in COLUMNS])
        self.reload()
        return row

    def undo(self, listing_id: str, task: str) -> dict[str, str] | None:
        """Forget the decision on one listing's task; returns it, or None if there was none."""
        self._refuse_if_read_only()
        with self._transaction() as db:
            found = db.execute(f"SELECT {', '.join(_SQL_COLUMNS)} FROM decisions WHERE listing_id = ? AND task = ?",
                               (str(listing_id), str(task))).fetchone()
            if found is not None:
                db.execute("DELETE FROM decisions WHERE listing_id = ? AND task = ?", (str(listing_id), str(task)))
        self.reload()
        return None if found is None else dict(zip(COLUMNS, found, strict=True))

    # --- the database ---

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        """A new connection (one per operation: Streamlit runs sessions on threads, and a connection must not
        cross threads). Autocommit mode: transactions are the explicit ``BEGIN IMMEDIATE`` of ``_transaction``."""
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.read_only else 'rw'}"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a file that is not a database fails here
        except sqlite3.DatabaseError as err:
            raise DecisionFileError(f"{self.path}: cannot be read as the audit decisions database ({err}); move "
                                    "it aside to start a new one (nothing is written to it until then)") from err
        return contextlib.closing(db)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the write lock is taken before anything is read (``IMMEDIATE``), so two
        writers queue instead of one failing at commit; committed on success, rolled back on any error."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _open_database(self) -> None:
        """Create the database when missing (WAL mode, the schema) and import a legacy CSV file if there is one."""
        legacy = read_decisions_csv(self.csv_path) if self.csv_path.exists() else None  # checked before any write
        if not self.path.exists():
            _create_database(self.path)
        with self._connect() as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # a database made by another tool
                db.execute("PRAGMA journal_mode = WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise DecisionFileError(f"{self.path}: schema version {version}, this gallery-core reads version "
                                    f"{SCHEMA_VERSION}; open it with the gallery-core that made it, or move it aside")
        if legacy is not None:
            self._import_legacy(legacy)

    def _import_legacy(self, legacy: pd.DataFrame) -> None:
        """The CSV's decisions into the database (those already decided there win: they are newer), then the
        CSV renamed aside. Several processes may do this at once: each insert is idempotent, and only one
        rename succeeds."""
        with self._transaction() as db:
            db.executemany(f"INSERT OR IGNORE INTO decisions ({', '.join(_SQL_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(_SQL_COLUMNS))})",
                           [[*row, ""] for row in legacy[CSV_COLUMNS].itertuples(index=False, name=None)])
        backup = self.csv_path.with_name(f"audit_decisions.imported-{now_utc().replace(':', '')}.csv")
        with contextlib.suppress(FileNotFoundError):  # another process has just moved it
            os.replace(self.csv_path, backup)

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise UsageError("the app is in read-only mode: audit decisions cannot be changed")


def _create_database(path: Path) -> None:
    """A new database, complete (schema, WAL mode) before it appears: made under a temporary name and linked into
    place, which fails when another process got there first. Sessions opening a fresh run at the same moment
    then never see a half-made database, nor switch it to WAL under each other (SQLite answers "database is
    locked" at once, without its busy wait, to a connection that meets that switch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")  # persistent: every later connection reads in WAL mode
            for statement in (s.strip() for s in _SCHEMA.split(";")):
                if statement:
                    db.execute(statement)
        finally:
            db.close()  # the last connection: SQLite checkpoints and removes the temporary -wal and -shm files
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another session created it first: use theirs
        except OSError:  # a file system without hard links: a rename, unless it has appeared meanwhile
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _text(value: object) -> str:
    """A value as the table holds it: text, blank for missing, integral floats without '.0' (a class '3')."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
