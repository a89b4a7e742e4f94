"""Model: training curves, validation metrics beside trivial baselines, and the evaluation report."""

import json

import streamlit as st

from gallery_core.app import figures
from gallery_core.app.report_view import load_evaluation_report
from gallery_core.names import evaluate_command
from ui import loaders
from ui.widgets import require_run, table_height

run, key = require_run()
st.title("Model")
train_record = run.manifest.get("steps", {}).get("train", {})
st.caption(f"Backbone {run.manifest.get('backbone', {}).get('name', run.config.model.backbone)} "
           f"({run.config.model.trainable_stages} stages fine-tuned, {run.config.model.image_size} px), "
           f"{run.config.train.weighting} loss weighting; {train_record.get('epochs_run', '?')} epochs run, "
           f"best epoch {train_record.get('best_epoch', '?')}.")

st.header("Training curves")
history = run.history
if not history:
    st.info("The training log is empty.")
else:
    st.plotly_chart(figures.total_loss_figure(history), key="model_total_loss")
    task_names = figures.history_series(history)
    split = st.radio("Per-task losses of", ["training", "validation"], horizontal=True, key="model_loss_split")
    shown = st.multiselect("Tasks", task_names, default=task_names, key="model_tasks")
    field = "train_task_losses" if split == "training" else "val_task_losses"
    st.plotly_chart(figures.per_task_figure(history, field, f"Per-task {split} loss (log scale)", shown),
                    key="model_task_losses")
    st.plotly_chart(figures.per_task_figure(history, "task_weights", "Task weights over training (log scale)", shown),
                    key="model_task_weights")

st.header("Validation metrics")
metrics = loaders.validation_metrics(key)
if metrics.empty:
    st.info("No validation metrics were recorded.")
else:
    st.dataframe(metrics, hide_index=True, width="stretch", height=table_height(len(metrics)),
                 column_config={"model": st.column_config.NumberColumn(format="%.4f"),
                                "baseline": st.column_config.NumberColumn(format="%.4f")})
    left, right = st.columns(2)
    if (metrics["kind"] != "regression").any():
        left.plotly_chart(figures.classification_metrics_figure(metrics), key="model_accuracy")
    if (metrics["kind"] == "regression").any():
        right.plotly_chart(figures.regression_metrics_figure(metrics), key="model_rmse")

st.header("Evaluation report")
report = load_evaluation_report(run.root)
if report is None:
    st.info("This run has no evaluation report yet. Make one with:")
    st.code(evaluate_command(run.root), language="bash")
else:
    st.caption(f"From `{report.folder}`.")
    for part in report.parts:
        if part.kind == "text":
            st.markdown(part.text)
        elif part.path is not None:
            st.image(str(part.path), caption=part.text or None)
        else:
            st.caption(f"(figure missing: {part.text})")
    for figure_path in report.unreferenced_figures:
        st.image(str(figure_path), caption=figure_path.name)
    if report.json_path is not None:
        with st.expander("report.json"):
            st.json(json.loads(report.json_path.read_text()), expanded=False)
