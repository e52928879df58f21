"""Building corpora from the app: one background job per corpus for the whole server
(:mod:`exbert_core.corpus.build.jobs`), shown by the banner at the top of every page; and the check that
the selected corpus fits the selected model (the default corpus is built on first use)."""

from __future__ import annotations

import streamlit as st

from app_pages.common import background, cache, sidebar
from app_pages.common import state as session
from exbert_core.corpus.build import jobs, policy
from exbert_core.corpus.build.jobs import JobStatus
from exbert_core.corpus.format.names import DEFAULT_CORPUS
from exbert_core.corpus.search import catalog
from exbert_core.model.loading import ModelInfo
from exbert_core.model.names import DEFAULT_MODEL
from exbert_core.paths import sources_dir

ALICE_CHARACTERS = 143_234  # before the text is fetched: its size, for the estimate
TOLD_NOT_BUILT = "told_not_built"  # the model's own corpora this session was told in full are not built


def start(name: str, model_name: str, *, source: str | None = None, text: str | None = None,
          file_name: str | None = None, label: str | None = None, select: bool = False,
          reserved_bytes: int = 0) -> JobStatus:
    """Start the build of corpus ``name`` with ``model_name`` (or join the one running), and
    follow it in this session (``select``: make it this session's corpus when done). The caller
    checks that the build is allowed (:mod:`exbert_core.corpus.build.policy`)."""
    status, _ = jobs.start_build(name, cache.model(model_name), source=source, text=text, file_name=file_name,
                                 label=label, reserved_bytes=reserved_bytes)
    background.watch(status)
    if select:
        background.select_when_built(name)
    return status


def show_estimate(info: ModelInfo, characters: int) -> bool:
    """Say what building ``characters`` of text with ``info``'s model will take (time, disk,
    memory), or why it would not fit; returns whether it fits."""
    plan = policy.plan(info, characters)
    if plan.problem:
        st.error(plan.problem, icon=":material/block:")
        return False
    st.caption(f"This build: {plan.summary()}.")
    return True


def source_characters(source: str) -> int | None:
    """Characters of a named source text, when it was fetched already (else None)."""
    path = sources_dir() / f"{source}.txt"
    return path.stat().st_size if path.is_file() else None


def _failed(status: JobStatus, retry_label: str) -> bool:
    """Show a failed build with a button to try again; returns whether it was pressed."""
    st.error(f"{background.md(status.label)} failed. {background.md(status.error or '')}", icon=":material/error:")
    return st.button(retry_label, key="build_retry")


def corpus_ready(view: sidebar.View) -> catalog.CorpusEntry | None:
    """The selected corpus if it can be searched with the selected model; else say why and offer
    a fix: the default corpus is built on first use, a model's own corpus on request, both in
    the background (the page above keeps working; the banner shows the progress)."""
    state = view.state
    entry = view.corpus
    name = state.corpus
    own = catalog.default_corpus_name(state.model)
    if entry is None:
        job = jobs.status(name)
        if job is not None and job.running:
            background.watch(job)
            st.info(f"Corpus '{name}' is being built (progress at the top of the page). The matches "
                    "appear here when it is done; the views above already work.", icon=":material/hourglass_top:")
            return None
        first_run = name == DEFAULT_CORPUS and state.model == DEFAULT_MODEL
        if first_run or name == own:
            source_words = "Alice in Wonderland"
            if job is not None and job.state == jobs.FAILED:
                if _failed(job, f"Try building '{name}' again"):
                    start(name, state.model, source="alice")
                    st.rerun()
            elif first_run:  # the first run builds the default corpus by itself, if it fits
                plan = policy.plan(view.info, source_characters("alice") or ALICE_CHARACTERS) if view.info else None
                if plan is not None and plan.problem:
                    st.error(plan.problem, icon=":material/block:")
                    return None
                # The title stays while the build runs, so it holds no time: the line under it
                # gives the time left at the live rate.
                told = f", about {plan.tokens:,} tokens" if plan else ""
                start(name, state.model, source="alice",
                      label=f"First run: building the reference corpus '{name}' ({source_words} with "
                            f"{state.model}{told})")
                st.rerun()  # the banner shows it from the next run on
            else:
                told = st.session_state.setdefault(TOLD_NOT_BUILT, set())
                if name not in told:  # said once in full; later pages keep one line, the cost and the button
                    told.add(name)
                    st.info(f"Corpus '{name}' is not built yet: it indexes *{source_words}* with {state.model}. "
                            "It builds in the background; the banner at the top shows how long it takes.")
                else:
                    st.caption(f"No matches yet: corpus '{name}' is not built.")
                fits = view.info is None or show_estimate(view.info, source_characters("alice") or ALICE_CHARACTERS)
                if fits and st.button(f"Build '{name}' now", key="build_own"):
                    start(name, state.model, source="alice")
                    st.rerun()
        else:
            st.warning(f"Corpus '{name}' is not built. Build it on the Corpora page, or pick another "
                       "corpus in the sidebar.")
            st.page_link("app_pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        return None
    if not entry.fits(state.model):
        built = catalog.entries()
        fitting = [e.name for e in built if e.fits(state.model)]
        # The model's own name may be taken by a corpus of another model (two hub ids that end
        # alike): never offer to build over it; existing corpora are replaced on the Corpora page only.
        own_taken = any(e.name == own for e in built)
        st.warning(f"Corpus '{name}' was built with model '{entry.model}', so it cannot be searched "
                   f"with '{state.model}'. Pick a corpus built with '{state.model}' or build one.")
        if fitting:
            st.button(f"Use corpus '{fitting[0]}'", key="use_fitting",
                      on_click=session.set_state, kwargs={"corpus": fitting[0]})
        elif (job := jobs.status(own)) is not None and job.running:
            st.info(f"Corpus '{own}' is being built (progress at the top of the page).")
        elif own_taken:
            st.info(f"A corpus named '{own}' exists but was built with another model. Build one with "
                    f"'{state.model}' under another name on the Corpora page.")
            st.page_link("app_pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        elif ((view.info is None or show_estimate(view.info, source_characters("alice") or ALICE_CHARACTERS))
              and st.button(f"Build '{own}' (Alice in Wonderland with {state.model})", key="build_own")):
            start(own, state.model, source="alice", select=True)
            st.rerun()
        return None
    return entry
