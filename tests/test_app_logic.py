"""The app's non-UI logic: map colouring, filters and downsampling, audit scores, uploads, thumbnails,
the artifact check, the evaluation report, the seed gallery."""

from __future__ import annotations

import io
import os
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gallery_core.app import audit, explore, figures, summary, thumbnails
from gallery_core.app.report_view import load_evaluation_report, split_markdown
from gallery_core.artifacts.check import check_run
from gallery_core.artifacts.run import Run
from gallery_core.data.tasks import TaskSpec
from gallery_core.data.uploads import MAX_UPLOAD_BYTES, UploadError, check_upload, check_uploads, sniff_format
from gallery_core.search.seed_gallery import MAX_SEED_PHOTOS, SeedGallery, SeedLimitError, UploadedSeed
from ui import navigation

pytest_plugins = ["conftest_app"]

STREAMLIT_CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"

BINARY = TaskSpec("pool", "pool", "binary")
MULTICLASS = TaskSpec("kind", "kind", "multiclass", ("hotel", "villa", "hostel"))
REGRESSION = TaskSpec("price", "price", "regression")


@pytest.fixture
def small_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    listings = pd.DataFrame({
        "listing_id": ["A", "B", "C", "D"],
        "pool": [1.0, 0.0, np.nan, 1.0],
        "kind": ["hotel", "villa", "hostel", None],
        "price": [100.0, 50.0, 80.0, np.nan],
        "split": ["train", "val", "train", "train"],
        "n_photos": [2, 2, 2, 2],
        "first_photo": [0, 2, 4, 6],
    })
    predictions = pd.DataFrame({
        "listing_id": listings["listing_id"],
        "pool__prob": [0.9, 0.8, 0.5, 0.2],
        "kind__pred": ["hotel", "hotel", "hostel", "villa"],
        "kind__p__hotel": [0.7, 0.6, 0.1, 0.2],
        "kind__p__villa": [0.2, 0.3, 0.1, 0.7],
        "kind__p__hostel": [0.1, 0.1, 0.8, 0.1],
        "price__pred": [90.0, 70.0, 80.0, 60.0],
        "pool__oof_pred": [0.1, 0.3, np.nan, 0.6],
        "pool__oof_p_recorded": [0.1, 0.7, np.nan, 0.6],
        "kind__oof_pred": ["villa", "villa", "hostel", None],
        "kind__oof_p_recorded": [0.05, 0.9, 0.5, np.nan],
        "price__oof_pred": [60.0, 52.0, 82.0, np.nan],
    })
    return listings, predictions


