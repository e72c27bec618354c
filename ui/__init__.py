"""Streamlit glue: shared state, widgets, chart builders, the lesson renderer."""
