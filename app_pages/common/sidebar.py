"""The shared sidebar: model, corpus and sentence, then the controls of the view, each drawn from
and written to the session's state (:mod:`app_pages.common.state`), and the messages at the top of
the page (the link's problems, notes, and this run's problems).

Pages call :func:`sidebar` first and get a :class:`View` (state, model info, analysis). A page
names itself (its own URL parameters come from the table in :mod:`exbert_core.app.state`) and the
sidebar groups it uses (``groups``); the controls it does not draw keep their values.

Order of a run: the model is loaded and the state checked against it; the sentence is tokenized
and the masks and the token checked against its tokens *before* the model runs on it (a link's
bad masks are never analysed); then the analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app_pages.common import cache, widgets
from app_pages.common import state as session
from exbert_core.app import state as app_state
from exbert_core.app.corpus_choice import corpus_for, fitting
from exbert_core.app.state import AppState, CorpusFacts, ModelFacts, TokenFacts
from exbert_core.corpus.search import catalog
from exbert_core.model import analysis as core_analysis
from exbert_core.model.analysis import Analysis
from exbert_core.model.annotate import WordAnnotation
from exbert_core.model.loading import ModelInfo
from exbert_core.model.measure_names import (
    AGGREGATE_EXPLANATIONS,
    AGGREGATE_LABELS,
    AGGREGATES,
    MEASURES,
)
from exbert_core.model.measure_names import EXPLANATIONS as MEASURE_EXPLANATIONS
from exbert_core.model.measure_names import LABELS as MEASURE_LABELS
from exbert_core.model.names import DEFAULT_MODEL, OFFLINE_MODELS
from exbert_core.model.selection import Heads, layer_range
from exbert_core.views.explain import model_line
from exbert_core.views.labels import clean_piece, markdown_text

# Widget keys (tests and the browser find widgets by these).
K_MODEL = "sb_model"
K_CORPUS = "sb_corpus"
K_SENTENCE = "sb_sentence"
K_LAYER = "sb_layer"
K_HEADS = "sb_heads"
K_HEADS_ALL = "sb_heads_all"
K_HEADS_NONE = "sb_heads_none"
K_MASKS = "sb_masks"
K_THRESHOLD = "sb_threshold"
K_HIDE_SPECIAL = "sb_hide_special"
K_MEASURE = "sb_measure"
K_AGGREGATE = "sb_aggregate"
K_BY = "sb_by"
K_K = "sb_k"
K_IMAGE = "sb_image"

BY_LABELS = {"embedding": "Token embedding", "heads": "Head embedding"}
# The sidebar's groups of sentence controls; a page draws those it uses (the others keep values).
GROUPS = ("layer", "heads", "masks", "measure", "threshold", "special", "search")


@dataclass
class View:
    """What a page needs after the sidebar: the state, and what could be loaded for it."""

    state: AppState
    page: str | None = None
    info: ModelInfo | None = None
    analysis: Analysis | None = None
    words: list[WordAnnotation | None] | None = None
    corpus: catalog.CorpusEntry | None = None
    problems: list[str] = field(default_factory=list)
    starting: bool = False  # this run opens a link (the session's first run, or Back/Forward)
    model_failed: bool = False  # the model could not be loaded (the page offers the default one)
    messages: Any = None  # the container above the page's content
    url_box: Any = None  # the link's problems, redrawn by page.page_fitted

    @property
    def params(self) -> tuple[str, ...]:
        """The page's own URL parameters."""
        return app_state.page_params(self.page) if self.page else ()

    @property
    def ready(self) -> bool:
        return self.info is not None and self.analysis is not None

    def label(self, position: int) -> str:
        """A token's label for menus: ``9 · escape`` (masked tokens show the hidden word)."""
        assert self.analysis is not None
        t = self.analysis.tokens[position]
        text = clean_piece(t.text)
        if position in self.analysis.masked:
            text = f"[MASK] {self.analysis.sentence[t.start:t.end]}"
        return f"{position} · {text}"

    def layer_label(self) -> str:
        """The paper's ``layer-[heads]`` label of the view, e.g. ``2-[0,3]``."""
        assert self.info is not None and self.state.layer is not None
        return self.state.heads.label(self.state.layer, self.info.heads)


