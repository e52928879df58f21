"""Building a corpus from the app, with its progress shown in place (``st.status`` + ``st.progress``),
and the check that the selected corpus fits the selected model."""

from __future__ import annotations

import logging
import time

import streamlit as st

from app_pages.common import cache, controls
from exbert_core.corpus import build as corpus_build, catalog, sources
from exbert_core.corpus.names import DEFAULT_CORPUS
from exbert_core.errors import USER_ERRORS
from exbert_core.model.names import DEFAULT_MODEL
from exbert_core.paths import corpora_dir
from exbert_core.progress import Step

log = logging.getLogger(__name__)

# Share of the bar per stage: parsing is fast, embedding is most of the work.
_STAGES = {"parse": (0.0, 0.25), "embed": (0.25, 0.97), "write": (0.97, 1.0), "done": (1.0, 1.0)}


def build(name: str, model_name: str, *, source: str | None = None, text: str | None = None,
          file_name: str | None = None, label: str | None = None) -> bool:
    """Build corpus ``name`` for ``model_name`` from a named ``source`` or from ``text``.

    Shows a status box with a progress bar; returns whether the build succeeded (a failure is
    shown as an error that says what to do).
    """
    started = time.perf_counter()
    with st.status(label or f"Building corpus '{name}'…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        last = [-1.0]

        def show(fraction: float, message: str) -> None:
            if fraction - last[0] >= 0.01 or fraction >= 1.0:
                last[0] = fraction
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        try:
            if source is not None:
                path = sources.fetch_source(source, progress=lambda msg: show(0.0, msg))
                text = path.read_text(encoding="utf-8")
                origin = {"name": path.stem}
            else:
                origin = {"file": file_name or "upload"}
            if not text:
                raise corpus_build.BuildError("There is no text to build a corpus from.")
            show(0.0, f"Loading model '{model_name}'…")
            loaded = cache.model(model_name)

            def progress(step: Step) -> None:
                low, high = _STAGES.get(step.stage, (0.0, 1.0))
                part = step.fraction if step.fraction is not None else 0.0
                amount = f": {step.done:,.0f} of {step.total:,.0f} {step.unit}" if step.total else ""
                show(low + (high - low) * part, f"{step.message}{amount}")

            corpus_build.build(text, name, corpora_dir(), loaded, source=origin, progress=progress)
        except USER_ERRORS as err:
            bar.empty()
            status.update(label=f"Could not build corpus '{name}'", state="error", expanded=True)
            st.error(str(err))
            return False
        except Exception as err:
            log.exception("Building corpus %s failed", name)
            bar.empty()
            status.update(label=f"Could not build corpus '{name}'", state="error", expanded=True)
            st.error(f"The build failed ({type(err).__name__}: {err}). Try again, or build it from "
                     f"the command line: python scripts/build_corpus.py --source alice --name {name} "
                     f"--model {model_name}")
            return False
        bar.empty()
        seconds = time.perf_counter() - started
        status.update(label=f"Built corpus '{name}' in {seconds:.0f} s", state="complete", expanded=False)
    return True


def _built(name: str) -> None:
    entry = catalog.entry_of(name)
    size = f" ({entry.sentences:,} sentences, {entry.tokens:,} tokens)" if entry else ""
    controls.set_state(corpus=name)
    controls.note(f"Built the reference corpus '{name}'{size}. It is kept in the data cache for next time.",
                  kind="success")
    st.rerun()


def corpus_ready(view: controls.View) -> catalog.CorpusEntry | None:
    """The selected corpus if it can be searched with the selected model; else explain and offer a
    fix (the default corpus is built on first use, a model's own corpus on request)."""
    state = view.state
    entry = view.corpus
    name = state.corpus
    own = catalog.default_corpus_name(state.model)
    if entry is None:
        if name == DEFAULT_CORPUS and state.model == DEFAULT_MODEL:
            if build(DEFAULT_CORPUS, DEFAULT_MODEL, source="alice",
                     label="First run: building the reference corpus 'alice' (Alice in Wonderland)…"):
                _built(DEFAULT_CORPUS)
            return None
        if name == own:
            st.info(f"Corpus '{name}' is not built yet: it indexes *Alice in Wonderland* with "
                    f"{state.model} (a minute or more for larger models).")
            if st.button(f"Build '{name}' now", key="build_own") and build(name, state.model, source="alice"):
                _built(name)
        else:
            st.warning(f"Corpus '{name}' is not built. Build it on the Corpora page, or pick another "
                       "corpus in the sidebar.")
            st.page_link("app_pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        return None
    if not entry.fits(state.model):
        fitting = [e.name for e in catalog.entries() if e.fits(state.model)]
        st.warning(f"Corpus '{name}' was built with model '{entry.model}', so it cannot be searched "
                   f"with '{state.model}'. Pick a corpus built with '{state.model}' or build one.")
        if fitting:
            st.button(f"Use corpus '{fitting[0]}'", key="use_fitting",
                      on_click=controls.set_state, kwargs={"corpus": fitting[0]})
        elif (st.button(f"Build '{own}' (Alice in Wonderland with {state.model})", key="build_own")
              and build(own, state.model, source="alice")):
            _built(own)
        return None
    return entry
