"""The shared sidebar: every control of the app, one AppState per session, mirrored in the URL.

How state flows (so every page can reuse it):

- The session's :class:`~exbert_core.app.state.AppState` lives in ``st.session_state[STATE]``.
  It is read from the URL once, when the session starts (opening a link), then changed only by
  widget callbacks. Before each widget is drawn its value is seeded from the state, so a control
  a page does not draw keeps its value, and page switches lose nothing.
- After the controls are drawn, the URL is rewritten from the state (only when it changed),
  so the address bar is always a link to the current view.
- Problems with a link are listed at the top of the page while the view is still the link's.

Pages call :func:`sidebar` first and get a :class:`View` (state, model info, analysis). A page
names the sidebar groups it uses (``groups``) and the single-page URL parameters it writes
(``params``, see ``app_state.EXTRA_PARAMS``); values a page checks itself (a relation of the head
atlas, the second side of a comparison) go through :func:`page_fitted`, so a bad link value is
listed with the link's other problems.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from app_pages.common import cache
from exbert_core.app import state as app_state
from exbert_core.app.state import AppState
from exbert_core.corpus import catalog
from exbert_core.corpus.search import layer_label
from exbert_core.errors import USER_ERRORS
from exbert_core.model.analysis import Analysis
from exbert_core.model.annotate import WordAnnotation
from exbert_core.model.loading import ModelInfo
from exbert_core.model.names import DEFAULT_MODEL, OFFLINE_MODELS
from exbert_core.views import figures
from exbert_core.views.labels import clean_piece

log = logging.getLogger(__name__)

STATE = "exbert_state"
URL_WARNINGS = "exbert_url_warnings"
URL_VIEW = "exbert_url_view"
STARTING = "exbert_starting"
NOTES = "exbert_notes"
SWITCH_TO = "exbert_switch_to"

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
K_BY = "sb_by"
K_K = "sb_k"
K_TOKEN = "token_pick"
K_IMAGE = "sb_image"

BY_LABELS = {"embedding": "Token embedding", "heads": "Head embedding"}
# The sidebar's groups of sentence controls; a page draws those it uses (the others keep values).
GROUPS = ("layer", "heads", "masks", "threshold", "special", "search")


@dataclass
class View:
    """What a page needs after the sidebar: the state, and what could be loaded for it."""

    state: AppState
    info: ModelInfo | None = None
    analysis: Analysis | None = None
    words: list[WordAnnotation | None] | None = None
    corpus: catalog.CorpusEntry | None = None
    problems: list[str] = field(default_factory=list)
    params: tuple[str, ...] = ()  # the page's own URL parameters
    starting: bool = False  # this run opens a link (the session's first run)
    messages: Any = None  # the container above the page's content
    url_box: Any = None  # the link's problems, redrawn by page_fitted

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
        assert self.info is not None and self.state.layer is not None
        return layer_label(self.state.layer, self.state.selected_heads(self.info.heads), self.info.heads)


# ---------------------------------------------------------------------------------------------
# State


def get_state() -> AppState:
    """The session's state; read from the URL on the session's first run."""
    if STATE not in st.session_state:
        state, warnings = app_state.from_params(st.query_params.to_dict())
        st.session_state[STATE] = state
        st.session_state[URL_WARNINGS] = list(warnings)
        st.session_state[STARTING] = True
    return st.session_state[STATE]


def set_state(**changes: Any) -> AppState:
    state = replace(get_state(), **changes)
    st.session_state[STATE] = state
    return state


def note(message: str, kind: str = "warning") -> None:
    """A message shown once, at the top of the next page drawn (``kind``: warning or success)."""
    st.session_state.setdefault(NOTES, []).append((kind, message))


def _fitted(state: AppState, warnings: list[str]) -> AppState:
    """Store a fitted state; a link's problems are kept with the link, others shown once."""
    st.session_state[STATE] = state
    if st.session_state.get(STARTING):
        st.session_state[URL_WARNINGS].extend(warnings)
    else:
        for warning in warnings:
            note(warning)
    return state


# ---------------------------------------------------------------------------------------------
# Callbacks: a widget's new value goes into the state


