"""Plotly figures for the app, one module a view: pure functions of arrays, token strings and
counts (no streamlit)."""
