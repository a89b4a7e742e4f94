"""Model: training curves, validation metrics beside trivial baselines, and the evaluation report."""

import streamlit as st

from gallery_core.app import figures
from gallery_core.names import evaluate_command
from ui import loaders
from ui.widgets import require_run, table_height

run, key = require_run()
st.title("Model")
st.caption("How the model trained and how well it predicts each task against a trivial baseline. First look at "
           "the validation metrics for tasks that do not beat their baseline, then at the evaluation report.")
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
    st.plotly_chart(loaders.total_loss_figure(key), key="model_total_loss")
    task_names = figures.history_series(history)
    split = st.radio("Per-task losses of", ["training", "validation"], horizontal=True, key="model_loss_split")
    shown = st.multiselect("Tasks", task_names, default=task_names, key="model_tasks")
    field = "train_task_losses" if split == "training" else "val_task_losses"
    st.plotly_chart(loaders.per_task_figure(key, field, f"Per-task {split} loss (log scale)", tuple(shown)),
                    key="model_task_losses")
    st.plotly_chart(loaders.per_task_figure(key, "task_weights", "Task weights over training (log scale)",
                                            tuple(shown)), key="model_task_weights")

st.header("Validation metrics")
metrics = loaders.validation_metrics(key)
if metrics.empty:
    st.info("No validation metrics were recorded.")
else:
    st.dataframe(metrics, hide_index=True, width="stretch", height=table_height(len(metrics)),
                 column_config={"model": st.column_config.NumberColumn(format="%.4f"),
                                "baseline": st.column_config.NumberColumn(format="%.4f")})
    left, right = st.columns(2)
    accuracy_figure, rmse_figure = loaders.metrics_figures(key)
    if accuracy_figure is not None:
        left.plotly_chart(accuracy_figure, key="model_accuracy")
    if rmse_figure is not None:
        right.plotly_chart(rmse_figure, key="model_rmse")

st.header("Evaluation report")
report = loaders.evaluation_report(run.root)
if report is None:
    st.info("This run has no evaluation report yet. Make one with:")
    st.code(evaluate_command(run.root), language="bash")
else:
    st.caption(f"From `{report.folder}`.")
    signature = loaders.folder_signature(report.folder)
    for part in report.parts:
        if part.kind == "text":
            st.markdown(part.text)
        elif part.path is not None:
            st.image(loaders.image_file_uri(str(part.path), signature), caption=part.text or None)
        else:
            st.caption(f"(figure missing: {part.text})")
    for figure_path in report.unreferenced_figures:
        st.image(loaders.image_file_uri(str(figure_path), signature), caption=figure_path.name)
    if report.json_path is not None:
        with st.expander("report.json"):
            st.json(loaders.json_file(str(report.json_path), signature), expanded=False)