def _on_model() -> None:
    name, problem = app_state.check_model_name(st.session_state.get(K_MODEL) or "")
    if problem:
        note(problem)
    state = get_state()
    changes: dict[str, Any] = {"model": name}
    if name != state.model:
        changes.update(masks=(), token=None, token_b=None, layer_b=None)  # positions of the old tokenizer
        current = catalog.entry_of(state.corpus)
        if not (current and current.fits(name)):
            preferred = catalog.default_corpus_name(name)
            fitting = [e.name for e in catalog.entries() if e.fits(name)]
            changes["corpus"] = preferred if preferred in fitting or not fitting else fitting[0]
    set_state(**changes)


def _on_sentence() -> None:
    text = " ".join((st.session_state.get(K_SENTENCE) or "").split())[: app_state.MAX_SENTENCE_CHARS]
    if text != get_state().sentence:
        set_state(sentence=text, masks=(), token=None, token_b=None)


def _setter(key: str, field_name: str, convert: Callable[[Any], Any]) -> Callable[[], None]:
    def callback() -> None:
        value = st.session_state.get(key)
        if value is not None:
            set_state(**{field_name: convert(value)})

    return callback


def pick_token(position: int) -> None:
    """Select the token at ``position`` for search (used by the pages' token pickers)."""
    set_state(token=int(position))


def toggle_mask(position: int) -> None:
    masks = set(get_state().masks)
    masks ^= {int(position)}
    set_state(masks=tuple(sorted(masks)))


def seed(key: str, value: Any) -> None:
    """Give a widget its value from the state before it is drawn."""
    st.session_state[key] = value


# ---------------------------------------------------------------------------------------------
# The sidebar


def sidebar(*, analysis_controls: bool = True, groups: tuple[str, ...] = GROUPS,
            params: tuple[str, ...] = ()) -> View:
    """Draw the shared controls and return the view they describe.

    ``analysis_controls=False`` draws only model and corpus (for pages that do not analyse a
    sentence); ``groups`` names the sentence controls drawn (:data:`GROUPS`); the other controls
    keep their values. ``params`` are the page's own URL parameters (``image`` draws the chart
    download format).
    """
    state = get_state()
    messages = st.container()  # problems go above the page's content
    url_box = messages.empty()
    problems: list[str] = []
    view = View(state, params=tuple(params), starting=bool(st.session_state.get(STARTING)),
                messages=messages, url_box=url_box)

    with st.sidebar:
        st.markdown("### exBERT")
        st.caption("What does a transformer attend to, and which corpus tokens does it see as alike?")
        info = _model_control(state, problems)
        state = get_state()
        if info is not None:
            state = _fitted(*app_state.fit_model(
                state, layers=info.layers, heads=info.heads, can_mask=info.mask_token is not None))
            view.info = info
        view.corpus = _corpus_control(state)
        state = _fitted(*app_state.fit_corpus_build(  # a link records the corpus's build
            get_state(), view.corpus.build_id if view.corpus else None, from_link=view.starting))
        if analysis_controls:
            _sentence_control(state)
            if info is not None:
                _analyse(view, problems)
            if view.analysis is not None:
                state = _fitted(*app_state.fit_tokens(
                    get_state(), [t.text for t in view.analysis.tokens], [t.special for t in view.analysis.tokens]))
                view.state = get_state()
                _view_controls(view, info, groups)
        if "image" in params:
            _image_control(get_state())
        state = get_state()
        view.state = state
        _share(state, view.params)

    _write_url(state, view.params)
    _show_messages(messages, url_box, state, problems, model_failed=info is None, params=view.params)
    view.problems = problems
    if st.session_state.get(STARTING):
        st.session_state[URL_VIEW] = app_state.to_params(state, view.params)
        st.session_state[STARTING] = False
    return view


def page_fitted(view: View, state: AppState, warnings: list[str]) -> AppState:
    """Store a state a page corrected after the sidebar (values only the page can check) and
    report its warnings: with the link's problems when the run opens a link, else once."""
    st.session_state[STATE] = state
    view.state = state
    if view.starting:
        st.session_state[URL_WARNINGS].extend(warnings)
        st.session_state[URL_VIEW] = app_state.to_params(state, view.params)
        if st.session_state[URL_WARNINGS]:
            _url_warning(view.url_box, st.session_state[URL_WARNINGS])
    else:
        for warning in warnings:
            view.messages.warning(warning, icon=":material/warning:")
    _write_url(state, view.params)
    return state