def sidebar(*, page_name: str | None = None, analysis_controls: bool = True,
            groups: tuple[str, ...] = GROUPS) -> View:
    """Draw the shared controls and return the view they describe.

    ``page_name``: the page (one of ``app_state.PAGES``; its own URL parameters are kept in the
    link); ``analysis_controls=False`` draws only model and corpus (pages that do not analyse a
    sentence); ``groups``: the sentence controls drawn (:data:`GROUPS`).
    """
    state = session.begin_run()
    view = View(state, page=page_name, starting=session.starting())
    view.messages = widgets.top_bar()
    view.url_box = view.messages.empty()

    with st.sidebar:
        st.markdown("### exBERT")
        st.caption("What does a transformer attend to, and which corpus tokens does it see as alike?",
                   help="A **transformer** is the kind of language model behind today's chatbots. It reads text "
                        "as **tokens** (words or pieces of words) in **layers**; in each layer every token "
                        "**attends to** (takes information from) the others. A **corpus** is a reference "
                        "text whose tokens were annotated and indexed, to find tokens the model sees as alike.")
        view.info = _model_control(view)
        if view.info is not None:
            info = view.info
            session.fitted(*app_state.fit(session.get_state(), ModelFacts(
                info.name, info.layers, info.heads, info.mask_token is not None)))
        view.corpus = _corpus_control(session.get_state())
        state = session.get_state()  # a link records the corpus's build
        session.fitted(*app_state.fit(state, CorpusFacts(
            state.corpus, view.corpus.build_id if view.corpus else None, from_link=view.starting)))
        if analysis_controls:
            _sentence_control(session.get_state())
            if view.info is not None:
                _analyse(view)
            view.state = session.get_state()
            if view.analysis is not None:
                _view_controls(view, view.info, groups)
        if "image" in view.params:
            _image_control(session.get_state())

    view.state = session.get_state()
    session.finish_run(view.params)
    show_messages(view)
    session.end_start()
    return view


def show_messages(view: View) -> None:
    """The link's problems, the notes, and the problems of this run, at the top of the page."""
    box = view.messages
    warnings = session.link_warnings(view.params)
    if warnings:
        widgets.link_warning(view.url_box, warnings)
    for kind, message in session.take_notes():
        if kind == "success":
            box.success(markdown_text(message), icon=":material/check_circle:")
        else:
            box.warning(markdown_text(message), icon=":material/warning:")
    for problem in view.problems:
        box.error(markdown_text(problem), icon=":material/error:")
    if view.model_failed and view.state.model != DEFAULT_MODEL:
        box.button(f"Open the default model ({DEFAULT_MODEL})", key="use_default_model",
                   on_click=session.set_state, kwargs={"model": DEFAULT_MODEL, "masks": (), "token": None})


# ---------------------------------------------------------------------------------------------
# Callbacks: a widget's new value goes into the state


def _on_model() -> None:
    name, problem = app_state.check_model_name(st.session_state.get(K_MODEL) or "")
    if problem:
        session.note(problem)
    state = session.get_state()
    if name != state.model:  # positions belong to the old tokenizer
        session.set_state(model=name, masks=(), token=None, token_b=None, layer_b=None,
                          corpus=corpus_for(name, catalog.entries(), current=state.corpus))


def _on_sentence() -> None:
    text = " ".join((st.session_state.get(K_SENTENCE) or "").split())[: app_state.MAX_SENTENCE_CHARS]
    if text != session.get_state().sentence:
        session.set_state(sentence=text, masks=(), token=None, token_b=None)


def _setter(key: str, field_name: str, convert: Callable[[Any], Any]) -> Callable[[], None]:
    def callback() -> None:
        value = st.session_state.get(key)
        if value is not None:
            session.set_state(**{field_name: convert(value)})

    return callback


# ---------------------------------------------------------------------------------------------
# The controls


def _model_control(view: View) -> ModelInfo | None:
    state = session.get_state()
    options = list(OFFLINE_MODELS) + list(app_state.SUGGESTED_HUB_MODELS)
    if state.model not in options:
        options.append(state.model)
    widgets.seed(K_MODEL, state.model)
    st.selectbox(
        "Model", options, key=K_MODEL, on_change=_on_model, accept_new_options=True,
        format_func=_model_option,
        help="The offline models work without internet. Type any Hugging Face model id "
             "(e.g. bert-base-uncased) to load it from the hub.",
    )
    loaded = widgets.attempt(lambda: cache.model(state.model), f"Could not load model '{state.model}'.",
                             problems=view.problems, hint="Pick another model in the sidebar.")
    if loaded is None:
        view.model_failed = True
        return None
    info = loaded.info
    st.caption(model_line(info.family, info.layers, info.heads, causal=info.causal, lm_head=info.has_lm_head))
    return info


