"""AppTest: the Model page (training curves, metrics vs baselines, the evaluation report)."""

from __future__ import annotations

import io
import json

from PIL import Image

pytest_plugins = ["conftest_app"]


def test_training_curves_and_metrics(open_page, n_tasks):
    at = open_page("ui/pages/model.py")
    assert not at.exception
    charts = {chart.proto.id for chart in at.get("plotly_chart")}
    assert len(charts) == 5  # total loss, per-task losses, task weights, accuracy, RMSE ratio
    metrics = at.dataframe[0].value
    assert len(metrics) == n_tasks and {"model", "baseline", "beats_baseline"} <= set(metrics.columns)
    assert "no evaluation report yet" in at.info[0].value
    assert at.code[0].value.startswith("python -m gallery_core evaluate --artifacts ")


def test_the_per_task_loss_chart_follows_the_task_choice(open_page):
    at = open_page("ui/pages/model.py")
    at.radio(key="model_loss_split").set_value("validation").run()
    at.multiselect(key="model_tasks").set_value(["price", "sea_view"]).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert {trace["name"] for trace in spec["data"]} == {"price", "sea_view"}
    assert "validation" in spec["layout"]["title"]["text"]


def test_an_evaluation_report_is_shown_with_its_figures(run_copier, new_app, monkeypatch):
    run = run_copier("demo")
    report = run / "evaluation"
    report.mkdir()
    figure = io.BytesIO()
    Image.new("RGB", (60, 40), (10, 120, 200)).save(figure, format="PNG")
    (report / "accuracy.png").write_bytes(figure.getvalue())
    (report / "extra.png").write_bytes(figure.getvalue())
    (report / "report.md").write_text("# Evaluation\n\nHold-out accuracy 0.61.\n\n![accuracy](accuracy.png)\n\n"
                                      "![gone](missing.png)\n")
    (report / "report.json").write_text(json.dumps({"holdout": {"star_rating": 0.61}}))
    monkeypatch.setenv("GALLERY_CORE_ARTIFACTS", str(run.parent))
    at = new_app().run()
    at.switch_page("ui/pages/model.py").run()
    assert not at.exception
    assert "Hold-out accuracy 0.61." in " ".join(m.value for m in at.markdown)
    assert [img.captions for img in at.image] == [["accuracy"], ["extra.png"]]
    assert "(figure missing: gone)" in [c.value for c in at.caption]
    assert json.loads(at.json[0].value) == {"holdout": {"star_rating": 0.61}}
