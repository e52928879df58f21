"""exbert_core: every computation behind exbert-streamlit (never imports streamlit)."""
