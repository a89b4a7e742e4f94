"""Audit decisions (gallery_core.app.decisions): a file per run that survives restarts, undo, corrections CSV."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from gallery_core.app import decisions
from gallery_core.app.decisions import AuditDecisions, DecisionFileError


def test_decisions_survive_a_restart(tmp_path):
    first = AuditDecisions(tmp_path)
    first.decide("L000001", "property_type", "property_type", "hotel", decisions.WRONG, "villa",
                 decided_at="2026-11-30T01:00:00Z")
    first.decide("L000002", "is_chain", "is_chain", 1.0, decisions.CONFIRMED)
    assert decisions.decisions_path(tmp_path) == tmp_path / "user" / "audit_decisions.csv"

    restarted = AuditDecisions(tmp_path)  # a new object reading the file, as after a server restart
    assert len(restarted.table) == 2
    assert restarted.get("L000001", "property_type") == {
        "listing_id": "L000001", "task": "property_type", "column": "property_type", "recorded": "hotel",
        "decision": "wrong", "corrected": "villa", "decided_at": "2026-11-30T01:00:00Z"}
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


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    store = AuditDecisions(tmp_path)
    store.decide("L000001", "city", "city", "Lakeport", decisions.CONFIRMED)
    before = store.path.read_bytes()

    def fail_midway(self, path, **kwargs):
        Path(path).write_text("listing_id,task,col")  # half a file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_midway)
    with pytest.raises(OSError, match="No space"):
        store.decide("L000002", "city", "city", "Lakeport", decisions.CONFIRMED)
    assert store.path.read_bytes() == before
    assert [p.name for p in store.path.parent.iterdir()] == ["audit_decisions.csv"]  # no temporary file left


@pytest.mark.parametrize(("content", "line", "says"), [
    ("listing_id,task\nL1,city\n", 1, "the header must be"),
    (",".join(decisions.COLUMNS) + "\nL1,city,city,Lakeport,confirmed,,2026-11-30T01:00:00Z\nL2,city\n", 3,
     "2 fields, expected 7"),
    (",".join(decisions.COLUMNS) + "\nL1,city,city,Lakeport,maybe,,2026-11-30T01:00:00Z\n", 2, "'maybe'"),
    (",".join(decisions.COLUMNS) + "\nL1,city,city,Lakeport,wrong,Harbourton,yesterday\n", 2, "'yesterday'"),
    (",".join(decisions.COLUMNS) + "\nL1,city,city,A,confirmed,,2026-11-30T01:00:00Z\n"
     "L1,city,city,A,confirmed,,2026-11-30T01:00:00Z\n", 3, "already decided on line 2"),
])
def test_a_corrupt_file_is_named_with_its_line_and_kept(tmp_path, content, line, says):
    path = decisions.decisions_path(tmp_path)
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(DecisionFileError) as raised:
        AuditDecisions(tmp_path)
    assert f"{path}, line {line}:" in str(raised.value) and says in str(raised.value)
    assert path.read_text() == content  # nothing lost: the file is not rewritten


def test_a_binary_file_is_a_clear_error(tmp_path):
    path = decisions.decisions_path(tmp_path)
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
