"""Acting on a selection: the CSV table, a catalogue subset that loads and builds, seed photos, and the
``selection_actions`` widget."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_config

from gallery_core.app.selection import (
    selection_photo_paths,
    selection_table,
    unique_ids,
    write_catalogue_subset,
)
from gallery_core.artifacts.run import Run
from gallery_core.data.catalogue import load_catalogue
from gallery_core.errors import UsageError
from gallery_core.names import pred_column, prob_column

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tiny_run) -> Run:
    return Run(tiny_run)


def some_ids(run: Run, n: int) -> list[str]:
    """Every third listing, last first: an order that is not the table's."""
    return list(run.listings["listing_id"].iloc[::3][:n])[::-1]


def test_selection_table_has_attributes_then_predictions_then_extra_in_the_given_order(run):
    ids = some_ids(run, 5)
    extra = pd.DataFrame({"listing_id": ids[::-1], "score": [0.5, 0.4, 0.3, 0.2, 0.1]})
    table = selection_table(run, ids + ids[:1], extra)  # a repeated id is one row
    clash = selection_table(run, ids, extra.assign(price=1.0))
    assert clash.columns[-2:].tolist() == ["score", "price_extra"] and clash["price_extra"].eq(1.0).all()
    assert table["listing_id"].tolist() == ids
    columns = table.columns.tolist()
    attributes = [c for c in run.listings.columns if c not in ("listing_id", "n_photos", "first_photo", "split")]
    assert columns[:1 + len(attributes)] == ["listing_id", *attributes]
    tasks = {t.kind: t for t in run.tasks}
    assert prob_column(tasks["binary"].name) in columns and pred_column(tasks["regression"].name) in columns
    predicted = columns[1 + len(attributes):-1]
    assert set(predicted) == set(run.predictions.columns) - {"listing_id"}
    task_order = [t.name for t in run.tasks]
    positions = [task_order.index(c.split("__")[0]) for c in predicted]
    assert positions == sorted(positions)  # grouped task by task, in the run's task order
    assert columns[-1] == "score" and table["score"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]
    row = run.row_of_listing[ids[0]]
    task = tasks["regression"]
    assert table[task.column].iloc[0] == run.listings[task.column].iloc[row] or pd.isna(table[task.column].iloc[0])
    assert table[pred_column(task.name)].iloc[0] == pytest.approx(run.predictions[pred_column(task.name)].iloc[row])
    with pytest.raises(UsageError, match="'nope'"):
        selection_table(run, ["nope"])


def test_unique_ids_are_text_in_their_first_order():
    assert unique_ids(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]
    assert unique_ids([7, "7", "007", 2.5]) == ["7", "007", "2.5"]  # as str() writes each
    assert unique_ids([]) == []


def test_seed_photos_span_the_selection(run):
    ids = some_ids(run, 4)
    paths = selection_photo_paths(run, ids, limit=6)
    assert len(paths) == 6
    owners = run.photos.set_index("path").loc[paths, "listing_id"].tolist()
    assert owners[:4] == ids  # each listing's first photo before anyone's second
    assert all(Path(p).is_file() for p in paths)


def test_catalogue_subset_loads_and_builds(run, tmp_path):
    from gallery_core.pipeline.build import run_steps

    ids = some_ids(run, 12)
    out = write_catalogue_subset(run, ids, tmp_path / "subset")
    assert sorted(p.name for p in out.iterdir()) == ["listings.parquet", "photos.parquet", "tasks.yaml"]
    photos = pd.read_parquet(out / "photos.parquet")
    assert all(Path(p).is_absolute() for p in photos["path"])  # referenced, not copied
    catalogue = load_catalogue(out)
    assert catalogue.report.skipped_photos == [] and catalogue.listings["listing_id"].tolist() == ids
    assert catalogue.photos["path"].tolist() == photos["path"].tolist()
    assert {t.name for t in catalogue.tasks} <= {t.name for t in run.tasks}
    assert list(catalogue.holdout) == run.holdout
    built = tmp_path / "runs" / "subset"
    run_steps(built, catalogue_dir=out, config=tiny_config(max_epochs=1), progress=False)
    assert Run(built).listings["listing_id"].tolist() == ids


def test_catalogue_subset_refuses_a_non_empty_folder_and_leaves_nothing_half_written(run, tmp_path):
    ids = some_ids(run, 5)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=str(taken)):
        write_catalogue_subset(run, ids, taken)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    with pytest.raises(UsageError, match="at least 3 listings"):
        write_catalogue_subset(run, ids[:2], tmp_path / "small")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left behind

    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_catalogue_subset(run, ids, empty) == empty  # an empty folder is filled
    assert len(list(empty.iterdir())) == 3


def test_catalogue_subset_failing_midway_leaves_no_folder(run, tmp_path, monkeypatch):
    import gallery_core.app.selection as selection

    def broken(path, table):
        raise OSError("disk full")

    monkeypatch.setattr(selection, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_catalogue_subset(run, some_ids(run, 5), tmp_path / "subset")
    assert os.listdir(tmp_path) == []


def test_task_file_fixes_classes_and_allows_the_photo_folder(run, tmp_path):
    out = write_catalogue_subset(run, some_ids(run, 4), tmp_path / "subset")
    written = yaml.safe_load((out / "tasks.yaml").read_text())
    multiclass = [t for t in written["tasks"] if t["kind"] == "multiclass"]
    assert multiclass and all(t["classes"] == list(run.task(t["name"]).classes) for t in multiclass)
    (folder,) = written["photo_root"]
    assert all(os.path.realpath(p).startswith(folder + os.sep) for p in run.photos["path"])


# --- the widget ---

def actions_script(run_root: str, ids: list[str]) -> None:
    from gallery_core.artifacts.run import Run
    from ui.widgets import selection_actions

    selection_actions(Run(run_root), ids, key="test")


@pytest.fixture
def actions_app(run_copy):
    from streamlit.testing.v1 import AppTest

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    run = Run(run_copy)
    ids = some_ids(run, 4)
    at = AppTest.from_function(actions_script, args=(str(run_copy), ids), default_timeout=60)
    return at.run(), run, ids


def test_selection_actions_write_a_catalogue_and_show_the_build_command(actions_app):
    at, run, ids = actions_app
    assert not at.exception
    assert at.get("download_button")[0].proto.label == "Download 4 listings as CSV"
    at.text_input(key="test_selection_folder").set_value("picked")
    at.button(key="FormSubmitter:test_selection_catalogue_form-Write catalogue").click().run()
    assert not at.exception
    out = run.root.parent / "picked"
    assert load_catalogue(out).listings["listing_id"].tolist() == ids
    assert f"--catalogue {out} --out {out}-run" in at.code[0].value
    at.button(key="FormSubmitter:test_selection_catalogue_form-Write catalogue").click().run()
    assert "not an empty folder" in at.error[0].value  # a second write is refused, not merged


def test_selection_actions_refuse_a_path_as_folder_name(actions_app):
    at, run, _ = actions_app
    at.text_input(key="test_selection_folder").set_value("../elsewhere")
    at.button(key="FormSubmitter:test_selection_catalogue_form-Write catalogue").click().run()
    assert "is not a folder name" in at.error[0].value
    assert not (run.root.parent.parent / "elsewhere").exists()
