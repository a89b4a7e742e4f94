"""Overview: the run's catalogue, tasks, backbone and weighting, headline metrics, artifact check."""

import streamlit as st

from gallery_core.app import summary
from gallery_core.artifacts.store import ArtifactError
from gallery_core.names import build_command
from ui import loaders, rebuild
from ui.navigation import page
from ui.widgets import current_run_root, no_artifacts_message, table_height

st.title("Overview")
st.caption("What this run holds and how well its model predicts. First check below that its files are intact, "
           "then explore: the Map of the listings, Retrieve by photos, or Audit the recorded attributes.")
root = current_run_root()
if root is None:
    no_artifacts_message()
    st.stop()

try:
    run, key = rebuild.open_run(root)  # during a rebuild: the last complete build, with a note
except ArtifactError as err:
    run, key = None, loaders.run_key(root)
    st.error(f"Run `{root.name}` cannot be opened: {err}")
    st.code(build_command(root), language="bash")
check = loaders.run_check(key)

if run is not None:
    manifest = run.manifest
    catalogue = manifest.get("catalogue", {})
    config = run.config
    st.markdown(f"Run **{run.name}** at `{run.root}`, last built {manifest.get('updated_at', '?')} from the catalogue "
                f"`{catalogue.get('root', '?')}`; pick another run in the sidebar.")
    st.markdown(f"Backbone **{manifest.get('backbone', {}).get('name', config.model.backbone)}** "
                f"({config.model.trainable_stages} last stages fine-tuned, {config.model.image_size} px photos) · "
                f"loss weighting **{config.train.weighting}** · {run.photo_embeddings.shape[1]}-d gallery embeddings "
                f"(retrieval and map) · embedding for new tasks: {config.embed.new_task_features}")
    cols = st.columns(4)
    cols[0].metric("Listings", f"{len(run.listings):,}")
    cols[1].metric("Photos", f"{run.photo_embeddings.shape[0]:,}")
    cols[2].metric("Tasks", len(run.tasks))
    cols[3].metric("Hold-out columns", len(run.holdout))

    metrics = loaders.validation_metrics(key)
    headline = summary.headline_metrics(metrics)
    st.subheader("Headline validation metrics")
    if headline.n_tasks == 0:
        st.info("No validation metrics were recorded (no labelled validation listings).")
    else:
        cols = st.columns(3)
        cols[0].metric("Tasks beating their trivial baseline", f"{headline.n_beating_baseline} / {headline.n_tasks}")
        if headline.mean_accuracy is not None:
            cols[1].metric("Mean accuracy (classification)", f"{headline.mean_accuracy:.3f}",
                           f"{headline.mean_accuracy - headline.mean_baseline_accuracy:+.3f} vs baseline")
        if headline.mean_rmse_ratio is not None:
            cols[2].metric("Mean RMSE / baseline RMSE (regression)", f"{headline.mean_rmse_ratio:.3f}",
                           f"{headline.mean_rmse_ratio - 1:+.3f} vs baseline", delta_color="inverse")
        st.caption(f"On {run.metrics.get('n_val_listings')} validation listings, against the majority class "
                   "(classification) or the training mean (regression). Details on the Model page.")

    st.subheader("Tasks")
    st.dataframe(summary.task_table(run.tasks, metrics), hide_index=True, width="stretch",
                 height=table_height(len(run.tasks)))
    if run.holdout:
        st.caption(f"Hold-out columns (never seen in training): {', '.join(run.holdout)}")
    skipped = catalogue.get("skipped", {})
    if skipped.get("n_skipped_photos") or skipped.get("n_empty_listings"):
        st.caption(f"While loading the catalogue, {skipped.get('n_skipped_photos', 0)} photo(s) were skipped and "
                   f"{skipped.get('n_empty_listings', 0)} listing(s) left without photos.")

st.subheader("Artifacts")
if check.ok:
    st.success("Every artifact is present, matches its checksum and was built from the files beside it.")
else:
    st.error("Problems with this run's artifacts:\n\n" + "\n".join(f"- {p}" for p in check.problems))
if not check.files.empty:
    st.dataframe(check.files, hide_index=True, width="stretch", height=table_height(len(check.files)),
                 column_config={"bytes": st.column_config.NumberColumn("bytes", format="%d")})

if run is not None:
    st.subheader("Explore")
    st.page_link(page("Map").script, label="Map of the listings", icon=":material/scatter_plot:")
    st.page_link(page("Retrieve").script, label="Retrieve listings from seed photos", icon=":material/image_search:")
    st.page_link(page("Audit").script, label="Audit attributes against photos", icon=":material/fact_check:")
    st.page_link(page("Model").script, label="Training curves and metrics", icon=":material/monitoring:")
