"""A corpus of bad catalogues, each made from the tiny demo catalogue: every one is refused with a message
naming the file, column and row, or loads with what it lost listed in the report; a refused build leaves
nothing behind in its run folder."""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from PIL import Image

from gallery_core.cli import main
from gallery_core.data.catalogue import MIN_LISTINGS, CatalogueError, load_catalogue
from gallery_core.data.tasks import TaskSpec
from gallery_core.errors import UsageError
from gallery_core.pipeline.predict import metrics_table, small_split_warning, task_metrics
from gallery_core.training.finetune import small_catalogue_check

# --- helpers ---

def _listings(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "listings.csv", dtype={"listing_id": str}, keep_default_na=False)


def _photos(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "photos.csv", dtype=str, keep_default_na=False)


def _set_id(root: Path, row: int, value: str, photos_too: bool = False) -> str:
    """Give the listing at data row ``row`` (from 0) another id; returns the old one."""
    listings = _listings(root)
    old = listings.loc[row, "listing_id"]
    listings.loc[row, "listing_id"] = value
    listings.to_csv(root / "listings.csv", index=False)
    if photos_too:
        photos = _photos(root)
        photos.loc[photos["listing_id"] == old, "listing_id"] = value
        photos.to_csv(root / "photos.csv", index=False)
    return old


def _add_photo_rows(root: Path, paths: list[str], listing_id: str = "L000001") -> list[int]:
    """Append photos-table rows; returns their data row numbers (from 1, as messages count them)."""
    photos = _photos(root)
    first = len(photos) + 1
    extra = pd.DataFrame({"listing_id": listing_id, "path": paths, "kind": ""})
    pd.concat([photos, extra]).to_csv(root / "photos.csv", index=False)
    return list(range(first, first + len(paths)))


def _a_photo(root: Path) -> Path:
    return root / _photos(root)["path"].iloc[0]


def _keep_listings(root: Path, n: int) -> list[str]:
    """Cut the catalogue down to its first ``n`` listings with a price (and their photos)."""
    listings = _listings(root)
    listings = listings[listings["price"] != ""].head(n)
    listings.to_csv(root / "listings.csv", index=False)
    photos = _photos(root)
    photos[photos["listing_id"].isin(listings["listing_id"])].to_csv(root / "photos.csv", index=False)
    (root / "tasks.yaml").write_text(yaml.safe_dump({"tasks": [{"column": "price", "kind": "regression"},
                                                               {"column": "pool", "kind": "binary"}]}))
    return listings["listing_id"].tolist()


