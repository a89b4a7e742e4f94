"""Catalogue loading: every kind of bad input gets a clear error naming where, or is skipped and reported."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from gallery_core.data.catalogue import CatalogueError, load_catalogue
from gallery_core.data.tasks import encode_labels


def _edit_listings(root, edit):
    table = pd.read_csv(root / "listings.csv", dtype={"listing_id": str})
    edit(table)
    table.to_csv(root / "listings.csv", index=False)


def _edit_tasks(root, edit):
    spec = yaml.safe_load((root / "tasks.yaml").read_text())
    edit(spec)
    (root / "tasks.yaml").write_text(yaml.safe_dump(spec))


def test_loads_the_demo_catalogue(tiny_catalogue):
    cat = load_catalogue(tiny_catalogue)
    assert len(cat.listings) == 40
    assert cat.listings["listing_id"].is_unique
    assert "star_rating" in cat.holdout and "star_rating" not in {t.column for t in cat.tasks}
    assert set(cat.photos["listing_id"]) == set(cat.listings["listing_id"])
    assert all(cat.gallery_sizes() >= 5)
    # multiclass classes are fixed from the data, binary values are 0/1
    assert cat.task("property_type").classes is not None
    assert set(cat.listings["pool"].dropna().unique()) <= {0, 1}
    assert len(cat.fingerprint) == 32


def test_fingerprint_changes_with_a_photo(catalogue_copy):
    before = load_catalogue(catalogue_copy).fingerprint
    photo = sorted((catalogue_copy / "photos").rglob("*.jpg"))[0]
    photo.write_bytes(photo.read_bytes() + b"\0")
    assert load_catalogue(catalogue_copy).fingerprint != before


def test_missing_values_are_masked_not_errors(catalogue_copy):
    cat = load_catalogue(catalogue_copy)
    labels = encode_labels(cat.task("price"), cat.listings["price"])
    classes = encode_labels(cat.task("country"), cat.listings["country"])
    assert pd.isna(cat.listings["price"]).sum() == pd.isna(labels).sum()
    assert (classes == -1).sum() == cat.listings["country"].isna().sum()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["tasks"].append({"column": "no_such_column", "kind": "binary"}), "unknown column 'no_such_column'"),
    (lambda s: s["tasks"].append({"column": "pool", "kind": "ordinal", "name": "pool2"}), "unknown kind 'ordinal'"),
    (lambda s: s.update(holdout=["star_rating", "pool"]), "also training tasks"),
    (lambda s: s.update(holdout=["no_such_column"]), "hold-out column 'no_such_column'"),
    (lambda s: s["tasks"].append({"column": "pool", "kind": "binary"}), "duplicate task names"),
    (lambda s: s["tasks"].append({"column": "size_bucket", "kind": "multiclass", "name": "size2",
                                  "classes": ["s", "m"]}), "unknown categories"),
    (lambda s: s.pop("tasks"), "'tasks'"),
])
def test_task_file_errors(catalogue_copy, edit, message):
    _edit_tasks(catalogue_copy, edit)
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(catalogue_copy)


def test_duplicate_ids_are_named_with_their_rows(catalogue_copy):
    _edit_listings(catalogue_copy, lambda t: t.__setitem__("listing_id", t["listing_id"].where(t.index != 3, t.loc[2, "listing_id"])))
    with pytest.raises(CatalogueError, match=r"duplicate listing_id at row 3 \(L000003\).*row 4 \(L000003\)"):
        load_catalogue(catalogue_copy)


def test_wrong_kind_values_are_named(catalogue_copy):
    def edit(t):
        t["pool"] = t["pool"].astype(object)
        t.loc[5, "pool"] = "maybe"
        t["price"] = t["price"].astype(object)
        t.loc[7, "price"] = "cheap"
    _edit_listings(catalogue_copy, edit)
    with pytest.raises(CatalogueError, match=r"task 'pool'.*row 6 \(L000006\): 'maybe'"):
        load_catalogue(catalogue_copy)
    _edit_listings(catalogue_copy, lambda t: t.__setitem__("pool", 0))
    with pytest.raises(CatalogueError, match=r"task 'price'.*non-numeric.*row 8 \(L000008\): 'cheap'"):
        load_catalogue(catalogue_copy)


def test_malformed_tables(catalogue_copy):
    (catalogue_copy / "listings.csv").write_text("id,pool\n1,0\n")
    with pytest.raises(CatalogueError, match="no 'listing_id' column"):
        load_catalogue(catalogue_copy)
    (catalogue_copy / "listings.csv").unlink()
    with pytest.raises(CatalogueError, match="no listings.csv or listings.parquet"):
        load_catalogue(catalogue_copy)


def test_photos_of_unknown_listings_are_an_error(catalogue_copy):
    photos = pd.read_csv(catalogue_copy / "photos.csv")
    photos.loc[0, "listing_id"] = "L999999"
    photos.to_csv(catalogue_copy / "photos.csv", index=False)
    with pytest.raises(CatalogueError, match="L999999"):
        load_catalogue(catalogue_copy)


def test_missing_photos_and_empty_galleries_are_skipped_and_reported(catalogue_copy):
    photos = pd.read_csv(catalogue_copy / "photos.csv")
    first = photos[photos["listing_id"] == "L000001"]["path"]
    for path in first:  # listing 1 loses its whole gallery
        (catalogue_copy / path).unlink()
    (catalogue_copy / photos[photos["listing_id"] == "L000002"]["path"].iloc[0]).unlink()  # listing 2 loses one
    cat = load_catalogue(catalogue_copy)
    assert len(cat.report.skipped_photos) == len(first) + 1
    assert all(p["reason"] == "file not found" for p in cat.report.skipped_photos)
    assert cat.report.empty_listings == ["L000001"]
    assert "L000001" not in set(cat.listings["listing_id"])
    assert len(cat.listings) == 39


def test_photo_folder_layout_without_a_table(catalogue_copy):
    (catalogue_copy / "photos.csv").unlink()
    cat = load_catalogue(catalogue_copy)
    assert len(cat.listings) == 40 and len(cat.photos) > 0


def test_undecodable_photos_are_dropped_by_without_photos(catalogue_copy):
    cat = load_catalogue(catalogue_copy)
    rows = cat.photos.index[cat.photos["listing_id"] == "L000004"].tolist()
    dropped = cat.without_photos({r: "cannot decode" for r in rows})
    assert "L000004" in dropped.report.empty_listings
    assert len(dropped.photos) == len(cat.photos) - len(rows)
