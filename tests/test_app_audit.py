"""AppTest: the Audit page (suspects ranked by out-of-fold predictions, photo evidence, decisions, CSV export)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from gallery_core.app import decisions, evidence
from gallery_core.artifacts.run import Run

pytest_plugins = ["conftest_app"]

EFFECT = re.compile(r"^:(red|green|gray)\[\*\*([+-]\d\.\d+|no effect)\*\* (against|for|neither|only photo)\] · photo (\d+)$")


def evidence_cells(at) -> list[tuple[str, float, str, int]]:
    """(colour, effect, side, position) of every photo of the evidence view, in page order."""
    cells = []
    for markdown in at.markdown:
        match = EFFECT.match(markdown.value)
        if match:
            colour, effect, side, position = match.groups()
            cells.append((colour, float("nan") if effect == "no effect" else float(effect), side, int(position)))
    return cells


@pytest.fixture
def private_app(run_copier, monkeypatch, new_app):
    """The app over a private copy of the tiny run (these tests write decisions into it)."""
    root = run_copier("demo")
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(root.parent))

    def _open():
        at = new_app()
        at.run()
        at.switch_page("ui/pages/audit.py").run()
        return at

    return root, _open


def test_suspects_are_ranked_by_out_of_fold_suspicion(open_page):
    at = open_page("ui/pages/audit.py")
    assert not at.exception
    assert at.markdown[0].value.startswith("**Find recorded attributes that the photos contradict.**")
    assert at.selectbox(key="audit_task").value == "is_chain"
    table = at.dataframe[0].value
    assert len(table) == min(25, int(at.number_input(key="audit_n").max))
    assert table["suspicion"].is_monotonic_decreasing
    assert ((table["suspicion"] - (1 - table["p_recorded"])).abs() < 1e-9).all()
    assert table["photos"].str.startswith("data:image/jpeg;base64,").all()  # gallery thumbnails
    assert table["open"].str.fullmatch(r"listing\?listing=L\d+").all()
    assert at.get("download_button")[0].proto.label == "Download 25 listings as CSV"  # selection_actions


def test_the_top_suspects_photos_are_ranked_by_their_evidence(open_page, app_artifacts):
    at = open_page("ui/pages/audit.py")
    top = at.dataframe[0].value.iloc[0]
    assert at.selectbox(key="audit_listing").value == top["listing_id"]
    cells = evidence_cells(at)
    run = Run(app_artifacts / "demo")
    expected = evidence.photo_evidence(run, run.task("is_chain"), top["listing_id"]).photos
    assert [c[3] for c in cells] == expected["position"].tolist()  # ranked as the evidence ranks them
    effects = [c[1] for c in cells]
    assert effects == sorted(effects)  # most against first
    assert all((colour == "red") == (side == "against") for colour, _, side, _ in cells)
    assert len(at.image) == len(cells)
    assert any("P(recorded) =" in m.value for m in at.markdown)


def test_a_regression_task_is_scored_in_residual_stds(open_page):
    at = open_page("ui/pages/audit.py")
    at.selectbox(key="audit_task").set_value("price").run()
    assert not at.exception
    assert "residual standard deviation" in " ".join(m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert "p_recorded" not in table.columns and table["suspicion"].is_monotonic_decreasing
    at.number_input(key="audit_n").set_value(3).run()
    assert len(at.dataframe[0].value) == 3
    assert evidence_cells(at)  # evidence in the task's unit


def test_decisions_persist_across_a_restart_and_can_be_undone(private_app):
    root, open_audit = private_app
    at = open_audit()
    listing_id = at.selectbox(key="audit_listing").value
    at.button(key="audit_wrong").click().run()
    assert not at.exception
    saved = decisions.AuditDecisions(root).get(listing_id, "is_chain")
    assert saved["decision"] == "wrong" and saved["corrected"] in ("0", "1")

    again = open_audit()  # a new session of a new server: only the file remembers
    table = again.dataframe[0].value
    assert table.loc[table["listing_id"] == listing_id, "decision"].item() == "wrong"
    assert any("marked wrong" in s.value for s in again.success)
    corrections = again.get("download_button")[-1]
    assert "1 values marked wrong" in corrections.proto.label
    again.radio(key="audit_show").set_value("marked wrong").run()
    assert again.dataframe[0].value["listing_id"].tolist() == [listing_id]

    again.button(key="audit_undo").click().run()
    assert not again.exception
    assert decisions.AuditDecisions(root).get(listing_id, "is_chain") is None


def test_confirming_marks_the_row_and_the_undecided_filter_hides_it(private_app):
    root, open_audit = private_app
    at = open_audit()
    listing_id = at.selectbox(key="audit_listing").value
    at.button(key="audit_confirm").click().run()
    assert decisions.AuditDecisions(root).get(listing_id, "is_chain")["decision"] == "confirmed"
    at.radio(key="audit_show").set_value("undecided").run()
    assert listing_id not in at.dataframe[0].value["listing_id"].tolist()


def test_a_corrupt_decisions_file_is_reported_and_kept(private_app):
    root, open_audit = private_app
    path = decisions.legacy_csv_path(root)  # the CSV file of before the database, edited by hand
    path.parent.mkdir()
    path.write_text("not,a,decisions,file\n")
    at = open_audit()
    assert not at.exception
    assert f"{path}, line 1" in at.error[0].value
    assert not [b for b in at.button if b.key == "audit_confirm"]  # deciding is off
    assert path.read_text() == "not,a,decisions,file\n"
    assert isinstance(at.dataframe[0].value, pd.DataFrame)  # the audit itself still works


def test_the_suspects_selection_csv_carries_the_audit_columns(app_artifacts):
    from gallery_core.app import audit
    from gallery_core.app.selection import selection_table

    run = Run(app_artifacts / "demo")
    task = run.task("property_type")
    suspects = audit.suspicion_table(task, run.listings, run.predictions).head(5).assign(decision="")
    table = selection_table(run, suspects["listing_id"].tolist(), audit.selection_extra(suspects))
    assert table["listing_id"].tolist() == suspects["listing_id"].tolist()
    assert table["audit_rank"].tolist() == [1, 2, 3, 4, 5]
    assert {"audit_recorded", "audit_photos_say", "audit_p_recorded", "audit_suspicion", "audit_decision"} <= set(table)


def test_the_suggested_correction_is_what_the_photos_say_where_it_differs():
    from gallery_core.app.audit import suggested_value
    from gallery_core.data.tasks import TaskSpec

    binary = TaskSpec("is_chain", "is_chain", "binary")
    multiclass = TaskSpec("city", "city", "multiclass", ("A", "B"))
    regression = TaskSpec("price", "price", "regression")
    assert suggested_value(binary, "1", 0.2) == "0" and suggested_value(binary, "1", 0.9) == ""
    assert suggested_value(multiclass, "A", "B") == "B" and suggested_value(multiclass, "A", "A") == ""
    assert suggested_value(regression, 738.46, 248.5512) == "248.55"
    assert suggested_value(regression, 1.0, 1234567.0) == "1234567"
    assert suggested_value(binary, "1", float("nan")) == ""
