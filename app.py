"""The gallery-core app: ``streamlit run app.py``.

This file only sets up the pages (listed in ``ui/navigation.py``) and the sidebar's run picker; each page
in ``ui/pages/`` reads the run through ``ui.loaders`` and calls ``gallery_core``.
"""

import streamlit as st

from ui import access, navigation
from ui.widgets import run_picker

st.set_page_config(page_title="gallery-core", page_icon=":material/photo_library:", layout="wide")

PAGES = [st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
         for p in navigation.PAGES]

# With sign-in configured ([auth] in .streamlit/secrets.toml) a signed-out visitor sees only the sign-in button.
signed_out = access.must_sign_in()
page = st.navigation(PAGES, position="hidden" if signed_out else "sidebar")
if signed_out:
    access.sign_in_page()
    st.stop()
run_picker()
access.sidebar_status()
page.run()
