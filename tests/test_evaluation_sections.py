"""The section registry: every section is one module behind one interface, and adding one is one
registration (it then runs, appears in the report and is a ``--skip`` choice)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from gallery_core.errors import ConfigError
from gallery_core.evaluation import EvaluationConfig, evaluate
from gallery_core.evaluation.cli import add_parser, config_from_args
from gallery_core.evaluation.report import bullets
from gallery_core.evaluation.sections import REGISTRY, Section, load_section, section_names

REAL = ("holdout", "transfer", "task_folds", "quality", "retrieval", "robustness", "ablation", "audit")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def test_the_registry_names_each_section_module_in_report_order():
    assert section_names() == REAL
    for name in section_names():
        section = load_section(name)
        assert section.name == name and section.titles
        for figure in section.figure_files:  # the report deletes and copies these by name
            assert figure.endswith(".png")


def test_the_cli_reads_the_section_names_without_torch():
    code = ("import sys; from gallery_core.evaluation import SECTIONS; import gallery_core.evaluation.cli; "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'; print(SECTIONS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(REAL)


def _fake_figure(result: dict, out_dir: Path) -> dict[str, Path]:
    path = out_dir / "fake.png"
    path.write_bytes(b"\x89PNG")
    return {"fake": path}


FAKE = Section(name="fake", titles=("A fake section",),
               run=lambda ctx, config: {"listings": len(ctx.run.listings)},
               verdicts=lambda result: [f"The fake section saw {result['listings']} listings."],
               markdown=lambda result, verdicts: [[f"{result['listings']} listings, ![fake](fake.png)", "",
                                                   *bullets(verdicts)]],
               figures=_fake_figure, figure_files=("fake.png",))


def test_a_new_section_is_one_registration(run_copy, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="fake"):
        EvaluationConfig(skip=("fake",)).validate()
    monkeypatch.setitem(REGISTRY, "fake", FAKE)  # the one line a new section adds to sections/__init__.py

    assert config_from_args(_parse("--skip", "fake")).skip == ("fake",)  # a --skip choice
    result = evaluate(run_copy, EvaluationConfig(skip=REAL), progress=False, copy_to=tmp_path / "docs")
    assert result.failed == [] and result.report["sections"] == {"fake": {"listings": 40}}
    assert result.report["verdicts"] == {"fake": ["The fake section saw 40 listings."]}
    markdown = result.markdown_path.read_text()
    # Numbered after the eight headings of the real sections; its first verdict is in the summary too.
    assert "## 10. A fake section\n\n40 listings" in markdown
    assert markdown.count("- The fake section saw 40 listings.") == 2
    assert (result.markdown_path.parent / "fake.png").is_file() and (tmp_path / "docs" / "fake.png").is_file()

    # Skipped, its stale figure goes too.
    result = evaluate(run_copy, EvaluationConfig(skip=(*REAL, "fake")), progress=False)
    assert result.report["sections"] == {} and not (result.markdown_path.parent / "fake.png").exists()


def test_a_failing_section_is_recorded_and_the_others_still_run(run_copy, monkeypatch):
    def broken(ctx, config):
        raise RuntimeError("boom")

    monkeypatch.setitem(REGISTRY, "fake", Section(name="fake", titles=("Broken",), run=broken,
                                                  markdown=lambda result, verdicts: [[]]))
    result = evaluate(run_copy, EvaluationConfig(skip=tuple(n for n in REAL if n != "audit")), progress=False)
    assert result.failed == ["fake"] and "boom" in result.report["sections"]["fake"]["error"]
    assert "fake" not in result.report["verdicts"] and result.report["verdicts"]["audit"]
    assert "## 10. Broken\n\n_Failed: RuntimeError: boom._" in result.markdown_path.read_text()
