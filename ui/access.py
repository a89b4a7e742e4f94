"""Who uses the app and what they may change: read-only mode (``gallery_core.app.settings``) and Streamlit's
built-in sign-in (OpenID Connect: ``st.login``, configured by ``[auth]`` in ``.streamlit/secrets.toml``).

Without ``[auth]`` the app is open, as it always was, and decisions record no user. With it, a visitor who is
not signed in sees only a sign-in button, and every audit decision records the signed-in user's e-mail.
"""

from __future__ import annotations

import streamlit as st

from gallery_core.app.settings import load_app_settings


def read_only() -> bool:
    """Whether actions that write to disk are hidden (read each run: a changed setting applies at once)."""
    return load_app_settings().read_only


def auth_configured() -> bool:
    # load_if_toml_exists first: asking st.secrets for a key without a secrets file raises
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def current_user() -> str | None:
    """The signed-in user (e-mail, else name, else subject), or None when sign-in is not configured."""
    if not auth_configured() or not st.user.is_logged_in:
        return None
    for claim in ("email", "name", "sub"):
        if st.user.get(claim):
            return str(st.user.get(claim))
    return "signed-in user"


def must_sign_in() -> bool:
    return auth_configured() and not st.user.is_logged_in


def sign_in_page() -> None:
    """All a signed-out visitor sees when sign-in is required."""
    import importlib.util

    st.title("gallery-core")
    if importlib.util.find_spec("authlib") is None:  # st.login would fail with a traceback
        st.error("Sign-in is configured (`[auth]` in `.streamlit/secrets.toml`) but Authlib, which Streamlit's "
                 "sign-in needs, is not installed: `pip install 'gallery-core[auth]'` (or `Authlib>=1.3.2`).")
        return
    st.markdown("Sign in to explore and audit the catalogue.")
    st.button("Sign in", key="sign_in", icon=":material/login:", on_click=st.login)


def sidebar_status() -> None:
    """Who is signed in (with a sign-out button), and whether the app is read-only."""
    user = current_user()
    if user is not None:
        st.sidebar.caption(f"Signed in as **{user}**")
        st.sidebar.button("Sign out", key="sign_out", icon=":material/logout:", on_click=st.logout)
    if read_only():
        st.sidebar.caption(":material/lock: Read-only: audit decisions and writing catalogues are off.")