def chart_config(name: str, *, zoom: bool = False) -> dict:
    """Plotly's config for a chart: its camera button saves ``exbert-<name>`` in the format chosen
    in the sidebar (PNG or SVG)."""
    return figures.plot_config(f"exbert-{name}", get_state().image, zoom=zoom)


def token_picker(view: View, label: str, *, key: str = K_TOKEN, mask_button: bool = True,
                 on_pick: Callable[[], None] | None = None) -> None:
    """The row that picks the selected token (pills, or a menu for long inputs) and masks it;
    ``on_pick`` runs after a new token is picked."""
    state, info, analysis = view.state, view.info, view.analysis
    assert info is not None and analysis is not None
    tokens = analysis.tokens
    pickable = [t.position for t in tokens if not t.special]
    if state.token is None or not pickable:
        return
    seed(key, state.token)

    def shown(p: int) -> str:
        return "[MASK]" if p in analysis.masked else clean_piece(tokens[p].text)

    def picked() -> None:
        pick_token(st.session_state[key])
        if on_pick is not None:
            on_pick()

    # Pills and the mask button side by side (the pills wrap only outside a horizontal row).
    with st.container(key=f"{key}_row", horizontal=mask_button, vertical_alignment="bottom"):
        if len(tokens) <= app_state.LONG_INPUT_TOKENS:
            st.pills(label, pickable, key=key, required=True, format_func=shown, on_change=picked)
        else:  # hundreds of pills are hard to scan: a menu that can be searched
            st.selectbox(label, pickable, key=key, format_func=lambda p: f"{p} · {shown(p)}",
                         on_change=picked, width=320)
        if mask_button:
            masked = state.token in analysis.masked
            word = analysis.sentence[tokens[state.token].start:tokens[state.token].end].strip()
            st.button(
                f"Unmask “{word}”" if masked else f"Mask “{word}”", key="toggle_mask",
                on_click=toggle_mask, args=(state.token,), disabled=info.mask_token is None,
                help="Replace the token by the mask token and run the model again."
                if info.mask_token else "This model reads left to right and has no mask token.",
            )


def open_head(layer: int, head: int) -> None:
    """Show ``head`` of ``layer`` in the attention view (the page switches after the callback)."""
    set_state(layer=int(layer), heads=(int(head),), view="auto")
    st.session_state[SWITCH_TO] = "app_pages/attention.py"


def open_picked_head(chart_key: str) -> None:
    """``on_select`` callback of a chart whose points carry ``customdata = [layer, head]``:
    open the clicked head in the attention view."""
    event = st.session_state.get(chart_key) or {}
    for point in (event.get("selection") or {}).get("points") or []:
        data = point.get("customdata")
        if isinstance(data, list) and len(data) == 2 and all(isinstance(v, (int, float)) for v in data):
            open_head(int(data[0]), int(data[1]))
            return


def follow_switch() -> None:
    """Switch page if a callback asked for it (``st.switch_page`` cannot run inside one)."""
    target = st.session_state.pop(SWITCH_TO, None)
    if target:
        st.switch_page(target)


