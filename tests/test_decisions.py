"""Audit decisions (gallery_core.app.decisions): a database per run that survives restarts, undo, corrections
CSV, the import of the CSV file of before. Concurrency: tests/test_decisions_concurrency.py."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from gallery_core.app import decisions, decisions_csv
from gallery_core.app.decisions import AuditDecisions, DecisionFileError
from gallery_core.errors import UsageError


def test_decisions_survive_a_restart(tmp_path):
    first = AuditDecisions(tmp_path)
    first.decide("L000001", "property_type", "property_type", "hotel", decisions.WRONG, "villa",
                 decided_at="2026-11-30T01:00:00Z")
    first.decide("L000002", "is_chain", "is_chain", 1.0, decisions.CONFIRMED)
    assert decisions.decisions_path(tmp_path) == tmp_path / "user" / "audit_decisions.sqlite"

    restarted = AuditDecisions(tmp_path)  # a new object reading the file, as after a server restart
    assert len(restarted.table) == 2
    assert restarted.get("L000001", "property_type") == {
        "listing_id": "L000001", "task": "property_type", "column": "property_type", "recorded": "hotel",
        "decision": "wrong", "corrected": "villa", "decided_at": "2026-11-30T01:00:00Z", "decided_by": ""}
    confirmed = restarted.get("L000002", "is_chain")
    assert confirmed["recorded"] == "1" and confirmed["corrected"] == ""  # a confirmed value needs no correction
    assert restarted.get("L000003", "is_chain") is None


def test_deciding_again_replaces_and_undo_forgets(tmp_path):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "city", "city", "Lakeport", decisions.WRONG, "Harbourton")
    store.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    assert len(store.table) == 1 and store.get("L000001", "city")["decision"] == "confirmed"
    assert store.undo("L000001", "city")["decision"] == "confirmed"
    assert store.undo("L000001", "city") is None
    assert AuditDecisions(tmp_path).table.empty


def test_two_sessions_do_not_overwrite_each_other(tmp_path):
    one, two = AuditDecisions(tmp_path), AuditDecisions(tmp_path)
    one.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    two.decide("L000002", "city", "city", "Lakeport", decisions.CONFIRMED)  # re-reads before writing
    assert set(AuditDecisions(tmp_path).table["listing_id"]) == {"L000001", "L000002"}


def test_corrections_csv_holds_the_values_marked_wrong(tmp_path):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "property_type", "property_type", "hotel", decisions.WRONG, "villa",
                 decided_at="2026-11-30T01:00:00Z")
    store.decide("L000002", "price", "price", 59.5, decisions.WRONG, 120.0, decided_at="2026-11-30T01:01:00Z")
    store.decide("L000003", "is_chain", "is_chain", 0, decisions.CONFIRMED)
    corrections = pd.read_csv(io.StringIO(store.corrections_csv()), dtype=str)
    assert list(corrections.columns) == ["listing_id", "column", "recorded", "corrected", "decided_at"]
    assert corrections.values.tolist() == [["L000001", "property_type", "hotel", "villa", "2026-11-30T01:00:00Z"],
                                           ["L000002", "price", "59.5", "120", "2026-11-30T01:01:00Z"]]


def test_a_failed_decision_leaves_the_database_as_it_was(tmp_path):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    with pytest.raises(OSError, match="No space"), store._transaction() as db:
        db.execute(decisions._UPSERT, ["L000002", "city", "city", "Lakeport", "confirmed", "", decisions.now_utc(), ""])
        raise OSError("No space left on device")  # fails after the row is written, before the commit
    assert AuditDecisions(tmp_path).table["listing_id"].tolist() == ["L000001"]
    store.decide("L000003", "city", "city", "Lakeport", decisions.CONFIRMED)  # the write lock was released
    with pytest.raises(UsageError, match="decision must be one of"):
        store.decide("L000004", "city", "city", "Lakeport", "maybe")


def test_who_decided_is_recorded(tmp_path):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED, decided_by="ana@example.com")
    store.decide("L000002", "city", "city", "Lakeport", decisions.CONFIRMED)
    assert AuditDecisions(tmp_path).get("L000001", "city")["decided_by"] == "ana@example.com"
    assert AuditDecisions(tmp_path).get("L000002", "city")["decided_by"] == ""
    assert list(pd.read_csv(io.StringIO(store.corrections_csv())).columns) == decisions.CORRECTIONS_COLUMNS


def test_the_csv_file_of_before_is_imported_once_and_kept_as_a_backup(tmp_path):
    csv_path = decisions.legacy_csv_path(tmp_path)
    csv_path.parent.mkdir()
    content = (",".join(decisions_csv.COLUMNS) + "\nL1,city,city,Lakeport,wrong,Harbourton,2026-11-30T01:00:00Z\n"
               "L2,city,city,Lakeport,confirmed,,2026-11-30T01:01:00Z\n")
    csv_path.write_text(content)
    store = AuditDecisions(tmp_path)
    assert store.get("L1", "city")["corrected"] == "Harbourton" and len(store.table) == 2
    assert not csv_path.exists()
    backups = list(csv_path.parent.glob("audit_decisions.imported-*.csv"))
    assert len(backups) == 1 and backups[0].read_text() == content
    store.decide("L1", "city", "city", "Lakeport", decisions.CONFIRMED)

    csv_path.write_text(content)  # the old file put back: the database's newer decision wins, nothing doubles
    again = AuditDecisions(tmp_path)
    assert again.get("L1", "city")["decision"] == "confirmed" and len(again.table) == 2


def test_read_only_never_writes(tmp_path):
    store = AuditDecisions(tmp_path, read_only=True)
    assert store.table.empty and not (tmp_path / "user").exists()
    with pytest.raises(UsageError, match="read-only"):
        store.decide("L1", "city", "city", "Lakeport", decisions.CONFIRMED)
    AuditDecisions(tmp_path).decide("L1", "city", "city", "Lakeport", decisions.CONFIRMED)
    viewer = AuditDecisions(tmp_path, read_only=True)
    assert viewer.get("L1", "city")["decision"] == "confirmed"
    with pytest.raises(UsageError, match="read-only"):
        viewer.undo("L1", "city")


def test_a_file_that_is_not_a_database_is_a_clear_error_and_kept(tmp_path):
    path = decisions.decisions_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database, it is a note someone saved here" * 40)
    before = path.read_bytes()
    with pytest.raises(DecisionFileError, match="cannot be read as the audit decisions database"):
        AuditDecisions(tmp_path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("content", "line", "says"), [
    ("listing_id,task\nL1,city\n", 1, "the header must be"),
    (",".join(decisions_csv.COLUMNS) + "\nL1,city,city,Lakeport,confirmed,,2026-11-30T01:00:00Z\nL2,city\n", 3,
     "2 fields, expected 7"),
    (",".join(decisions_csv.COLUMNS) + "\nL1,city,city,Lakeport,maybe,,2026-11-30T01:00:00Z\n", 2, "'maybe'"),
    (",".join(decisions_csv.COLUMNS) + "\nL1,city,city,Lakeport,wrong,Harbourton,yesterday\n", 2, "'yesterday'"),
    (",".join(decisions_csv.COLUMNS) + "\nL1,city,city,A,confirmed,,2026-11-30T01:00:00Z\n"
     "L1,city,city,A,confirmed,,2026-11-30T01:00:00Z\n", 3, "already decided on line 2"),
])
def test_a_corrupt_csv_file_is_named_with_its_line_and_kept(tmp_path, content, line, says):
    path = decisions.legacy_csv_path(tmp_path)
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(DecisionFileError) as raised:
        AuditDecisions(tmp_path)
    assert f"{path}, line {line}:" in str(raised.value) and says in str(raised.value)
    assert path.read_text() == content  # nothing lost: the file is not rewritten
    assert not decisions.decisions_path(tmp_path).exists()  # and nothing was created


def test_a_binary_csv_file_is_a_clear_error(tmp_path):
    path = decisions.legacy_csv_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DecisionFileError, match="cannot be read as audit decisions"):
        AuditDecisions(tmp_path)


def test_a_run_with_decisions_still_loads_and_checks(run_copy):
    from gallery_core.artifacts.check import check_run
    from gallery_core.artifacts.run import Run

    AuditDecisions(run_copy).decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    assert check_run(run_copy).ok
    Run(run_copy)  # verifies every file of the manifest
