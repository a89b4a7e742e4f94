"""Streamlit-dependent helpers of the app: cached loaders, shared widgets, session state."""
