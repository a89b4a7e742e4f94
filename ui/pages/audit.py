"""Audit: listings whose photos most strongly contradict a recorded attribute (out-of-fold predictions), the
photos that contradict it, and a person's decision on each (kept in ``<run>/user/audit_decisions.sqlite``)."""

import streamlit as st

from gallery_core.app import audit, decisions
from ui import access, loaders
from ui.widgets import listing_link, listing_url, photo_evidence_view, require_run, selection_actions

STRIP_PHOTOS = 4
STRIP_SIZE = 64
SHOW_OPTIONS = {"all": "all", "undecided": "undecided", "confirmed": decisions.CONFIRMED,
                "marked wrong": decisions.WRONG}

run, key = require_run()
st.title("Audit")
st.markdown("**Find recorded attributes that the photos contradict.** Pick an attribute; the most suspicious "
            "listings come first. Open one below to see which photos argue against the data, then confirm the "
            "recorded value or mark it wrong.")
st.caption("Each listing is scored by a probe trained on the other folds' listings only (out-of-fold), so the "
           "model never saw the label it judges.")

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

# Decisions are read from their database on every run of the page (another session may have decided since).
# Read-only mode (a public viewer) shows them but offers no decision (gallery_core.app.settings).
read_only = access.read_only()
try:
    store: decisions.AuditDecisions | None = decisions.AuditDecisions(run.root, read_only=read_only)
except decisions.DecisionFileError as err:
    store = None
    st.error(f"The audit decisions cannot be read, so deciding is off until the file is fixed or moved: {err}")
task_decisions = store.for_task(task_name) if store is not None else None
decided = {} if task_decisions is None else dict(zip(task_decisions["listing_id"], task_decisions["decision"],
                                                     strict=True))
table = table.assign(decision=[decided.get(i, "") for i in table["listing_id"]])

threshold = audit.suspicion_threshold(task)
st.caption(f"{len(table):,} listings with a recorded `{task.column}`; "
           f"{int((table['suspicion'] > threshold).sum()):,} of them with suspicion above {threshold:g}; "
           f"{int((table['decision'] != '').sum()):,} decided.")
show = st.radio("Show", list(SHOW_OPTIONS), horizontal=True, key="audit_show")
if show == "undecided":
    table = table[table["decision"] == ""]
elif show != "all":
    table = table[table["decision"] == SHOW_OPTIONS[show]]
if table.empty:
    st.info(f"No {show} listing for `{task_name}`.")
    st.stop()
n_show = st.number_input("Suspects to show", min_value=1, max_value=len(table), value=min(25, len(table)),
                         key="audit_n")
suspects = table.head(int(n_show))

display = suspects.copy()
display.insert(1, "photos", [loaders.gallery_strip_uri(key, i, STRIP_PHOTOS, STRIP_SIZE) for i in suspects["listing_id"]])
display.insert(2, "open", [listing_url(i) for i in suspects["listing_id"]])
st.dataframe(display, hide_index=True, width="stretch", row_height=STRIP_SIZE + 8,
             column_config={"photos": st.column_config.ImageColumn("photos", width="medium"),
                            "open": st.column_config.LinkColumn("listing page", display_text="open"),
                            "suspicion": st.column_config.ProgressColumn(
                                "suspicion", format="%.2f", min_value=0.0,
                                max_value=float(max(1.0, table["suspicion"].max())))})
selection_actions(run, suspects["listing_id"].tolist(), key="audit", extra=audit.selection_extra(suspects))

# --- one suspect: its photo evidence and the decision ---
st.subheader("Which photos contradict the record?")
listing_id = st.selectbox("Suspect", suspects["listing_id"].tolist(), key="audit_listing",
                          format_func=lambda i: f"{int(suspects.set_index('listing_id').at[i, 'rank'])}. {i}")
suspect = suspects.set_index("listing_id").loc[listing_id]
listing_link(listing_id, label=f"Open listing {listing_id}")
photo_evidence_view(run, key, task_name, listing_id)

if store is not None:
    current = store.get(listing_id, task_name)
    if current is not None:
        verdict = ("confirmed as recorded" if current["decision"] == decisions.CONFIRMED else
                   f"marked wrong (corrected: {current['corrected'] or 'not given'})")
        by = f" by {current['decided_by']}" if current["decided_by"] else ""
        st.success(f"Decided on {current['decided_at']}{by}: `{task.column}` = {current['recorded']} {verdict}.")
    if read_only:
        st.caption(":material/lock: Read-only: decisions are shown, not made, here.")
    else:
        user = access.current_user()  # None without sign-in: the decision records no user
        suggestion = audit.suggested_value(task, suspect["recorded"], suspect["photos_say"])
        confirm_column, wrong_column, undo_column = st.columns(3)
        corrected = wrong_column.text_input("Corrected value", value=suggestion, key=f"audit_corrected_{listing_id}",
                                            help="Prefilled with what the photos say, where that differs.")
        recorded_value = suspect["recorded"]
        if confirm_column.button("Recorded value is right", key="audit_confirm", icon=":material/check:"):
            store.decide(listing_id, task_name, task.column, recorded_value, decisions.CONFIRMED, decided_by=user)
            st.rerun()
        if wrong_column.button("Recorded value is wrong", key="audit_wrong", icon=":material/close:"):
            store.decide(listing_id, task_name, task.column, recorded_value, decisions.WRONG,
                         corrected.strip() or None, decided_by=user)
            st.rerun()
        if undo_column.button("Undo decision", key="audit_undo", icon=":material/undo:", disabled=current is None):
            store.undo(listing_id, task_name)
            st.rerun()

    corrections = store.corrections()
    st.download_button(f"Download corrections CSV ({len(corrections)} values marked wrong, every attribute)",
                       store.corrections_csv(), file_name=f"{run.name}-corrections.csv", mime="text/csv",
                       key="audit_corrections", disabled=corrections.empty)
    st.caption(f"Decisions are kept in `{store.path}`.")
