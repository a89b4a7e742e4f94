"""AppTest: the Audit page (suspects ranked by out-of-fold predictions, thumbnails, CSV export)."""

from __future__ import annotations

pytest_plugins = ["conftest_app"]


def test_suspects_are_ranked_by_out_of_fold_suspicion(open_page):
    at = open_page("ui/pages/audit.py")
    assert not at.exception
    assert at.selectbox(key="audit_task").value == "is_chain"
    table = at.dataframe[0].value
    assert len(table) == min(25, int(at.number_input(key="audit_n").max))
    assert table["suspicion"].is_monotonic_decreasing
    assert ((table["suspicion"] - (1 - table["p_recorded"])).abs() < 1e-9).all()
    assert table["photos"].str.startswith("data:image/jpeg;base64,").all()  # gallery thumbnails
    assert table["open"].str.fullmatch(r"listing\?listing=L\d+").all()
    assert at.get("download_button")[0].proto.label == "Download these 25 suspects as CSV"
    assert len(at.image) == 5  # the five most suspicious galleries


def test_a_regression_task_is_scored_in_residual_stds(open_page):
    at = open_page("ui/pages/audit.py")
    at.selectbox(key="audit_task").set_value("price").run()
    assert not at.exception
    assert "residual standard deviation" in " ".join(m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert "p_recorded" not in table.columns and table["suspicion"].is_monotonic_decreasing
    at.number_input(key="audit_n").set_value(3).run()
    assert len(at.dataframe[0].value) == 3