def _model_control(state: AppState, problems: list[str]) -> ModelInfo | None:
    options = list(OFFLINE_MODELS) + list(app_state.SUGGESTED_HUB_MODELS)
    if state.model not in options:
        options.append(state.model)
    seed(K_MODEL, state.model)
    st.selectbox(
        "Model", options, key=K_MODEL, on_change=_on_model, accept_new_options=True,
        format_func=_model_option,
        help="The offline models work without internet. Type any Hugging Face model id "
             "(e.g. bert-base-uncased) to load it from the hub.",
    )
    try:
        loaded = cache.model(state.model)
    except USER_ERRORS as err:
        problems.append(f"{err} Pick another model in the sidebar.")
        return None
    except Exception as err:  # an architecture the core cannot handle, a broken download, ...
        log.exception("Loading model %s failed", state.model)
        problems.append(f"Could not load model '{state.model}' ({type(err).__name__}: {err}). "
                        f"Pick another model in the sidebar, e.g. '{DEFAULT_MODEL}'.")
        return None
    info = loaded.info
    st.caption(f"{info.family}, {info.layers} layers × {info.heads} heads, "
               f"{'causal (left to right)' if info.causal else 'bidirectional'}, "
               f"{'with' if info.has_lm_head else 'no'} LM head")
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
    fitting = [name for name, e in entries.items() if e.fits(state.model)]
    others = [name for name in entries if name not in fitting]
    options = fitting + others
    for name in (state.corpus, catalog.default_corpus_name(state.model)):
        if name not in options:
            options.append(name)

    def describe(name: str) -> str:
        entry = entries.get(name)
        if entry is None:
            return f"{name} (not built yet)"
        if not entry.fits(state.model):
            return f"{name} (built with {entry.model})"
        return f"{name} ({entry.sentences:,} sentences)"

    seed(K_CORPUS, state.corpus)
    st.selectbox("Reference corpus", options, key=K_CORPUS, format_func=describe,
                 on_change=_setter(K_CORPUS, "corpus", str),
                 help="The annotated text searched for tokens like the selected one. "
                      "Manage corpora on the Corpora page.")
    return entries.get(state.corpus)


def _sentence_control(state: AppState) -> None:
    seed(K_SENTENCE, state.sentence)
    st.text_area("Sentence", key=K_SENTENCE, on_change=_on_sentence, height=90,
                 max_chars=app_state.MAX_SENTENCE_CHARS,
                 help="Press Ctrl+Enter (or click outside the box) to analyse.")


def _analyse(view: View, problems: list[str]) -> None:
    state = get_state()
    try:
        if state.masks:  # masks are checked against the sentence's tokens before they are applied
            plain, _ = cache.analysis(state.model, state.sentence, ())
            state = _fitted(*app_state.fit_tokens(state, [t.text for t in plain.tokens], [t.special for t in plain.tokens]))
        view.analysis, view.words = cache.analysis(state.model, state.sentence, state.masks)
    except USER_ERRORS as err:
        problems.append(str(err))
    except Exception as err:
        log.exception("Analysing %r with %s failed", state.sentence, state.model)
        problems.append(f"Could not analyse the sentence with '{state.model}' "
                        f"({type(err).__name__}: {err}). Try a shorter sentence or another model.")
    else:
        problems.extend(view.analysis.warnings)


def _view_controls(view: View, info: ModelInfo, groups: tuple[str, ...] = GROUPS) -> None:
    state = get_state()
    analysis = view.analysis
    assert analysis is not None and state.layer is not None

    st.divider()
    if "layer" in groups:
        layers = list(range(1, info.layers + 1))
        seed(K_LAYER, state.layer)
        st.select_slider("Layer", layers, key=K_LAYER, on_change=_setter(K_LAYER, "layer", int),
                         help="Layer L: the attention of block L, the embeddings it outputs and its heads.")
    if "heads" in groups:
        _heads_control(view, info, with_layer="layer" in groups)
    if "masks" in groups:
        _masks_control(view, info)
    if "threshold" in groups or "special" in groups:
        st.divider()
    if "threshold" in groups:
        seed(K_THRESHOLD, state.threshold)
        st.slider("Attention shown (%)", 5, 100, step=5, key=K_THRESHOLD,
                  on_change=_setter(K_THRESHOLD, "threshold", int),
                  help="Per token, draw the strongest links that together make up this share of its "
                       "attention.")
    if "special" in groups:
        seed(K_HIDE_SPECIAL, state.hide_special)
        st.toggle("Hide special tokens", key=K_HIDE_SPECIAL,
                  on_change=_setter(K_HIDE_SPECIAL, "hide_special", bool),
                  help="Hide [CLS], [SEP] and the like, which often collect much of the attention.")
    if "search" in groups:
        st.divider()
        _search_controls(state)


