"""Building a corpus from the app, with its progress shown in place (``st.status`` + ``st.progress``)."""

from __future__ import annotations

import logging
import time

import streamlit as st

from exbert_core import corpus_build, sources
from exbert_core.errors import USER_ERRORS
from exbert_core.paths import corpora_dir
from pages.common import cache

log = logging.getLogger(__name__)

# Share of the bar per stage: parsing is fast, embedding is most of the work.
_STAGES = {"parse": (0.0, 0.25, "Parsing sentences with spaCy"),
           "embed": (0.25, 0.97, "Running the model over the corpus"),
           "write": (0.97, 1.0, "Writing the index")}


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

            def progress(stage: str, done: int, total: int) -> None:
                low, high, words = _STAGES.get(stage, (0.0, 1.0, stage))
                part = done / total if total else 1.0
                show(low + (high - low) * part, f"{words}: {done:,} of {total:,}")

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