def jpeg_bytes(size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


# --- explore ---

def test_colour_options_cover_attributes_predictions_and_errors(small_tables):
    listings, _ = small_tables
    labels = [o.label for o in explore.colour_options(listings, [BINARY, REGRESSION])]
    assert labels == ["Attribute: pool", "Attribute: kind", "Attribute: price", "Attribute: split",
                      "Prediction: pool", "Prediction: price", "Prediction error: pool", "Prediction error: price"]


def test_prediction_errors(small_tables):
    listings, predictions = small_tables
    np.testing.assert_allclose(explore.prediction_error(BINARY, listings, predictions), [0.1, 0.8, np.nan, 0.8])
    np.testing.assert_allclose(explore.prediction_error(MULTICLASS, listings, predictions), [0.3, 0.7, 0.2, np.nan])
    np.testing.assert_allclose(explore.prediction_error(REGRESSION, listings, predictions), [10, 20, 0, np.nan])


def test_categories_and_legend_labels():
    assert explore.is_categorical(pd.Series([1.0, 0.0, np.nan]))
    assert explore.is_categorical(pd.Series(["a", "b"]))
    assert not explore.is_categorical(pd.Series(np.linspace(0, 1, 50)))
    labels = explore.category_labels(pd.Series([3.0, "3", None, "x", "y"]), max_levels=2)
    assert labels.tolist() == ["3", "3", "(missing)", "x", "(other)"]


def test_filter_mask_by_values_and_ranges(small_tables):
    listings, _ = small_tables
    assert explore.filter_mask(listings, {}).all()
    assert explore.filter_mask(listings, {"kind": ["hotel", "hostel"]}).tolist() == [True, False, True, False]
    assert explore.filter_mask(listings, {"pool": ["1"]}).tolist() == [True, False, False, True]
    assert explore.filter_mask(listings, {"kind": []}).all()  # nothing chosen: no restriction
    prices = pd.DataFrame({"price": np.linspace(0, 100, 20).tolist() + [np.nan]})
    assert explore.filter_mask(prices, {"price": (10.0, 50.0)}).sum() == int(((prices.price >= 10) & (prices.price <= 50)).sum())
    with pytest.raises(KeyError, match="not a listing column"):
        explore.filter_mask(listings, {"nope": ["x"]})


def test_search_and_selection(small_tables):
    listings, _ = small_tables
    assert explore.search_listings(listings, "vill").tolist() == [False, True, False, False]
    assert explore.search_listings(listings, "  ").all()
    assert explore.search_listings(listings, "c").tolist() == [False, False, True, False]  # id "C"
    event = {"points": [{"customdata": ["B", "x"]}, {"customdata": ["A"]}, {"customdata": ["B"]}, {"x": 1}]}
    assert explore.selected_listing_ids(event) == ["B", "A"]
    assert explore.selected_listing_ids(None) == []


def test_column_summary(small_tables):
    listings, _ = small_tables
    assert explore.column_summary(listings["kind"]) == {"kind": "categorical", "options": ["hostel", "hotel", "villa"]}
    many = pd.Series(np.linspace(1, 2, 30))
    assert explore.column_summary(many) == {"kind": "numeric", "min": 1.0, "max": 2.0}


# --- audit ---

def test_suspicion_of_classification_is_one_minus_p_recorded(small_tables):
    listings, predictions = small_tables
    table = audit.suspicion_table(MULTICLASS, listings, predictions)
    assert table["listing_id"].tolist() == ["A", "C", "B"]  # D has no recorded kind
    np.testing.assert_allclose(table["suspicion"], [0.95, 0.5, 0.1])
    assert table["rank"].tolist() == [1, 2, 3]
    binary = audit.suspicion_table(BINARY, listings, predictions)
    assert binary["listing_id"].tolist() == ["A", "D", "B"]


def test_suspicion_of_regression_is_in_residual_stds(small_tables):
    listings, predictions = small_tables
    table = audit.suspicion_table(REGRESSION, listings, predictions)
    residuals = np.array([100 - 60, 50 - 52, 80 - 82])
    np.testing.assert_allclose(table["suspicion"], np.sort(np.abs(residuals))[::-1] / residuals.std())
    assert table["listing_id"].tolist()[0] == "A"


def test_listing_comparison_flags_disagreements(small_tables):
    listings, predictions = small_tables
    stds = {"price": audit.residual_std(REGRESSION, listings, predictions, "price__pred")}
    table = audit.listing_comparison([BINARY, MULTICLASS, REGRESSION], listings.iloc[1], predictions.iloc[1], stds)
    assert table["task"].tolist() == ["pool", "kind", "price"]
    assert table["disagrees"].tolist() == [True, True, False]  # pool 0 vs P(1) 0.8; villa vs hotel
    assert table.loc[1, "probabilities"] == "hotel 0.60, villa 0.30, hostel 0.10"
    assert table.loc[0, "out-of-fold check"] == "P(recorded) = 0.70"
    unrecorded = audit.listing_comparison([BINARY], listings.iloc[2], predictions.iloc[2], stds)
    assert unrecorded.loc[0, "recorded"] == "—" and not unrecorded.loc[0, "disagrees"]


def test_audit_on_a_built_run_uses_out_of_fold_columns(tiny_run):
    run = Run(tiny_run)
    for task in run.tasks:
        table = audit.suspicion_table(task, run.listings, run.predictions)
        assert len(table) > 0 and table["suspicion"].is_monotonic_decreasing
        assert (table["suspicion"] >= 0).all()


# --- uploads ---

def test_jpeg_and_png_uploads_are_accepted():
    upload = check_upload("a.jpg", jpeg_bytes())
    assert (upload.format, upload.width, upload.height) == ("JPEG", 40, 30)
    png = io.BytesIO()
    Image.new("RGBA", (20, 20)).save(png, format="PNG")
    assert check_upload("b.png", png.getvalue()).format == "PNG"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (b"hello world", "its content is not a recognised image"),
    (b"GIF89a" + bytes(20), "it is a GIF file"),
    (b"%PDF-1.7" + bytes(20), "it is a PDF file"),
    (b"\xff\xd8\xff\xe0" + bytes(30), "looks like a JPEG but cannot be decoded"),
    (bytes(4) + b"ftypheic" + bytes(20), "it is a HEIC/MP4 file"),
])
def test_bad_uploads_are_refused(data, message):
    with pytest.raises(UploadError, match=message):
        check_upload("x.jpg", data)


