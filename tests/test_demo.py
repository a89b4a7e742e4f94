"""The synthetic demo catalogue: determinism, file format, label noise, world-model consistency, errors."""

from __future__ import annotations

import filecmp
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from gallery_core.demo import generator as demo
from gallery_core.demo import listings, world
from gallery_core.demo import render as demo_render
from gallery_core.demo.generator import (
    CITIES,
    FLAG_COLUMNS,
    LISTING_COLUMNS,
    PHOTO_KINDS,
    PROPERTY_TYPES,
    SIZE_BUCKETS,
    generate_demo_catalogue,
)
from gallery_core.demo.render import camera as demo_camera
from gallery_core.demo.render import registry as scene_registry

TEXT_FILES = ("listings.csv", "photos.csv", "tasks.yaml", "README.md", "truth/clean_listings.csv",
              "truth/flipped_flags.csv")
# photo kind -> amenity that must be true (in the clean truth) for the kind to appear
KIND_NEEDS = {"pool": "pool", "gym": "fitness_centre", "beach": "beach_access", "kitchen": "kitchen",
              "garden": "garden"}


def _make(root: Path, name: str, **kwargs) -> Path:
    params = {"n_listings": 12, "seed": 0, "image_size": 32, "workers": 1, "progress": False} | kwargs
    return generate_demo_catalogue(root / name, **params)


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    return {
        "a": _make(root, "a"),
        "a_2workers": _make(root, "a2", workers=2),
        "b": _make(root, "b", seed=1),
        "prefix": _make(root, "prefix", n_listings=5),
    }


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    """Big enough for rates: 400 listings at the smallest photo size."""
    return generate_demo_catalogue(tmp_path_factory.mktemp("noisy") / "c", n_listings=400, seed=3, image_size=16,
                                   workers=1, progress=False)


