"""Corpora: the reference corpora on this machine, their manifests, and building new ones."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.common import build, controls
from exbert_core.corpus import catalog, names as corpus_names, sources
from exbert_core.limits import MAX_UPLOAD_MB
from exbert_core.model.names import DEFAULT_MODEL

view = controls.sidebar(analysis_controls=False)
state = view.state

st.markdown("## Corpora")
st.caption(
    "A reference corpus is a text whose tokens were annotated by spaCy (part of speech, dependency, "
    "entity) and embedded by one model at every layer. The search finds its tokens nearest to the "
    "token you select. A corpus can be searched only with the model that built it."
)

entries = catalog.entries()
with st.container(key="corpora_list"):
    if not entries:
        st.info("No corpus is built yet. The Attention page builds 'alice' on first use, or build one below.")
    else:
        st.dataframe(
            [{
                "corpus": e.name,
                "model": e.model,
                "fits the selected model": "yes" if e.fits(state.model) else "no",
                "sentences": e.sentences,
                "tokens": e.tokens,
                "size (MB)": round(e.bytes / 1e6, 1),
                "source": e.source,
                "built": e.built.replace("T", " ")[:16],
            } for e in entries],
            hide_index=True, key="corpora_table",
        )
        for e in entries:
            with st.expander(f"Manifest of '{e.name}'"):
                st.json(e.manifest, expanded=1)


def _checked_name(name: str, replace_key: str) -> str | None:
    """The corpus name if it may be built (valid, and replacing only when confirmed)."""
    problem = corpus_names.problem(name)
    if problem:
        st.error(problem)
        return None
    if catalog.entry_of(name) is not None and not st.session_state.get(replace_key):
        st.error(f"A corpus named '{name}' exists. Tick “Replace it” to rebuild it, or pick another name.")
        return None
    return name


def _built(name: str) -> None:
    controls.set_state(corpus=name)
    controls.note(f"Built corpus '{name}'; it is now the selected corpus.", kind="success")
    st.rerun()


st.markdown("### Build a corpus")
if view.info is None:
    st.info("Load a model in the sidebar first: a corpus is built with the selected model.")
    st.stop()
st.caption(
    f"With the model selected in the sidebar: **{state.model}**. Alice in Wonderland (37k tokens) takes "
    f"about 15 s with {DEFAULT_MODEL} on a laptop CPU, longer for bigger models and texts."
)
named, upload = st.tabs(["From a named text", "From your text file"])
with named:
    source = st.selectbox("Text", list(sources.SOURCES), format_func=lambda s: f"{s} · {sources.SOURCES[s]}",
                          key="build_source")
    suggested = catalog.default_corpus_name(state.model, source)
    name = (st.text_input("Corpus name", key="build_source_name", placeholder=suggested) or suggested).strip()
    st.checkbox("Replace it if it exists", key="build_source_replace")
    if st.button("Build", key="build_source_go", type="primary"):
        checked = _checked_name(name, "build_source_replace")
        if checked and build.build(checked, state.model, source=source):
            _built(checked)

with upload:
    file = st.file_uploader(f"A UTF-8 text file (.txt, at most {MAX_UPLOAD_MB} MB)", type=["txt"],
                            key="build_upload", max_upload_size=MAX_UPLOAD_MB)
    suggested = catalog.default_corpus_name(state.model, Path(file.name).stem if file else "my-text")
    name = (st.text_input("Corpus name", key="build_file_name", placeholder=suggested) or suggested).strip()
    st.checkbox("Replace it if it exists", key="build_file_replace")
    if st.button("Build", key="build_file_go", type="primary"):
        if file is None:
            st.error("Choose a text file first.")
        else:
            checked = _checked_name(name, "build_file_replace")
            if checked:
                try:
                    text = sources.read_user_text(file.getvalue())
                except sources.InvalidText as err:
                    st.error(f"{file.name}: {err}")
                else:
                    if build.build(checked, state.model, text=text, file_name=file.name):
                        _built(checked)