def _heads_control(view: View, info: ModelInfo, *, with_layer: bool) -> None:
    state = get_state()
    heads = state.selected_heads(info.heads)
    label = view.layer_label() if with_layer else app_state.format_heads(state.heads)
    st.markdown(f"**Heads** &nbsp; `{label}`", help="The paper's label: layer-[selected heads].")
    seed(K_HEADS, list(heads))
    st.pills("Heads", list(range(info.heads)), selection_mode="multi", key=K_HEADS,
             on_change=_setter(K_HEADS, "heads", lambda v: tuple(sorted(int(h) for h in v))),
             label_visibility="collapsed")
    left, right = st.columns(2)
    left.button("All heads", key=K_HEADS_ALL, on_click=set_state, kwargs={"heads": None}, width="stretch")
    right.button("No heads", key=K_HEADS_NONE, on_click=set_state, kwargs={"heads": ()}, width="stretch")


def _masks_control(view: View, info: ModelInfo) -> None:
    state = get_state()
    analysis = view.analysis
    assert analysis is not None
    words = [t.position for t in analysis.tokens if not t.special]
    seed(K_MASKS, [m for m in state.masks if m in words])
    can_mask = info.mask_token is not None
    st.multiselect(
        "Masked tokens", words, key=K_MASKS, format_func=view.label, disabled=not can_mask,
        on_change=_setter(K_MASKS, "masks", lambda v: tuple(sorted(int(p) for p in v))),
        placeholder="none" if can_mask else "this model cannot mask",
        help="Replace tokens by the mask token and run the model again."
        if can_mask else "A causal model has no mask token.",
    )


def _search_controls(state: AppState) -> None:
    seed(K_BY, state.by)
    st.segmented_control("Search by", list(app_state.SEARCH_KINDS), key=K_BY, required=True,
                         format_func=BY_LABELS.get, on_change=_setter(K_BY, "by", str),
                         help="Token embedding: the layer's output for the token. Head embedding: "
                              "what the selected heads gathered for it (exBERT's head search).")
    seed(K_K, state.k)
    st.number_input("Matches (k)", 1, app_state.MAX_K, step=10, key=K_K,
                    on_change=_setter(K_K, "k", int),
                    help=f"How many corpus tokens to find (at most {app_state.MAX_K}: each match's "
                         "sentence is run through the model again to find what it attends to).")


def _image_control(state: AppState) -> None:
    st.divider()
    seed(K_IMAGE, state.image)
    st.segmented_control("Chart downloads", list(app_state.IMAGE_FORMATS), key=K_IMAGE, required=True,
                         format_func=str.upper, on_change=_setter(K_IMAGE, "image", str),
                         help="The camera button of every chart (top right, shown on hover) saves it in "
                              "this format. SVG is vector graphics for papers (heat maps stay pixels "
                              "inside it).")


def _share(state: AppState, params: tuple[str, ...] = ()) -> None:
    link = app_state.share_url(st.context.url, app_state.to_params(state, params))  # url: None under AppTest
    with st.expander("Share this view", icon=":material/link:"):
        st.caption("Copy this link (button at the right of the box): it opens exactly this view.")
        st.code(link, language=None, wrap_lines=True)


def _write_url(state: AppState, params: tuple[str, ...] = ()) -> None:
    wanted = app_state.to_params(state, params)
    # to_dict() leaves out, and from_dict() keeps, Streamlit's own embed parameters.
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _url_warning(box: Any, warnings: list[str]) -> None:
    box.warning("**This link had problems, so the view differs from it:**\n\n"
                + "\n".join(f"- {w}" for w in warnings), icon=":material/warning:")


def _show_messages(box: Any, url_box: Any, state: AppState, problems: list[str], *, model_failed: bool,
                   params: tuple[str, ...] = ()) -> None:
    url_warnings = st.session_state.get(URL_WARNINGS) or []
    if url_warnings and (st.session_state.get(STARTING)
                         or st.session_state.get(URL_VIEW) == app_state.to_params(state, params)):
        _url_warning(url_box, url_warnings)
    elif url_warnings:
        st.session_state[URL_WARNINGS] = []
    for kind, message in st.session_state.pop(NOTES, []):
        if kind == "success":
            box.success(message, icon=":material/check_circle:")
        else:
            box.warning(message, icon=":material/warning:")
    for problem in problems:
        box.error(problem, icon=":material/error:")
    if model_failed and state.model != DEFAULT_MODEL:
        box.button(f"Open the default model ({DEFAULT_MODEL})", key="use_default_model",
                   on_click=_use_default_model)


def _use_default_model() -> None:
    set_state(model=DEFAULT_MODEL, masks=(), token=None)
