"""exBERT in Streamlit: `streamlit run app.py`.

The pages are in ``pages/`` (UI only); the shared sidebar and caches in ``pages/common/``; every
computation in ``exbert_core``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st

from exbert_core.runtime import return_freed_memory

log = logging.getLogger("exbert.app")
return_freed_memory()  # large transients (a search's attention batch) go back to the system

st.set_page_config(page_title="exBERT", page_icon=":material/hub:", layout="wide")

page = st.navigation([
    st.Page("pages/attention.py", title="Attention & search", icon=":material/hub:", default=True),
    st.Page("pages/corpora.py", title="Corpora", icon=":material/library_books:", url_path="corpora"),
])
try:
    page.run()
except Exception as err:  # the last net: a bug must not show a traceback to a reader
    log.exception("Unexpected error on page %s", page.title)
    st.error(f"Unexpected error: {type(err).__name__}: {err}. This is a bug in the app; the details "
             "are in the server log. Reloading the page usually helps.", icon=":material/bug_report:")