def _build_fails(catalogue: Path, tmp_path: Path, capsys) -> str:
    """``gallery-core build`` refuses the catalogue: exit 2, one line on stderr, nothing in the run folder."""
    out = tmp_path / "run"
    assert main(["build", "--catalogue", str(catalogue), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert left == [], f"a refused build left {left}"
    return err


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Every file read through Path.read_bytes (how the catalogue reads photos for the fingerprint)."""
    seen: list[str] = []
    original = pathlib.Path.read_bytes

    def recording(self):
        seen.append(str(self))
        return original(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", recording)
    return seen


# --- listing ids ---

def test_a_blank_id_is_refused_naming_the_file_column_and_row(catalogue_copy, tmp_path, capsys):
    _set_id(catalogue_copy, 3, "")
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "listings.csv" in err and "'listing_id'" in err and "blank at row 4" in err
    assert "photos.csv" not in err  # not blamed on the other table


def test_a_blank_id_in_the_photos_table_is_blamed_on_the_photos_table(catalogue_copy):
    photos = _photos(catalogue_copy)
    photos.loc[6, "listing_id"] = "  "
    photos.to_csv(catalogue_copy / "photos.csv", index=False)
    with pytest.raises(CatalogueError, match=r"photos\.csv: column 'listing_id' is blank at row 7;"):
        load_catalogue(catalogue_copy)


def test_an_id_written_na_is_kept_as_written_with_a_warning(catalogue_copy, caplog):
    _set_id(catalogue_copy, 4, "NA", photos_too=True)
    with caplog.at_level(logging.WARNING, logger="gallery_core.data.catalogue"):
        cat = load_catalogue(catalogue_copy)
    assert "NA" in set(cat.listings["listing_id"]) and cat.listings["listing_id"].notna().all()
    assert (cat.photos["listing_id"] == "NA").sum() > 0
    assert any("listings.csv" in r.getMessage() and "row 5: 'NA'" in r.getMessage() for r in caplog.records)


def test_an_id_with_spaces_around_it_is_refused_not_trimmed(catalogue_copy):
    _set_id(catalogue_copy, 1, " spaced id ", photos_too=True)
    with pytest.raises(CatalogueError, match=r"listings\.csv: column 'listing_id' has spaces around the id at "
                                             r"row 2: ' spaced id '"):
        load_catalogue(catalogue_copy)


def test_duplicate_ids_are_refused_through_the_cli(catalogue_copy, tmp_path, capsys):
    listings = _listings(catalogue_copy)
    listings.loc[9, "listing_id"] = listings.loc[2, "listing_id"]
    listings.to_csv(catalogue_copy / "listings.csv", index=False)
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "listings.csv: duplicate listing_id at row 3 (L000003)" in err and "row 10 (L000003)" in err


def test_ids_that_look_numeric_stay_text(catalogue_copy):
    _set_id(catalogue_copy, 0, "007", photos_too=True)
    _set_id(catalogue_copy, 1, "7", photos_too=True)  # another listing, not a duplicate of '007'
    cat = load_catalogue(catalogue_copy)
    assert cat.listings["listing_id"].tolist()[:2] == ["007", "7"]
    assert {"007", "7"} <= set(cat.photos["listing_id"])


def test_int_ids_in_parquet_are_read_as_text(catalogue_copy):
    listings = pd.read_csv(catalogue_copy / "listings.csv")
    listings["listing_id"] = np.arange(1, len(listings) + 1, dtype=np.int64)
    listings.to_parquet(catalogue_copy / "listings.parquet", index=False)
    (catalogue_copy / "listings.csv").unlink()
    photos = _photos(catalogue_copy)
    photos["listing_id"] = photos["listing_id"].str.lstrip("L0")
    photos.to_csv(catalogue_copy / "photos.csv", index=False)
    cat = load_catalogue(catalogue_copy)
    assert cat.listings["listing_id"].tolist()[:3] == ["1", "2", "3"] and len(cat.listings) == 40


def test_a_missing_id_in_parquet_is_refused(catalogue_copy):
    listings = pd.read_csv(catalogue_copy / "listings.csv", dtype={"listing_id": str})
    listings.loc[5, "listing_id"] = None
    listings.to_parquet(catalogue_copy / "listings.parquet", index=False)
    (catalogue_copy / "listings.csv").unlink()
    with pytest.raises(CatalogueError, match=r"listings\.parquet: column 'listing_id' is blank at row 6"):
        load_catalogue(catalogue_copy)


# --- the tables themselves ---

@pytest.mark.parametrize("separator, name", [(";", "semicolon"), ("\t", "tab")])
def test_a_csv_with_another_delimiter_says_so(catalogue_copy, tmp_path, capsys, separator, name):
    _listings(catalogue_copy).to_csv(catalogue_copy / "listings.csv", index=False, sep=separator)
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "listings.csv" in err and f"looks {name}-separated" in err and "listing_id" in err


def test_a_missing_id_column_is_named(catalogue_copy, tmp_path, capsys):
    _listings(catalogue_copy).rename(columns={"listing_id": "id"}).to_csv(catalogue_copy / "listings.csv",
                                                                         index=False)
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "listings.csv: no 'listing_id' column (columns: id, " in err


def test_a_photos_table_naming_an_unknown_listing(catalogue_copy):
    rows = _add_photo_rows(catalogue_copy, [str(_a_photo(catalogue_copy))], listing_id="L999999")
    with pytest.raises(CatalogueError, match=rf"photos\.csv: photos of listings that are not in the listings "
                                             rf"table at row {rows[0]} \(L999999\)"):
        load_catalogue(catalogue_copy)


def test_an_empty_listings_table(catalogue_copy, tmp_path, capsys):
    (catalogue_copy / "listings.csv").write_text(_listings(catalogue_copy).head(0).to_csv(index=False))
    assert "listings.csv: the table has no rows" in _build_fails(catalogue_copy, tmp_path, capsys)


def test_a_header_only_photos_table(catalogue_copy, tmp_path, capsys):
    (catalogue_copy / "photos.csv").write_text("listing_id,path,kind\n")
    assert "photos.csv: the table has no rows" in _build_fails(catalogue_copy, tmp_path, capsys)


def test_an_empty_file(catalogue_copy):
    (catalogue_copy / "photos.csv").write_bytes(b"")
    with pytest.raises(CatalogueError, match=r"photos\.csv: the file is empty"):
        load_catalogue(catalogue_copy)


def test_a_csv_that_is_not_utf8_is_named_by_row_and_column(catalogue_copy, tmp_path, capsys):
    listings = _listings(catalogue_copy)
    listings.loc[2, "city"] = "Zürich"
    listings.to_csv(catalogue_copy / "listings.csv", index=False, encoding="latin-1")
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "listings.csv: not UTF-8 text: byte 0xfc at line 4 (row 3, column 'city')" in err


# --- photo paths outside the catalogue ---

def test_a_relative_path_out_of_the_folder_is_skipped_and_reported(catalogue_copy, reads):
    outside = catalogue_copy.parent / "outside.jpg"
    shutil.copy(_a_photo(catalogue_copy), outside)
    rows = _add_photo_rows(catalogue_copy, ["../outside.jpg"])
    cat = load_catalogue(catalogue_copy)
    assert not cat.photos["path"].str.contains("outside").any()
    [skipped] = cat.report.skipped_photos
    assert skipped["row"] == rows[0] and "outside the catalogue folder" in skipped["reason"]
    assert str(outside) in skipped["reason"] and "photo_root" in skipped["reason"]
    assert not any("outside" in p for p in reads)  # never opened


@pytest.mark.parametrize("absolute", [True, False])
def test_system_files_are_never_read(catalogue_copy, reads, absolute):
    target = "/etc/passwd" if absolute else os.path.relpath("/etc/passwd", catalogue_copy)
    rows = _add_photo_rows(catalogue_copy, [target])
    cat = load_catalogue(catalogue_copy)
    [skipped] = cat.report.skipped_photos
    assert skipped["row"] == rows[0] and "resolves to /etc/passwd" in skipped["reason"]
    assert not any(p.endswith("passwd") for p in reads)


@pytest.mark.parametrize("layout", ["table", "folders"])
def test_a_symlink_pointing_outside_is_skipped(catalogue_copy, layout):
    outside = catalogue_copy.parent / "elsewhere" / "photo.jpg"
    outside.parent.mkdir()
    shutil.copy(_a_photo(catalogue_copy), outside)
    link = catalogue_copy / "photos" / "L000002" / "99.jpg"
    link.symlink_to(outside)
    if layout == "table":
        _add_photo_rows(catalogue_copy, ["photos/L000002/99.jpg"], listing_id="L000002")
    else:
        (catalogue_copy / "photos.csv").unlink()
    cat = load_catalogue(catalogue_copy)
    assert str(link) not in set(cat.photos["path"])
    [skipped] = cat.report.skipped_photos
    assert skipped["path"] == str(link) and f"resolves to {outside}" in skipped["reason"]


def test_a_photo_root_in_the_task_file_allows_a_folder(catalogue_copy):
    shared = catalogue_copy.parent / "shared"
    shared.mkdir()
    shutil.copy(_a_photo(catalogue_copy), shared / "a.jpg")
    (catalogue_copy / "photos" / "L000003" / "link.jpg").symlink_to(shared / "a.jpg")
    _add_photo_rows(catalogue_copy, ["../shared/a.jpg", str(shared / "a.jpg"), "photos/L000003/link.jpg"])
    spec = yaml.safe_load((catalogue_copy / "tasks.yaml").read_text())
    (catalogue_copy / "tasks.yaml").write_text(yaml.safe_dump(spec | {"photo_root": "../shared"}))
    cat = load_catalogue(catalogue_copy)
    assert cat.report.skipped_photos == []
    assert (cat.photos["path"].str.contains("shared/a.jpg")).sum() == 2
    assert str(catalogue_copy / "photos" / "L000003" / "link.jpg") in set(cat.photos["path"])


def test_a_photo_root_that_is_not_a_folder(catalogue_copy):
    spec = yaml.safe_load((catalogue_copy / "tasks.yaml").read_text())
    (catalogue_copy / "tasks.yaml").write_text(yaml.safe_dump(spec | {"photo_root": ["../nowhere"]}))
    with pytest.raises(CatalogueError, match=r"tasks\.yaml: photo_root '\.\./nowhere' is not a folder"):
        load_catalogue(catalogue_copy)


# --- photos the loader cannot use ---

def test_formats_the_folder_layout_does_not_read_are_listed(catalogue_copy):
    (catalogue_copy / "photos.csv").unlink()
    folder = catalogue_copy / "photos" / "L000005"
    image = Image.new("RGB", (8, 8), (200, 30, 30))
    image.save(folder / "a.gif")
    image.save(folder / "b.tiff")
    (folder / "c.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (folder / ".DS_Store").write_bytes(b"junk")  # hidden system files are nobody's photo: not listed
    cat = load_catalogue(catalogue_copy)
    reasons = {Path(p["path"]).name: p["reason"] for p in cat.report.skipped_photos}
    assert set(reasons) == {"a.gif", "b.tiff", "c.HEIC"}
    assert "unsupported format '.gif'" in reasons["a.gif"] and "'.heic'" in reasons["c.HEIC"]
    assert cat.report.skip_counts() == {"unsupported format": 3}
    assert cat.report.summary().startswith("3 photo(s) skipped (unsupported format: 3)")


def test_the_summary_counts_everything_the_report_lists(catalogue_copy):
    photos = _photos(catalogue_copy)
    (catalogue_copy / photos["path"].iloc[0]).unlink()  # file not found
    for path in photos["path"].iloc[1:3]:
        (catalogue_copy / path).write_bytes(b"this is not a jpeg")  # unreadable: caught at load, not later
    _add_photo_rows(catalogue_copy, ["../outside.jpg"])
    report = load_catalogue(catalogue_copy).report
    assert len(report.skipped_photos) == 4 and report.summary().startswith("4 photo(s) skipped")
    assert report.skip_counts() == {"cannot decode": 2, "file not found": 1, "outside the catalogue folder": 1}
    assert [p["row"] for p in report.skipped_photos if "not found" in p["reason"]] == [1]


def test_all_photos_unreadable_is_said_before_training(catalogue_copy, tmp_path, capsys):
    for path in _photos(catalogue_copy)["path"]:
        (catalogue_copy / path).write_bytes(b"GIF? no")
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "no photo could be read, so there is nothing to train on" in err
    assert "cannot decode: " in err and "photos/L000001/01.jpg (row 1)" in err
    assert "training labels" not in err


def test_photos_lost_when_decoding_are_said_too(catalogue_copy):
    cat = load_catalogue(catalogue_copy)
    with pytest.raises(CatalogueError, match=r"no photo could be read after decoding.*cannot decode: "):
        cat.without_photos({row: f"{path}: cannot decode image (truncated)" for row, path in
                            enumerate(cat.photos["path"])})
    keep_two = cat.photos.index[~cat.photos["listing_id"].isin(cat.listings["listing_id"][:2])]
    with pytest.raises(CatalogueError, match=r"only 2 listing\(s\) with a usable photo after decoding"):
        cat.without_photos({int(row): "cannot decode image" for row in keep_two})


# --- tiny catalogues ---

def test_one_listing_is_too_small_to_train(catalogue_copy, tmp_path, capsys):
    _keep_listings(catalogue_copy, 1)
    err = _build_fails(catalogue_copy, tmp_path, capsys)
    assert "only 1 listing(s) with a usable photo ('L000001')" in err and f"at least {MIN_LISTINGS}" in err


def test_the_small_catalogue_check_refuses_an_empty_split():
    config = tiny_config().train
    with pytest.raises(UsageError, match="split into 1 training and 1 validation listings"):
        small_catalogue_check(None, n_train=1, n_val=1, config=config)
    with pytest.raises(UsageError, match="split into 5 training and 0 validation"):
        small_catalogue_check(None, n_train=5, n_val=0, config=config)


def test_metrics_that_cannot_be_measured_are_notes_not_nan():
    price = TaskSpec("price", "price", "regression")
    listings = pd.DataFrame({"listing_id": list("abcde"), "price": [1.0, 2.0, 3.0, 5.0, 5.0]})
    predictions = pd.DataFrame({"price__pred": [1.0, 2.0, 3.0, 4.0, 4.0]})
    one = task_metrics(price, predictions, listings, np.array([0, 0, 0, 0, 1], bool))
    assert one == {"kind": "regression", "n": 1, "note": one["note"]} and "not measured" in one["note"]
    constant = task_metrics(price, predictions, listings, np.array([0, 0, 0, 1, 1], bool))
    assert "r2" not in constant and "all equal" in constant["note"] and constant["rmse"] == 1.0
    json.dumps(constant, allow_nan=False)
    table = metrics_table({"price": one, "other": constant})
    assert table["task"].tolist() == ["other"] and "all equal" in table["note"].iloc[0]
    assert "1 task(s) have no validation metric (price: not measured" in small_split_warning(table)
    empty = metrics_table({"price": one})
    assert empty.empty and int(empty["beats_baseline"].sum()) == 0


def test_three_listings_train_and_say_what_cannot_be_measured(catalogue_copy, tmp_path, caplog):
    from gallery_core.pipeline.build import run_steps

    _keep_listings(catalogue_copy, 3)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="gallery_core"):
        run_steps(out, steps=("train", "embed", "predict"), catalogue_dir=catalogue_copy,
                  config=tiny_config(max_epochs=1), progress=False)
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["n_val_listings"] == 1
    for task in ("price", "pool"):
        m = metrics["tasks"][task]
        assert "beats_baseline" not in m and m["n"] <= 1 and "note" in m
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in m.values())
    assert any("have no validation metric" in r.getMessage() for r in caplog.records)
    assert any("the validation split has only 1 listings" in r.getMessage() for r in caplog.records)
