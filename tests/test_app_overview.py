"""AppTest: the Overview page, the run picker, and the message every page shows without artifacts."""

from __future__ import annotations

import pytest

from ui import navigation

pytest_plugins = ["conftest_app"]

PAGES = [p.script for p in navigation.PAGES]


def test_overview_summarises_the_run(open_page, n_tasks):
    at = open_page()
    assert not at.exception
    assert at.title[0].value == "Overview"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Listings"] == "40"
    assert metrics["Tasks"] == str(n_tasks)
    assert metrics["Tasks beating their trivial baseline"].endswith(f"/ {n_tasks}")
    assert "efficientnet_lite0" in " ".join(m.value for m in at.markdown)
    assert "Every artifact is present" in at.success[0].value
    tasks_table = at.dataframe[0].value
    assert {"task", "kind", "metric", "model", "baseline"} <= set(tasks_table.columns)
    assert set(tasks_table["kind"]) == {"binary", "multiclass", "regression"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_explains_how_to_build_a_run_when_there_is_none(page, new_app, tmp_path, monkeypatch):
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(tmp_path / "empty"))
    at = new_app().run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception
    assert "No built run found" in at.warning[0].value
    commands = at.code[0].value
    assert "make demo" in commands and "python -m gallery_core build --catalogue DIR --out artifacts/NAME" in commands


def test_a_damaged_run_is_explained_not_raised(run_copier, new_app, monkeypatch):
    run = run_copier("demo")
    with open(run / "predictions.parquet", "ab") as f:
        f.write(b"tampered")
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(run.parent))
    at = new_app().run()
    assert not at.exception
    problems = " ".join(e.value for e in at.error)
    assert "predictions.parquet: checksum differs" in problems
    files = at.dataframe[0].value
    assert not files.loc[files["file"] == "predictions.parquet", "checksum_ok"].item()
    at.switch_page("ui/pages/map.py").run()
    assert not at.exception
    assert "cannot be opened" in at.error[0].value


def test_the_sidebar_picks_the_run_for_every_page(run_copier, new_app, monkeypatch):
    run_copier("demo")
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(run_copier("second").parent))
    at = new_app().run()
    picker = at.sidebar.selectbox[0]
    assert picker.options == ["demo", "second"] and picker.value == "demo"
    picker.set_value("second").run()
    assert "Run **second**" in at.markdown[0].value
    at.switch_page("ui/pages/model.py").run()
    assert at.sidebar.selectbox[0].value == "second"
    assert "second" in at.code[0].value  # the evaluate command names the picked run's folder


@pytest.mark.parametrize("page", ["ui/pages/overview.py", "ui/pages/map.py", "ui/pages/model.py"])
def test_the_page_says_in_one_line_what_it_is_for_and_what_to_do_first(open_page, page):
    at = open_page(page)
    assert not at.exception
    elements = [node for node in at.main if node.type in ("title", "caption", "markdown", "subheader", "header")]
    title = [node.type for node in elements].index("title")
    line = elements[title + 1]  # right under the title, before anything else is said
    assert line.type == "caption" and "\n" not in line.value and len(line.value) < 250
