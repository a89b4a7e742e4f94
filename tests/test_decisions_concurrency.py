"""Audit decisions under concurrent use: threads (Streamlit's sessions of one server) and processes (several
server workers) deciding at the same moment lose nothing, the later of two decisions on one listing wins,
and a writer killed mid-transaction loses nothing that was committed and blocks no one.

Before the database, the same 16 threads lost 15 of 16 decisions in every round, and 8 processes 6 of 8."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gallery_core.app import decisions
from gallery_core.app.decisions import AuditDecisions

ROUNDS = 5
REPO_ROOT = Path(__file__).resolve().parent.parent


def _decide(root: Path, listing_id: str, barrier, decision: str = decisions.CONFIRMED) -> None:
    barrier.wait()  # every session opens the store and decides at the same moment (a fresh store: it is created too)
    AuditDecisions(root).decide(listing_id, "city", "city", "Lakeport", decision, decided_by=listing_id)


def _run_threads(root: Path, listing_ids: list[str], decisions_of: list[str] | None = None) -> None:
    barrier = threading.Barrier(len(listing_ids))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            _decide(root, listing_ids[i], barrier, decisions_of[i] if decisions_of else decisions.CONFIRMED)
        except BaseException as err:  # noqa: BLE001 -- reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(listing_ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_16_threads_deciding_at_once_lose_nothing(tmp_path):
    ids = [f"L{i:06d}" for i in range(16)]
    for round_ in range(ROUNDS):
        root = tmp_path / f"round-{round_}"
        _run_threads(root, ids)
        table = AuditDecisions(root).table
        assert sorted(table["listing_id"]) == ids, f"round {round_}"
        assert (table["decided_by"] == table["listing_id"]).all()


def _process_rounds(roots: list[str], listing_id: str, barrier) -> None:
    for root in roots:
        _decide(Path(root), listing_id, barrier)


def test_8_processes_deciding_at_once_lose_nothing(tmp_path):
    # fork: a child starts in milliseconds with everything imported (spawn would import pandas 8 times)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    roots = [str(tmp_path / f"round-{r}") for r in range(ROUNDS)]
    ids = [f"L{i:06d}" for i in range(8)]
    workers = [context.Process(target=_process_rounds, args=(roots, i, barrier)) for i in ids]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 8
    for root in roots:
        assert sorted(AuditDecisions(root).table["listing_id"]) == ids, root


def test_the_later_decision_on_one_listing_wins_and_nothing_else_is_lost(tmp_path):
    one, two = AuditDecisions(tmp_path), AuditDecisions(tmp_path)  # two sessions, both opened before deciding
    one.decide("L000001", "city", "city", "Lakeport", decisions.WRONG, "Harbourton", decided_by="one")
    two.decide("L000002", "city", "city", "Lakeport", decisions.CONFIRMED, decided_by="two")
    two.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED, decided_by="two")
    table = AuditDecisions(tmp_path).table.set_index("listing_id")
    assert table.loc["L000001", "decision"] == "confirmed" and table.loc["L000001", "decided_by"] == "two"
    assert table.loc["L000001", "corrected"] == ""
    assert sorted(table.index) == ["L000001", "L000002"]
    one.reload()  # the first session sees the second's decisions on its next read (the Audit page's next rerun)
    assert one.get("L000001", "city")["decided_by"] == "two"

    # At the same moment: 8 sessions decide one listing, 8 others decide their own. One verdict on the
    # shared listing remains (whichever committed last), and every other decision is there.
    shared = ["L000009"] * 8
    own = [f"L1{i:05d}" for i in range(8)]
    verdicts = [decisions.CONFIRMED, decisions.WRONG] * 4 + [decisions.CONFIRMED] * 8
    _run_threads(tmp_path, shared + own, verdicts)
    table = AuditDecisions(tmp_path).table
    assert (table["listing_id"] == "L000009").sum() == 1
    assert set(own) <= set(table["listing_id"]) and len(table) == 2 + 1 + 8


KILLED_WRITER = """
import sys, time
from gallery_core.app import decisions
store = decisions.AuditDecisions(sys.argv[1])
with store._transaction() as db:
    db.execute(decisions._UPSERT, ["L-killed", "city", "city", "Lakeport", "confirmed", "", decisions.now_utc(), ""])
    print("in the transaction", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_writer_killed_mid_transaction_loses_nothing_and_blocks_no_one(tmp_path):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "in the transaction"  # it holds the write lock now
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    store.decide("L000002", "city", "city", "Lakeport", decisions.WRONG, "Harbourton")  # the lock died with it
    assert sorted(AuditDecisions(tmp_path).table["listing_id"]) == ["L000001", "L000002"]  # its row rolled back
