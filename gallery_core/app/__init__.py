"""What the app shows, as plain functions of a run's tables (no Streamlit here)."""