def _model_option(name: str) -> str:
    if name == DEFAULT_MODEL:
        return f"{name} (offline, default)"
    if name in OFFLINE_MODELS:
        return f"{name} (offline)"
    if name in app_state.SUGGESTED_HUB_MODELS:
        return f"{name} (needs internet)"
    return str(name)


def _corpus_control(state: AppState) -> catalog.CorpusEntry | None:
    entries = {e.name: e for e in catalog.entries()}
    fits = [e.name for e in fitting(state.model, list(entries.values()))]
    options = fits + [name for name in entries if name not in fits]
    for name in (state.corpus, catalog.default_corpus_name(state.model)):
        if name not in options:
            options.append(name)

    def describe(name: str) -> str:
        entry = entries.get(name)
        if entry is None:
            return f"{name} (not built yet)"
        if name not in fits:
            return f"{name} (built with {entry.model})"
        return f"{name} ({entry.sentences:,} sentences)"

    widgets.seed(K_CORPUS, state.corpus)
    st.selectbox("Reference corpus", options, key=K_CORPUS, format_func=describe,
                 on_change=_setter(K_CORPUS, "corpus", str),
                 help="The annotated text searched for tokens like the selected one. "
                      "Manage corpora on the Corpora page.")
    return entries.get(state.corpus)


def _sentence_control(state: AppState) -> None:
    widgets.seed(K_SENTENCE, state.sentence)
    st.text_area("Sentence", key=K_SENTENCE, on_change=_on_sentence, height=90,
                 max_chars=app_state.MAX_SENTENCE_CHARS,
                 help="Press Ctrl+Enter (or click outside the box) to analyse.")


def _analyse(view: View) -> None:
    """Tokenize, check the masks and the token against the tokens, then analyse."""
    state = session.get_state()
    loaded = cache.model(state.model)  # already loaded by the model control

    def tokens() -> TokenFacts:
        with loaded.lock:  # the fast tokenizer is shared across sessions
            found, _ = core_analysis.tokenize(loaded, core_analysis.clean_sentence(state.sentence))
        return TokenFacts(tuple(t.text for t in found), tuple(t.special for t in found))

    facts = widgets.attempt(tokens, "Could not read the sentence.", problems=view.problems)
    if facts is None:
        return
    state = session.fitted(*app_state.fit(state, facts))
    result = widgets.attempt(lambda: cache.analysis(state.model, state.sentence, state.masks),
                             f"Could not analyse the sentence with '{state.model}'.", problems=view.problems,
                             hint="Try a shorter sentence or another model.")
    if result is not None:
        view.analysis, view.words = result
        for warning in view.analysis.warnings:  # an over-long input is analysed in part: a warning
            session.note(warning)


def _view_controls(view: View, info: ModelInfo, groups: tuple[str, ...] = GROUPS) -> None:
    state = session.get_state()
    assert view.analysis is not None and state.layer is not None

    st.divider()
    if "layer" in groups:
        widgets.seed(K_LAYER, state.layer)
        st.select_slider("Layer", list(layer_range("heads", info.layers)), key=K_LAYER,
                         on_change=_setter(K_LAYER, "layer", int),
                         help="Layer L: the attention of block L, the embeddings it outputs and its heads.")
    if "heads" in groups:
        _heads_control(view, info, with_layer="layer" in groups)
    if "masks" in groups:
        _masks_control(view, info)
    if "measure" in groups:
        st.divider()
        _measure_control(state)
    if "threshold" in groups or "special" in groups:
        st.divider()
    if "threshold" in groups:
        widgets.seed(K_THRESHOLD, state.threshold)
        st.slider("Attention shown (%)", 5, 100, step=5, key=K_THRESHOLD,
                  on_change=_setter(K_THRESHOLD, "threshold", int),
                  help="Per token, draw the strongest links that together make up this share of its "
                       "attention.")
    if "special" in groups:
        widgets.seed(K_HIDE_SPECIAL, state.hide_special)
        st.toggle("Hide special tokens", key=K_HIDE_SPECIAL,
                  on_change=_setter(K_HIDE_SPECIAL, "hide_special", bool),
                  help="Hide [CLS], [SEP] and the like, which often collect much of the attention.")
    if "search" in groups:
        st.divider()
        _search_controls(state)


