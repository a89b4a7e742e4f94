"""The command line end to end: help, demo catalogue, build, retrieve, info, and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from gallery_core.cli import main

TINY_FLAGS = ["--image-size", "32", "--embed-dim", "16", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3",
              "--n-trees", "5", "--umap-neighbors", "5", "--oof-folds", "3", "--quiet"]


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "gallery_core", "--help"], capture_output=True, text=True, check=True)
    for command in ("demo-catalogue", "build", "train", "embed", "index", "project", "predict", "retrieve", "info"):
        assert command in out.stdout


def test_demo_build_retrieve_info(tmp_path, capsys):
    catalogue, run = tmp_path / "cat", tmp_path / "run"
    assert main(["demo-catalogue", "--out", str(catalogue), "--listings", "24", "--image-size", "32",
                 "--workers", "1", "--quiet"]) == 0
    assert main(["build", "--catalogue", str(catalogue), "--out", str(run), *TINY_FLAGS]) == 0
    assert (run / "manifest.json").is_file()
    capsys.readouterr()

    photos = pd.read_csv(catalogue / "photos.csv")
    seed = photos[photos["listing_id"] == "L000005"]["path"].tolist()
    assert main(["retrieve", "--artifacts", str(run), "--photos", *[str(catalogue / p) for p in seed],
                 "-k", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in result["results"]] == [1, 2, 3]
    assert result["results"][0]["listing_id"] == "L000005"  # its whole gallery finds the listing itself
    assert result["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)

    assert main(["info", "--artifacts", str(run)]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "train" in out

    # a single step alone: re-running project is skipped, forcing it reruns
    assert main(["project", "--out", str(run), "--quiet"]) == 0
    assert main(["project", "--out", str(run), "--force", "--umap-neighbors", "4", "--quiet"]) == 0
    assert json.loads((run / "manifest.json").read_text())["config"]["projection"]["n_neighbors"] == 4


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["build", "--catalogue", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "catalogue folder not found" in capsys.readouterr().err
    assert main(["retrieve", "--artifacts", str(tmp_path / "norun"), "--photos", "x.jpg"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", "--weighting", "magic"])
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_a_bad_seed_photo_is_named(tiny_run, tmp_path, capsys):
    bad = tmp_path / "upload.jpg"
    bad.write_text("not an image")
    assert main(["retrieve", "--artifacts", str(tiny_run), "--photos", str(bad)]) == 2
    assert f"{bad}: cannot decode image" in capsys.readouterr().err