def _read(cat: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(cat / name, dtype={"listing_id": str})


# --------------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------------
def test_same_seed_is_identical_whatever_the_number_of_workers(catalogues):
    a, b = catalogues["a"], catalogues["a_2workers"]
    for name in TEXT_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    photos = _read(a, "photos.csv")["path"]
    match, mismatch, errors = filecmp.cmpfiles(a, b, list(photos), shallow=False)
    assert not mismatch and not errors and len(match) == len(photos)


def test_different_seed_gives_a_different_catalogue(catalogues):
    a, b = catalogues["a"], catalogues["b"]
    assert (a / "listings.csv").read_bytes() != (b / "listings.csv").read_bytes()
    first = "photos/L000001/01.jpg"
    assert not np.array_equal(np.asarray(Image.open(a / first)), np.asarray(Image.open(b / first)))


def test_a_smaller_catalogue_is_a_prefix_of_a_bigger_one(catalogues):
    """Listing i depends only on (seed, i): growing n_listings never changes existing listings."""
    big, small = catalogues["a"], catalogues["prefix"]
    big_clean = _read(big, "truth/clean_listings.csv").head(5)
    pd.testing.assert_frame_equal(_read(small, "truth/clean_listings.csv"), big_clean)
    small_photos = _read(small, "photos.csv")
    pd.testing.assert_frame_equal(small_photos, _read(big, "photos.csv").head(len(small_photos)))
    for path in small_photos["path"]:
        assert (small / path).read_bytes() == (big / path).read_bytes()


# --------------------------------------------------------------------------------------------------
# format
# --------------------------------------------------------------------------------------------------
def test_listings_and_truth_tables_have_the_documented_columns(catalogues):
    cat = catalogues["a"]
    for name in ("listings.csv", "truth/clean_listings.csv"):
        df = _read(cat, name)
        assert tuple(df.columns) == LISTING_COLUMNS
        assert list(df["listing_id"]) == [f"L{i:06d}" for i in range(1, 13)]
    clean = _read(cat, "truth/clean_listings.csv")
    assert clean.drop(columns=["chain"]).notna().all().all()
    assert set(clean["property_type"]) <= set(PROPERTY_TYPES)
    assert set(clean["size_bucket"]) <= set(SIZE_BUCKETS)
    assert clean["star_rating"].between(1, 5).all()
    for col in FLAG_COLUMNS:
        assert set(clean[col]) <= {0, 1}
    assert (clean["price"] > 0).all() and (clean["distance_to_centre_km"] >= 0).all()
    assert clean["review_score"].between(0, 10).all() and clean["location_score"].between(0, 10).all()


def test_photos_table_and_files(catalogues):
    cat = catalogues["a"]
    photos = _read(cat, "photos.csv")
    assert list(photos.columns) == ["listing_id", "path", "kind"]
    sizes = photos.groupby("listing_id").size()
    assert set(sizes.index) == set(_read(cat, "listings.csv")["listing_id"])
    assert sizes.between(5, 20).all()
    assert set(photos["kind"]) <= set(PHOTO_KINDS)
    for listing_id, path in zip(photos["listing_id"], photos["path"], strict=True):
        assert re.fullmatch(rf"photos/{listing_id}/\d\d\.jpg", path)
        with Image.open(cat / path) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (32, 32)
            img.load()
    on_disk = {p.relative_to(cat).as_posix() for p in (cat / "photos").rglob("*") if p.is_file()}
    assert on_disk == set(photos["path"])


def test_tasks_yaml_schema(catalogues):
    text = (catalogues["a"] / "tasks.yaml").read_text()
    spec = yaml.safe_load(text)
    assert set(spec) == {"tasks", "holdout"}
    assert spec["holdout"] == ["star_rating"]
    kinds = {t["column"]: t["kind"] for t in spec["tasks"]}
    assert all(set(t) == {"column", "kind"} for t in spec["tasks"])
    assert [c for c, k in kinds.items() if k == "binary"] == list(FLAG_COLUMNS)
    assert [c for c, k in kinds.items() if k == "multiclass"] == [
        "world_region", "country", "city", "property_type", "size_bucket"]
    assert [c for c, k in kinds.items() if k == "regression"] == [
        "price", "review_score", "distance_to_centre_km", "location_score"]
    assert "star_rating" not in kinds and "chain" not in kinds and "listing_id" not in kinds
    lines = text.splitlines()  # readable by hand: one task per line, then the hold-out list
    assert lines[0] == "tasks:" and len(lines) == len(spec["tasks"]) + 2
    assert "{column: is_chain, kind: binary}" in lines[1]


def test_readme_and_no_leftovers(catalogues):
    cat = catalogues["a"]
    readme = (cat / "README.md").read_text().strip().splitlines()
    assert len(readme) == 2 and "truth/" in readme[1]
    assert sorted(p.name for p in cat.iterdir()) == ["README.md", "listings.csv", "photos", "photos.csv",
                                                     "tasks.yaml", "truth"]
    assert not [p for p in cat.parent.iterdir() if ".partial-" in p.name]
    assert not [p for p in cat.rglob(".*")]  # no temp files left


def test_files_get_ordinary_permissions(catalogues):
    """Temp-file-and-rename must not leave the catalogue private (mkstemp's 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    cat = catalogues["a"]
    for name in TEXT_FILES:
        assert stat.S_IMODE((cat / name).stat().st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE(cat.stat().st_mode) == 0o777 & ~umask


# --------------------------------------------------------------------------------------------------
# label noise
# --------------------------------------------------------------------------------------------------
def test_flip_and_missing_rates(noisy):
    recorded = _read(noisy, "listings.csv")
    clean = _read(noisy, "truth/clean_listings.csv")
    attrs = [c for c in LISTING_COLUMNS if c != "listing_id"]
    present = recorded[list(FLAG_COLUMNS)].notna()
    differs = (recorded[list(FLAG_COLUMNS)] != clean[list(FLAG_COLUMNS)]) & present
    flip_rate = differs.to_numpy().sum() / present.to_numpy().sum()
    assert 0.01 <= flip_rate <= 0.06
    # an empty chain cell also means "independent", so chain is left out of the rates
    rated = [c for c in attrs if c != "chain"]
    missing = recorded[rated].isna()
    assert 0.05 <= missing.to_numpy().mean() <= 0.15
    for col in rated:
        assert 0.04 <= missing[col].mean() <= 0.17, col
    assert (recorded["chain"].isna() & clean["chain"].notna()).sum() > 0
    assert recorded["listing_id"].notna().all()


def test_flipped_flags_file_is_the_diff_between_truth_and_record(noisy):
    recorded = _read(noisy, "listings.csv").set_index("listing_id")
    clean = _read(noisy, "truth/clean_listings.csv").set_index("listing_id")
    flips = _read(noisy, "truth/flipped_flags.csv")
    assert list(flips.columns) == ["listing_id", "column", "recorded", "true"]
    expected = set()
    for col in FLAG_COLUMNS:
        rows = recorded.index[recorded[col].notna() & (recorded[col] != clean[col])]
        expected |= {(lid, col, int(recorded.at[lid, col]), int(clean.at[lid, col])) for lid in rows}
    got = set(zip(flips["listing_id"], flips["column"], flips["recorded"], flips["true"], strict=True))
    assert got == expected and len(flips) == len(expected) > 0
    # apart from flips and missing cells, the record equals the truth
    for col in LISTING_COLUMNS[1:]:
        both = recorded[col].notna() & clean[col].notna()
        same = recorded.loc[both, col] == clean.loc[both, col]
        n_flipped = int((flips["column"] == col).sum())
        assert int((~same).sum()) == n_flipped, col


# --------------------------------------------------------------------------------------------------
# world model
# --------------------------------------------------------------------------------------------------
def test_photos_show_only_what_the_listing_has(noisy):
    clean = _read(noisy, "truth/clean_listings.csv").set_index("listing_id")
    photos = _read(noisy, "photos.csv")
    for kind, amenity in KIND_NEEDS.items():
        shown = photos.loc[photos["kind"] == kind, "listing_id"].unique()
        assert len(shown) > 0, kind
        assert (clean.loc[shown, amenity] == 1).all(), kind
    # amenities are usually (not always) photographed
    with_pool = clean.index[clean["pool"] == 1]
    pool_shown = set(photos.loc[photos["kind"] == "pool", "listing_id"])
    assert 0.6 < np.mean([lid in pool_shown for lid in with_pool]) < 1.0


def test_geography_and_hierarchy_are_consistent(noisy):
    clean = _read(noisy, "truth/clean_listings.csv")
    city = {c.name: c for c in CITIES}
    geo = clean["city"].map(lambda n: city[n].geography)
    hills = clean["city"].map(lambda n: city[n].scape.hills)
    assert (geo[clean["beach_access"] == 1] == "coastal").all()
    assert (geo[clean["sea_view"] == 1] == "coastal").all()
    assert hills[clean["mountain_view"] == 1].all()
    assert (clean["country"] == clean["city"].map(lambda n: city[n].country)).all()
    assert (clean["world_region"] == clean["city"].map(lambda n: city[n].region)).all()
    assert (clean["is_chain"] == clean["chain"].notna().astype(int)).all()
    assert clean["star_rating"][clean["property_type"] == "hostel"].max() <= 3
    # a few sensible dependencies, loosely
    by_type = clean.groupby("property_type")
    assert by_type["kitchen"].mean()["apartment"] > 0.6 > by_type["kitchen"].mean()["hotel"]
    assert clean["price"].corr(clean["star_rating"], method="spearman") > 0.3
    centre = clean["city_centre"] == 1
    assert clean.loc[centre, "distance_to_centre_km"].median() < clean.loc[~centre, "distance_to_centre_km"].median()
    assert geo.nunique() == 3 and clean["world_region"].nunique() == 6


def test_world_definition():
    assert len(world.REGIONS) == 6 and len(world.COUNTRIES) == 16 and len(CITIES) == 40
    per_region = pd.Series([c.region for c in world.COUNTRIES]).value_counts()
    assert per_region.between(2, 4).all()
    per_country = pd.Series([c.country for c in CITIES]).value_counts()
    assert per_country.between(2, 3).all() and len(per_country) == 16
    assert len({c.name for c in CITIES}) == 40
    for region in world.REGIONS:
        assert region.style.roof in demo_render.ROOF_STYLES
        assert region.style.windows in demo_render.WINDOW_STYLES
        assert region.style.tree in demo_render.TREE_STYLES
    logos = [c.style.logo for c in world.CHAINS]
    assert len(set(logos)) == len(logos) == 6 and set(logos) <= set(demo_render.LOGO_SHAPES)


def test_generator_still_exports_the_schema_and_the_world():
    """Callers import these from gallery_core.demo.generator; the split into world/listings keeps them there."""
    assert demo.REGIONS is world.REGIONS and demo.COUNTRIES is world.COUNTRIES and demo.CHAINS is world.CHAINS
    assert demo.CITIES is world.CITIES and demo.LISTING_COLUMNS is listings.LISTING_COLUMNS
    for name in demo.__all__:
        assert hasattr(demo, name), name
    for name in demo_render.__all__:
        assert hasattr(demo_render, name), name


def test_every_photo_kind_has_exactly_one_registered_scene():
    assert sorted(scene_registry.scene_kinds()) == sorted(PHOTO_KINDS)


def test_the_scene_registry_refuses_a_second_scene_for_a_kind(monkeypatch):
    monkeypatch.setattr(scene_registry, "_SCENES", dict(scene_registry._SCENES))
    with pytest.raises(ValueError, match="already has a scene"):
        scene_registry.scene("pool")(lambda look, decor, rng, size: Image.new("RGB", (size, size)))
    with pytest.raises(ValueError, match="non-empty"):
        scene_registry.scene("")


def test_a_new_scene_is_one_decorated_function(monkeypatch):
    monkeypatch.setattr(scene_registry, "_SCENES", dict(scene_registry._SCENES))

    @scene_registry.scene("test_blank")
    def blank(look, decor, rng, size):
        return Image.new("RGB", (size, size), (1, 2, 3))

    _, look = listings._sample_listing(0, 0)
    rng = np.random.default_rng(0)
    image = demo_render.render_scene("test_blank", look, demo_render.sample_decor(look, rng), rng, 16)
    assert image.getpixel((0, 0)) == (1, 2, 3)


def test_an_unknown_kind_is_refused():
    _, look = listings._sample_listing(0, 0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown photo kind"):
        demo_render.render_scene("ballroom", look, demo_render.sample_decor(look, rng), rng, 16)


def test_every_kind_renders_for_every_region_and_type():
    looks: dict[tuple[str, str], demo_render.ListingLook] = {}
    i = 0
    while len(looks) < 36 and i < 5000:
        row, look = listings._sample_listing(i, 0)
        looks.setdefault((row["world_region"], row["property_type"]), look)
        i += 1
    assert len(looks) >= 36
    rng = np.random.default_rng(0)
    for look in looks.values():
        decor = demo_render.sample_decor(look, rng)
        for kind in PHOTO_KINDS:
            scene = demo_render.render_scene(kind, look, decor, rng, 64)
            photo = demo_render.photograph(scene, rng, 32)
            assert scene.size == (64, 64) and photo.size == (32, 32) and photo.mode == "RGB"
            assert np.asarray(photo).std() > 3  # not a blank frame


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"n_listings": 0}, {"n_listings": -5}, {"n_listings": 2.5}, {"n_listings": 1_000_000},
    {"image_size": 15}, {"image_size": 1025}, {"image_size": 64.0},
    {"seed": -1}, {"seed": "0"}, {"workers": 0}, {"workers": 1.5}, {"n_listings": True},
])
def test_bad_parameters_raise_value_error(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_demo_catalogue(tmp_path / "out", **({"progress": False} | kwargs))
    assert not (tmp_path / "out").exists()


def test_refuses_a_non_empty_or_non_directory_out_dir(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_demo_catalogue(tmp_path / "full", n_listings=1, image_size=16, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        generate_demo_catalogue(tmp_path / "file", n_listings=1, image_size=16, progress=False)


def test_accepts_an_existing_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    out = generate_demo_catalogue(tmp_path / "empty", n_listings=1, image_size=16, workers=1, progress=False)
    assert out == tmp_path / "empty" and (out / "photos.csv").is_file()


def test_a_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(job):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(demo, "_render_listings", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        generate_demo_catalogue(tmp_path / "out", n_listings=3, image_size=16, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_camera_never_shows_outside_the_scene(monkeypatch):
    """Viewpoint changes (zoom, shift, rotation, keystone) stay inside the drawn scene: no black borders."""
    monkeypatch.setattr(demo_camera, "DEFACE_PROBABILITY", 0.0)  # scribbles may legitimately be dark
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    for seed in range(200):
        photo = np.asarray(demo_render.photograph(white, np.random.default_rng(seed), 32))
        assert photo.min() > 60, seed