def _heads_control(view: View, info: ModelInfo, *, with_layer: bool) -> None:
    state = session.get_state()
    label = view.layer_label() if with_layer else state.heads.format()
    st.markdown(f"**Heads** &nbsp; `{label}`",
                help="The paper's notation layer-[heads]: 2-[0,3] is heads 0 and 3 of layer 2, averaged; "
                     "2-[all] is every head of layer 2.")
    widgets.seed(K_HEADS, list(state.selected_heads(info.heads)))
    st.pills("Heads", list(range(info.heads)), selection_mode="multi", key=K_HEADS,
             on_change=_setter(K_HEADS, "heads", Heads.of), label_visibility="collapsed")
    left, right = st.columns(2)
    left.button("All heads", key=K_HEADS_ALL, on_click=session.set_state, kwargs={"heads": Heads.all()},
                width="stretch")
    right.button("No heads", key=K_HEADS_NONE, on_click=session.set_state, kwargs={"heads": Heads.of(())},
                 width="stretch")


def _masks_control(view: View, info: ModelInfo) -> None:
    state = session.get_state()
    assert view.analysis is not None
    words = [t.position for t in view.analysis.tokens if not t.special]
    widgets.seed(K_MASKS, [m for m in state.masks if m in words])
    can_mask = info.mask_token is not None
    st.multiselect(
        "Masked tokens", words, key=K_MASKS, format_func=view.label, disabled=not can_mask,
        on_change=_setter(K_MASKS, "masks", lambda v: tuple(sorted(int(p) for p in v))),
        placeholder="none" if can_mask else "this model cannot mask",
        help="Replace tokens by the mask token and run the model again."
        if can_mask else "A causal model has no mask token.",
    )


def _measure_control(state: AppState) -> None:
    """One control for what every attention number on every page shows."""
    widgets.seed(K_MEASURE, state.measure)
    st.radio(
        "Measure", list(MEASURES), key=K_MEASURE, format_func=MEASURE_LABELS.get,
        on_change=_setter(K_MEASURE, "measure", str),
        help="What the attention numbers and curves show. " + " ".join(
            f"**{MEASURE_LABELS[m]}**: {MEASURE_EXPLANATIONS[m]}" for m in MEASURES)
        + " Attention × value is the default: in our tests it follows what the model really uses more "
          "closely than raw attention does (see How to read this page).")
    st.caption(f"{MEASURE_LABELS[state.measure]}: {MEASURE_EXPLANATIONS[state.measure]}")
    widgets.seed(K_AGGREGATE, state.aggregate)
    st.segmented_control(
        "Across layers", list(AGGREGATES), key=K_AGGREGATE, required=True, format_func=AGGREGATE_LABELS.get,
        on_change=_setter(K_AGGREGATE, "aggregate", str),
        help=" ".join(f"**{AGGREGATE_LABELS[a]}**: {AGGREGATE_EXPLANATIONS[a]}" for a in AGGREGATES))


def _search_controls(state: AppState) -> None:
    widgets.seed(K_BY, state.by)
    st.segmented_control("Search by", list(app_state.SEARCH_KINDS), key=K_BY, required=True,
                         format_func=BY_LABELS.get, on_change=_setter(K_BY, "by", str),
                         help="Token embedding: the layer's output for the token. Head embedding: "
                              "what the selected heads gathered for it (exBERT's head search).")
    widgets.seed(K_K, state.k)
    st.number_input("Matches (k)", 1, app_state.MAX_K, step=10, key=K_K,
                    on_change=_setter(K_K, "k", int),
                    help=f"How many corpus tokens to find (at most {app_state.MAX_K}: each match's "
                         "sentence is run through the model again to find what it attends to).")


def _image_control(state: AppState) -> None:
    st.divider()
    widgets.seed(K_IMAGE, state.image)
    st.segmented_control("Chart downloads", list(app_state.IMAGE_FORMATS), key=K_IMAGE, required=True,
                         format_func=str.upper, on_change=_setter(K_IMAGE, "image", str),
                         help="The camera button of every chart (top right, shown when the pointer is over the chart) saves it in "
                              "this format. SVG is vector graphics for papers (heat maps stay pixels "
                              "inside it).")