def test_upload_size_and_count_limits():
    with pytest.raises(UploadError, match="is too big; the limit is 1 KB"):
        check_upload("big.jpg", jpeg_bytes((200, 200)), max_bytes=1024)
    with pytest.raises(UploadError, match="too small"):
        check_upload("dot.jpg", jpeg_bytes((2, 2)))
    files = [(f"{i}.jpg", jpeg_bytes(colour=(i * 20, 0, 0))) for i in range(4)] + [("dup.jpg", jpeg_bytes(colour=(0, 0, 0)))]
    accepted, errors = check_uploads(files, max_count=2)
    assert [u.name for u in accepted] == ["0.jpg", "1.jpg"]
    assert errors == ["2.jpg: ignored; at most 2 uploaded photos per seed gallery",
                      "3.jpg: ignored; at most 2 uploaded photos per seed gallery"]
    accepted, errors = check_uploads(files[:1] + files[4:])  # "dup.jpg" has the content of "0.jpg"
    assert [u.name for u in accepted] == ["0.jpg"] and errors == []
    assert sniff_format(b"RIFF1234WEBPxxxx") == "WebP"


# --- thumbnails ---

def test_thumbnails_are_cached_on_disk_and_follow_photo_changes(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes((300, 200)))
    cache = tmp_path / "thumbs"
    first = thumbnails.thumbnail_bytes(photo, 64, cache)
    with Image.open(io.BytesIO(first)) as img:
        assert img.size == (64, 64)
    cached = list(cache.rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    assert not list(cache.rglob("*.tmp"))
    cached[0].write_bytes(b"sentinel")  # served from the cache, not remade
    assert thumbnails.thumbnail_bytes(photo, 64, cache) == b"sentinel"
    photo.write_bytes(jpeg_bytes((300, 200), colour=(250, 0, 0)))
    os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert thumbnails.thumbnail_bytes(photo, 64, cache) != b"sentinel"  # a changed photo gets a new thumbnail


def test_missing_and_corrupt_photos_get_placeholders(tmp_path):
    assert thumbnails.thumbnail_bytes(tmp_path / "gone.jpg", 32, tmp_path / "c").startswith(b"\x89PNG")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff broken")
    assert thumbnails.thumbnail_bytes(bad, 32, tmp_path / "c").startswith(b"\x89PNG")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.jpg"))


def test_small_photos_are_not_upscaled_and_strips_join_thumbnails():
    small = thumbnails.make_thumbnail(jpeg_bytes((20, 30)), 96)
    with Image.open(io.BytesIO(small)) as img:
        assert img.size == (20, 20)
    strip = thumbnails.gallery_strip([small, small, small], 32)
    with Image.open(io.BytesIO(strip)) as img:
        assert img.size == (96, 32)
    assert thumbnails.data_uri(strip).startswith("data:image/jpeg;base64,")


# --- the artifact check, reports, seeds, figures, summary ---

def test_check_run_passes_a_built_run_and_names_each_problem(run_copy):
    check = check_run(run_copy)
    assert check.ok and check.files["checksum_ok"].all() and len(check.files) == 13  # retrieval_whitening.npz too
    (run_copy / "index.ann").unlink()
    pd.read_parquet(run_copy / "umap.parquet").iloc[::-1].to_parquet(run_copy / "umap.parquet")
    problems = " | ".join(check_run(run_copy).problems)
    assert "index.ann: missing (written by step 'index')" in problems
    assert "umap.parquet: checksum differs" in problems
    assert "umap.parquet: its listings do not match listings.parquet row by row" in problems


def test_check_run_of_a_folder_without_manifest(tmp_path):
    check = check_run(tmp_path)
    assert not check.ok and "no manifest.json" in check.problems[0]


def test_evaluation_report_parts(tmp_path):
    (tmp_path / "fig.png").write_bytes(b"png")
    parts = split_markdown('# Title\n\n![a figure](fig.png "t")\ntext after\n![remote](https://x/y.png)', tmp_path)
    assert [(p.kind, p.text.strip()) for p in parts] == [("text", "# Title"), ("image", "a figure"),
                                                        ("text", "text after"), ("image", "remote")]
    assert parts[1].path == (tmp_path / "fig.png").resolve() and parts[3].path is None
    assert load_evaluation_report(tmp_path) is None


def test_seed_gallery_limits_and_removal():
    tray = SeedGallery("run")
    assert tray.add_photos([3, 3, 4]) == 2 and tray.add_photos([4]) == 0
    seed = UploadedSeed("u.jpg", b"", np.ones(4, np.float32))
    assert tray.add_upload("d1", seed) and not tray.add_upload("d1", seed)
    assert len(tray) == 3 and tray.upload_embeddings().shape == (1, 4)
    tray.remove_photo(3)
    tray.remove_upload("d1")
    assert tray.photo_indices == [4] and tray.upload_embeddings() is None
    with pytest.raises(SeedLimitError, match=f"at most {MAX_SEED_PHOTOS} photos"):
        tray.add_photos(range(100, 100 + MAX_SEED_PHOTOS))
    tray.clear()
    assert tray.is_empty


def test_map_colours(small_tables):
    listings, predictions = small_tables
    kinds = explore.map_colour(explore.ColourOption("attribute", "kind"), listings, predictions, [MULTICLASS])
    assert kinds.categorical and kinds.categories.tolist() == ["hotel", "villa", "hostel", "(missing)"]
    errors = explore.map_colour(explore.ColourOption("error", "price"), listings, predictions, [REGRESSION])
    assert not errors.categorical and errors.text.tolist() == ["10", "20", "0", "(missing)"]
    assert errors.subset(np.array([1, 3])).numbers.tolist()[0] == 20.0
    lines = explore.attribute_lines(listings, ["kind", "price"])
    assert lines.tolist()[0] == "kind: hotel<br>price: 100"


def test_map_figure_keeps_listing_ids_in_customdata(small_tables):
    listings, predictions = small_tables
    kinds = explore.map_colour(explore.ColourOption("attribute", "kind"), listings, predictions, [MULTICLASS])
    fig = figures.map_figure(np.arange(4.0), np.arange(4.0), listings["listing_id"], kinds,
                             np.array(["price: 100", "price: 50", "price: 80", "price: ?"], dtype=object))
    assert [trace.name for trace in fig.data] == ["hostel", "hotel", "villa", "(missing)"]
    assert sorted(i for trace in fig.data for i in trace.customdata) == ["A", "B", "C", "D"]
    assert fig.data[1].text[0] == "<b>A</b><br>kind: hotel<br>price: 100"
    prices = explore.MapColour("price", np.array(["1.5", "?", "2", "3"], dtype=object),
                               numbers=np.array([1.5, np.nan, 2.0, 3.0]))
    continuous = figures.map_figure(np.arange(4.0), np.arange(4.0), listings["listing_id"], prices)
    assert [trace.name for trace in continuous.data] == ["(missing)", "price"]
    assert continuous.data[1].marker.showscale and list(continuous.data[1].marker.color) == [1.5, 2.0, 3.0]


def test_headline_metrics_and_task_table():
    metrics = pd.DataFrame({"task": ["a", "b", "c"], "kind": ["binary", "multiclass", "regression"],
                            "metric": ["accuracy", "accuracy", "rmse"], "model": [0.9, 0.5, 8.0],
                            "baseline": [0.8, 0.6, 10.0], "beats_baseline": [True, False, True]})
    headline = summary.headline_metrics(metrics)
    assert (headline.n_tasks, headline.n_beating_baseline) == (3, 2)
    assert headline.mean_accuracy == pytest.approx(0.7) and headline.mean_rmse_ratio == pytest.approx(0.8)
    table = summary.task_table([BINARY, MULTICLASS], metrics.assign(task=["pool", "kind", "x"]))
    assert table["classes"].tolist()[1] == 3 and table["beats_baseline"].tolist() == [True, False]


def test_streamlits_upload_limit_is_the_products():
    """Streamlit refuses a bigger file before reading it into the server's memory only if its own limit
    (MB, i.e. MiB) is the product's: one limit, stated once in the uploader."""
    config = tomllib.loads(STREAMLIT_CONFIG.read_text())
    assert config["server"]["maxUploadSize"] * 1024 * 1024 == MAX_UPLOAD_BYTES


def test_streamlit_settings_that_keep_page_loads_cheap():
    runner = tomllib.loads(STREAMLIT_CONFIG.read_text())["runner"]
    assert runner["postScriptGC"] is False  # a full gc.collect() after every script run: ~0.25 CPU-s each
    assert runner["magicEnabled"] is False  # the pages use no magic


def test_pages_have_fixed_distinct_url_paths():
    paths = [spec.url_path for spec in navigation.PAGES]
    assert len(set(paths)) == len(paths) and all(p and "/" not in p for p in paths)
    assert sum(spec.default for spec in navigation.PAGES) == 1
    assert navigation.page_url("Listing", listing="L000007") == "listing?listing=L000007"
    assert navigation.page_url("Overview") == ""  # the default page is the app's root
