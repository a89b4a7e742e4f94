"""The gallery-core app: ``streamlit run app.py``.

This file only sets up the pages and the sidebar's run picker; each page in ``pages/`` reads the run
through ``ui.loaders`` and calls ``gallery_core``.
"""

import streamlit as st

from ui.widgets import run_picker

st.set_page_config(page_title="gallery-core", page_icon=":material/photo_library:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/retrieve.py", title="Retrieve", icon=":material/image_search:"),
    st.Page("pages/listing.py", title="Listing", icon=":material/photo_library:"),
    st.Page("pages/audit.py", title="Audit", icon=":material/fact_check:"),
    st.Page("pages/model.py", title="Model", icon=":material/monitoring:"),
]

page = st.navigation(PAGES)
run_picker()
page.run()
