"""The app's caches, keyed by plain names (no model object crosses a cache boundary).

Models and corpora are shared resources (``st.cache_resource``, one copy per server process);
analyses and searches are values (``st.cache_data``, keyed by names, the sentence and the
settings, shared by every session of the server and copied out to each). A model's first
preparation (SmolLM2's conversion) is a background job (``exbert_core.corpus.build.jobs``).
"""

from __future__ import annotations

import threading
import time

import streamlit as st

from app_pages.common import background
from exbert_core import memory
from exbert_core.corpus.build import jobs
from exbert_core.corpus.search import query as core_search, serve, store as core_corpus
from exbert_core.corpus.search.query import SearchResult
from exbert_core.corpus.search.store import Corpus
from exbert_core.errors import ModelLoadError
from exbert_core.model import analysis as core_analysis, annotate, loading, measures
from exbert_core.model.analysis import Analysis, Candidate
from exbert_core.model.annotate import WordAnnotation
from exbert_core.progress import format_seconds
from exbert_core.views import sweep as core_sweep

TOP_K_PREDICTIONS = 10
RETRY_AFTER_S = 60  # a failed preparation (e.g. no package index) is not retried on every rerun


def model(name: str) -> loading.LoadedModel:
    """A loaded model by canonical name. A model's first preparation (SmolLM2's download and
    conversion) runs once for the server as a background job; this session shows its stages
    while it waits, and a click only reruns the page, never the preparation."""
    if loading.needs_preparation(name):
        _wait_for_preparation(name)
    return _model(name)


def _model(name: str) -> loading.LoadedModel:
    """Models stay in memory within the memory budget (``EXBERT_MEMORY_BUDGET``), least recently
    used out first (``loading.kept``), together with the corpora's metadata."""
    if loading.is_kept(name):
        return loading.kept(name)
    with st.spinner("Loading the model…"):
        return loading.kept(name)


def _wait_for_preparation(name: str) -> None:
    key = jobs.model_key(name)
    status = jobs.status(key)
    if status is None or status.running or time.time() - (status.finished or 0) > RETRY_AFTER_S:
        status, _ = jobs.start(key, f"Preparing model '{name}' for its first use (once per server)",
                               lambda progress: loading.prepare(name, progress))
    background.watch(status)
    with st.status(f"{background.md(status.label)}…", expanded=True) as box:
        line = st.empty()
        while status is not None and status.running:
            line.caption(background.describe(status))
            time.sleep(0.5)
            status = jobs.status(key)
        if status is None or status.state == jobs.FAILED:
            box.update(state="error")
            raise ModelLoadError(status.error if status else f"Preparing {name} failed.")
        box.update(label=f"Prepared model '{name}' in {format_seconds(status.elapsed_s)}",
                   state="complete", expanded=False)


@st.cache_resource(max_entries=16, show_spinner="Opening the corpus…")
def corpus(path: str, stamp: int) -> Corpus:
    """An opened corpus (its manifests only: metadata and codes are read on first use, under the
    memory budget); ``stamp`` (its manifest's mtime) makes a rebuilt corpus a new entry. With
    ``EXBERT_RAY_ADDRESS`` set, its shards are scanned by Ray actors on that cluster."""
    del stamp
    opened = core_corpus.load(path)
    address = serve.address_from_env()
    return serve.serve(opened, address) if address else opened


@st.cache_resource(show_spinner="Loading spaCy…")
def spacy_pipeline():
    return annotate.load_spacy()


# Byte budgets from the one memory budget: one analysis of a long sentence under a 30-layer model
# holds ~100 MB of attention and hidden states.
_BUDGET = memory.budget_bytes()


@st.cache_data(max_entries=64, max_size=_BUDGET // 5, show_spinner="Analysing the sentence…")
def analysis(model_name: str, sentence: str, masks: tuple[int, ...]) -> tuple[Analysis, list[WordAnnotation | None]]:
    """The analysis of ``sentence`` under ``model_name`` with ``masks``, and each token's spaCy
    annotation."""
    loaded = model(model_name)
    result = core_analysis.analyze(loaded, sentence, masks, top_k=TOP_K_PREDICTIONS, logit_lens=False)
    return result, annotate.annotate_analysis(result, spacy_pipeline())


@st.cache_data(max_entries=64, max_size=_BUDGET // 10, show_spinner="Measuring what each token takes from the others…")
def weights(model_name: str, sentence: str, masks: tuple[int, ...], measure: str) -> measures.Weights:
    """``measure`` over every layer of the analysis (``measures.compute``; ``2 L n²`` floats)."""
    result, _ = analysis(model_name, sentence, masks)
    return measures.compute(model(model_name), result, measure)


@st.cache_data(max_entries=64, max_size=_BUDGET // 10,
               show_spinner="Searching the corpus (the first search of a layer reads its index)…")
def search(
    model_name: str,
    corpus_path: str,
    corpus_stamp: int,
    sentence: str,
    masks: tuple[int, ...],
    position: int,
    layer: int,
    kind: str,
    heads: tuple[int, ...],
    k: int,
    measure: str = measures.DEFAULT_MEASURE,
    aggregate: str = measures.DEFAULT_AGGREGATE,
) -> SearchResult:
    """The k nearest corpus tokens to token ``position``, each with the token it takes most from
    under ``measure`` and ``aggregate`` (see ``exbert_core.corpus.search.query.search``)."""
    loaded = model(model_name)
    reference = corpus(corpus_path, corpus_stamp)
    result, _ = analysis(model_name, sentence, masks)
    return core_search.search(reference, loaded, result, position, layer, kind, heads, k,
                              measure=measure, aggregate=aggregate)


@st.cache_data(max_entries=64, max_size=_BUDGET // 80, show_spinner=False)
def logit_lens(model_name: str, sentence: str, masks: tuple[int, ...], position: int,
               k: int = TOP_K_PREDICTIONS) -> tuple[tuple[Candidate, ...], ...]:
    """The LM head's top-k for token ``position`` at every layer 1..L (``analysis.lens_at``)."""
    result, _ = analysis(model_name, sentence, masks)
    return core_analysis.lens_at(model(model_name), result, position, k)


@st.cache_data(max_entries=32, max_size=_BUDGET // 40,
               show_spinner="Searching the corpus at every layer (the first sweep reads every index)…")
def sweep(
    model_name: str,
    corpus_path: str,
    corpus_stamp: int,
    sentence: str,
    masks: tuple[int, ...],
    position: int,
    kind: str,
    heads: tuple[int, ...],
    k: int,
) -> list[core_sweep.LayerSummary]:
    """The neighbours' histograms of token ``position`` at every layer (``exbert_core.views.sweep``)."""
    loaded = model(model_name)
    reference = corpus(corpus_path, corpus_stamp)
    result, _ = analysis(model_name, sentence, masks)
    return core_sweep.layer_sweep(reference, loaded, result, position, kind=kind, heads=list(heads) or None, k=k)


@st.cache_resource
def atlas_lock(corpus_path: str, sentences: int) -> threading.Lock:
    """One lock per corpus and sample, so that two sessions asking for a head atlas that is not
    cached yet compute it once (the second waits, then reads the file the first wrote)."""
    del corpus_path, sentences
    return threading.Lock()
