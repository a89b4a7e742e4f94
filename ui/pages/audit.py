"""Audit: listings whose photos most strongly contradict a recorded attribute, by out-of-fold predictions."""

import streamlit as st

from gallery_core.app import audit
from gallery_core.app.explore import format_value
from ui import loaders
from ui.widgets import listing_link, listing_url, require_run, thumbnail_grid

STRIP_PHOTOS = 4
STRIP_SIZE = 64
GALLERIES_SHOWN = 5

run, key = require_run()
st.title("Audit")
st.caption("Which listings' photos contradict what is recorded about them? Each listing is scored by a probe "
           "trained on the other folds' listings only (out-of-fold), so the model never saw the label it judges.")

task_names = [t.name for t in run.tasks]
task_name = st.selectbox("Attribute (task)", task_names, key="audit_task",
                         format_func=lambda name: f"{name} ({run.task(name).kind})")
task = run.task(task_name)
if task.kind == "regression":
    st.markdown("**Suspicion** = |recorded − out-of-fold prediction| in units of the residual standard deviation.")
else:
    st.markdown("**Suspicion** = 1 − the out-of-fold probability of the recorded value "
                "(for binary tasks `photos_say` is P(1)).")

table = loaders.suspicion_table(key, task_name)
if table.empty:
    st.info(f"No listing has a recorded `{task.column}`, so there is nothing to audit.")
    st.stop()
n_show = st.number_input("Suspects to show", min_value=1, max_value=len(table), value=min(25, len(table)),
                         key="audit_n")
suspects = table.head(int(n_show))
threshold = audit.suspicion_threshold(task)
st.caption(f"{len(table):,} listings with a recorded `{task.column}`; "
           f"{int((table['suspicion'] > threshold).sum()):,} of them with suspicion above {threshold:g}.")

display = suspects.copy()
display.insert(1, "photos", [loaders.gallery_strip_uri(key, i, STRIP_PHOTOS, STRIP_SIZE) for i in suspects["listing_id"]])
display.insert(2, "open", [listing_url(i) for i in suspects["listing_id"]])
st.dataframe(display, hide_index=True, width="stretch", row_height=STRIP_SIZE + 8,
             column_config={"photos": st.column_config.ImageColumn("photos", width="medium"),
                            "open": st.column_config.LinkColumn("listing page", display_text="open"),
                            "suspicion": st.column_config.ProgressColumn(
                                "suspicion", format="%.2f", min_value=0.0,
                                max_value=float(max(1.0, table["suspicion"].max())))})
st.download_button(f"Download these {len(suspects)} suspects as CSV", suspects.to_csv(index=False),
                   file_name=f"{run.name}-{task_name}-suspects.csv", mime="text/csv", key="audit_download")

st.subheader(f"The {min(GALLERIES_SHOWN, len(suspects))} most suspicious galleries")
for suspect in suspects.head(GALLERIES_SHOWN).itertuples():
    listing_link(suspect.listing_id, label=f"{suspect.rank}. {suspect.listing_id}")
    st.caption(f"recorded {format_value(suspect.recorded)}, photos say {format_value(suspect.photos_say)} · "
               f"suspicion {suspect.suspicion:.2f}")
    thumbnail_grid(run.root, run.listing_photos(suspect.listing_id)["path"].tolist())
