"""Streamlit helpers shared by the pages: cached loaders, the shared sidebar, corpus builds.

UI only: every computation is a call into ``exbert_core``.
"""
