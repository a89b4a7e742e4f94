"""benchmarks/bench_gpu.py in its quick CPU mode: every part runs and reports figures it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_reports_every_part(bench, tmp_path):
    out = tmp_path / "gpu.md"
    tables = bench.main(["--quick", "--device", "cpu", "--parts", "encoder", "decode", "train", "--out", str(out)])
    assert set(tables) == {"encoder", "decode", "train"}
    encoder = tables["encoder"]
    # the four precision x layout arms at one batch size, then the sweep of the fastest at the others
    assert len(encoder[encoder["batch"] == 4]) == 4 and (encoder["photos/s"] > 0).all()
    assert set(tables["decode"]["stage"]) == {"decode only", "decode + encoder"}
    assert (tables["train"]["photos/batch"] == 4 * 3).all() and (tables["train"]["photos/s"] > 0).all()
    text = out.read_text()
    assert "## Encoder throughput" in text and "| bf16 autocast" in text
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["environment"]["device"] == "cpu" and figures["decode"]["jpeg_kb"] > 0


def test_jpegs_are_photos_the_product_decodes(bench):
    from gallery_core.data.decode import load_photo

    jpegs = bench.make_jpegs(3, unique=2)
    assert jpegs[0] == jpegs[2] != jpegs[1]
    assert load_photo(jpegs[1], 224).shape == (224, 224, 3)


def test_ray_part_needs_a_checkpoint(bench, capsys):
    assert bench.main(["--quick", "--device", "cpu", "--parts", "ray"]) == {}
    assert "give --ray-checkpoint" in capsys.readouterr().out


def test_the_product_benchmarks_today_arm_resizes_as_the_product_did():
    """The 'today' arm decodes with PIL's resize (before resize_square); the product's own comes back after."""
    import io

    import numpy as np
    from PIL import Image

    from gallery_core.data import decode

    spec = importlib.util.spec_from_file_location("bench_product", BENCH.with_name("bench_product.py"))
    product = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(product)
    jpeg = product.make_jpegs(1, unique=1)[0]
    with Image.open(io.BytesIO(jpeg)) as img:
        pil = np.asarray(img.convert("RGB").resize((128, 128), Image.Resampling.BILINEAR))
    ours = decode.load_photo(jpeg, 128)
    assert not np.array_equal(ours, pil)  # the two resizes differ by a grey level here and there
    with product.todays_resize(True):
        assert np.array_equal(decode.load_photo(jpeg, 128), pil)
    with product.todays_resize(False):
        assert np.array_equal(decode.load_photo(jpeg, 128), ours)
    assert decode.resize_square.__module__ == "gallery_core.data.decode"
