"""Corpora: the reference corpora on this machine, their manifests, and building new ones.

Builds run in the background, one per corpus for the whole server (the banner at the top of every
page shows them). What a visitor may build is the operator's choice
(:mod:`exbert_core.corpus.build.policy`): existing corpora are read-only unless replacing is allowed,
uploads get names nobody else can take, and a disk quota bounds what all builds may write.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.common import background, build, sidebar
from app_pages.common import state as session
from exbert_core.corpus.build import jobs, policy, sources
from exbert_core.corpus.search import catalog
from exbert_core.corpus.format.names import free_name
from exbert_core.errors import USER_ERRORS
from exbert_core.limits import MAX_UPLOAD_MB
from exbert_core.progress import format_seconds

view = sidebar.sidebar(analysis_controls=False)
state = view.state

st.markdown("## Corpora")
st.caption(
    "A reference corpus is a text whose tokens were annotated by spaCy (part of speech, dependency, "
    "entity) and embedded by one model at every layer. The search finds its tokens nearest to the "
    "token you select. A corpus can be searched only with the model that built it. Its **manifest** records "
    "how it was built (model, text, counts, checksums of its files); a large corpus is stored in "
    "**shards**, pieces searched together."
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
                "shards": len(e.manifest.get("shards") or []),
                "size (MB)": round(e.bytes / policy.MB, 1),
                "source": e.source,
                "built": e.built.replace("T", " ")[:16],
                "build": e.build_id,
            } for e in entries],
            hide_index=True, key="corpora_table",
        )
        for e in entries:
            with st.expander(f"Manifest of '{e.name}'"):
                shards = e.manifest.get("shards") or []
                if len(shards) > 1:
                    st.dataframe([{"shard": s.get("dir"), "tokens": s.get("tokens"), "sentences": s.get("sentences"),
                                   "first token": s.get("first_token")} for s in shards],
                                 hide_index=True, key=f"shards_{e.name}")
                st.json(e.manifest, expanded=1)

st.markdown("### Build a corpus")
if view.info is None:
    st.info("Load a model in the sidebar first: a corpus is built with the selected model.")
    st.stop()
info = view.info


def _measured_here() -> str:
    """What earlier builds with this model took on this server (from their manifests)."""
    done = [e for e in entries if e.fits(state.model) and e.manifest.get("build_seconds")]
    if not done:
        return ("It runs in the background: the banner at the top of every page shows its progress and "
                "the time left, and you can keep using the app.")
    e = max(done, key=lambda e: e.tokens)
    seconds = float(e.manifest["build_seconds"])
    return (f"Measured on this server: '{e.name}' ({e.tokens:,} tokens) took {format_seconds(seconds)} "
            f"({e.tokens / seconds:,.0f} tokens/s). Builds run in the background (progress at the top "
            "of every page).")


try:
    quota = policy.quota_bytes()
except USER_ERRORS as err:
    st.error(background.md(str(err)))
    st.stop()
st.caption(
    f"With the model selected in the sidebar: **{state.model}**. {_measured_here()} Corpora on this server "
    f"use {policy.used_bytes() / policy.MB:,.0f} MB of the {quota / policy.MB:,.0f} MB allowed."
    + ("" if policy.allow_replace() else " Existing corpora are kept as they are: a new build needs a new name.")
)


def _reserved() -> int:
    return sum(s.reserved_bytes for s in jobs.running())


def _start(name: str, text: str, *, exists: bool, replace: bool, source: str | None = None,
           file_name: str | None = None) -> None:
    """Check the build against the operator's policy, then start it (or join the one running)."""
    running = jobs.status(name)
    if running is not None and running.running:
        background.watch(running)
        background.select_when_built(name)
        st.info(f"Corpus '{name}' is being built already (progress at the top of the page); it becomes "
                "your corpus when it is done.")
        return
    try:
        estimate = policy.check_build(name, exists=exists, replace=replace, characters=len(text), info=info,
                                      reserved=_reserved())
    except USER_ERRORS as err:
        st.error(background.md(str(err)))
        return
    build.start(name, state.model, source=source, text=text, file_name=file_name, select=True,
                reserved_bytes=estimate)
    st.rerun()  # the banner shows the build from the next run on


taken = {e.name for e in entries} | {s.key for s in jobs.running()}
# The form's default is a build the server accepts: the first text not built with this model yet,
# under a name no corpus has.
unbuilt = [s for s in sources.SOURCES if catalog.default_corpus_name(state.model, s) not in taken]
named, upload = st.tabs(["From a named text", "From your text file"])
with named:
    source = st.selectbox("Text", list(sources.SOURCES), format_func=lambda s: f"{s} · {sources.SOURCES[s]}",
                          key="build_source", index=list(sources.SOURCES).index(unbuilt[0]) if unbuilt else 0)
    suggested = free_name(catalog.default_corpus_name(state.model, source), taken)
    name = (st.text_input("Corpus name", key="build_source_name", placeholder=suggested,
                          help=f"Leave it empty to use “{suggested}”.") or suggested).strip()
    if policy.allow_replace():
        st.checkbox("Replace it if it exists", key="build_source_replace")
    characters = build.source_characters(source)
    if characters is None:
        st.caption("The text is fetched first (once per server); the build's time, disk and memory are told then.")
    fits = characters is None or build.show_estimate(info, characters)
    if st.button("Build", key="build_source_go", type="primary", disabled=not fits):
        try:
            with st.spinner(f"Fetching the text '{source}' (once per server)…"):
                path = sources.fetch_source(source)
            text = path.read_text(encoding="utf-8")
        except USER_ERRORS as err:
            st.error(background.md(str(err)))
        else:
            _start(name, text, exists=catalog.entry_of(name) is not None, source=path.stem,
                   replace=bool(st.session_state.get("build_source_replace")))

with upload:
    file = st.file_uploader(f"A UTF-8 text file (.txt, at most {MAX_UPLOAD_MB} MB)", type=["txt"],
                            key="build_upload", max_upload_size=MAX_UPLOAD_MB)
    stem = catalog.slug(Path(file.name).stem) if file else "my-text"
    prefix = (st.text_input("Name (a code is added so that it names only your text)", key="build_file_name",
                            placeholder=stem) or stem).strip()
    # Checked as soon as it is chosen (not UTF-8, UTF-16, empty: said now, and Build stays off).
    text = None
    if file is not None:
        try:
            text = sources.read_user_text(file.getvalue())
        except USER_ERRORS as err:
            st.error(f"{background.md(file.name)}: {background.md(str(err))}", icon=":material/block:")
    fits = text is not None and build.show_estimate(info, len(text))
    if st.button("Build", key="build_file_go", type="primary", disabled=not fits) and file and text:
        name = policy.upload_name(prefix, text, state.model)
        if catalog.entry_of(name) is not None:  # the same text with the same model: built once
            session.set_state(corpus=name)
            session.note(f"This text was built already as corpus '{name}'; it is now the selected "
                         "corpus.", kind="success")
            st.rerun()
        _start(name, text, exists=False, replace=False, file_name=file.name)
