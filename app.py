"""exBERT in Streamlit: `streamlit run app.py`.

The pages are in ``app_pages/`` (UI only); the shared sidebar and caches in ``app_pages/common/``;
every computation in ``exbert_core``. (Not ``pages/``: Streamlit treats a ``pages/`` folder beside the
main script as a version-1 multipage app, and when a server's first request is a link to one of
its pages it runs that file without this script, so without ``st.navigation`` and the wide layout.)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads sleep when idle instead of spinning (read when torch loads): on shared CPUs the
# spinning doubled the CPU a search costs (measured: max-attention pass 2.5-3.0 s -> 0.9 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st

# Warm-up: every session runs this script in its own thread, and the pages import heavy modules
# lazily (pyarrow imports pandas when a corpus is first read). A module another thread is still
# importing sits half-initialised in sys.modules, and Plotly looks pandas up there without
# importing it ("partially initialized module 'pandas' has no attribute 'Series'" for up to half
# of 8 first visitors). An `import` waits for a module being imported elsewhere, so importing these
# here, before any page runs, gives every session complete modules. pandas first: the others
# use it.
import pandas  # noqa: E402,F401
import pyarrow.dataset  # noqa: E402,F401  (pyarrow.parquet reads through it; it imports pandas)
import pyarrow.parquet  # noqa: E402,F401
import narwhals  # noqa: E402,F401  (Plotly's dataframe checks)
import plotly.graph_objects  # noqa: E402,F401
import plotly.io  # noqa: E402,F401
from exbert_core.corpus.search import catalog, query as search, store  # noqa: E402,F401  (FAISS)
from exbert_core.model import analysis, annotate, loading  # noqa: E402,F401  (torch, transformers, spaCy)
from exbert_core.views import head_atlas, match_table, sweep, tables  # noqa: E402,F401
from exbert_core.views.charts import attention_charts, corpus_charts, head_maps, sweep_charts  # noqa: E402,F401

from app_pages.common import banner, style
from exbert_core.runtime import return_freed_memory

log = logging.getLogger("exbert.app")
return_freed_memory()  # large transients (a search's attention batch) go back to the system

# The favicon is a file this server serves: with a `:material/...:` page icon the browser fetches
# its picture from fonts.gstatic.com. No page may ask any host but this server (the app works
# offline, and no third party learns who opens a link). Icons inside pages use Streamlit's own font.
FAVICON = Path(__file__).resolve().parent / "app_pages" / "common" / "favicon.png"
st.set_page_config(page_title="exBERT", page_icon=str(FAVICON), layout="wide")

page = st.navigation([
    st.Page("app_pages/attention.py", title="Attention & search", icon=":material/hub:", default=True),
    # URL paths are the file names (model_view, layers, head_atlas, compare), which AppTest's
    # switch_page also finds before the first run.
    st.Page("app_pages/model_view.py", title="Model view", icon=":material/grid_view:"),
    st.Page("app_pages/layers.py", title="Layer sweep & logit lens", icon=":material/stacked_bar_chart:"),
    st.Page("app_pages/head_atlas.py", title="Head atlas", icon=":material/apps:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/corpora.py", title="Corpora", icon=":material/library_books:", url_path="corpora"),
])
style.apply()  # first, so the rules hold from the first frame of every page
try:
    banner.show()  # background work (corpus builds, a model's first preparation), above every page
    page.run()
except Exception as err:  # the last net: a bug must not show a traceback to a reader
    log.exception("Unexpected error on page %s", page.title)
    st.error(f"Unexpected error: {type(err).__name__}: {err}. This is a bug in the app; the details "
             "are in the server log. Reloading the page usually helps.", icon=":material/bug_report:")
