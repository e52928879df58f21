"""Compare: two sentences under one model, or one sentence under two models, side by side: the
attention of the same token, its predictions and a summary of its corpus neighbours."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import streamlit as st

from app_pages.common import cache, controls
from exbert_core.app import state as app_state
from exbert_core.app.state import LONG_INPUT_TOKENS
from exbert_core.corpus import catalog, summary
from exbert_core.corpus.search import layer_label
from exbert_core.errors import USER_ERRORS
from exbert_core.model.analysis import Analysis
from exbert_core.model.loading import ModelInfo
from exbert_core.model.names import OFFLINE_MODELS
from exbert_core.views import figures, match_table
from exbert_core.views.labels import clean_piece

log = logging.getLogger(__name__)
K_MODE = "cmp_mode"
K_SENTENCE_B = "cmp_sentence_b"
K_MODEL_B = "cmp_model_b"
K_LAYER_B = "cmp_layer_b"
K_TOKEN_B = "cmp_token_b"
K_FEATURE = "cmp_feature"
MODE_LABELS = {"sentences": "Two sentences, one model", "models": "One sentence, two models"}
FEATURE_LABELS = {"pos": "Part of speech", "dep": "Grammatical role", "ner": "Named entity"}


@dataclass
class Side:
    """One side of the comparison, as drawn."""

    name: str  # "A" or "B"
    model: str
    info: ModelInfo
    analysis: Analysis
    token: int
    layer: int
    heads: tuple[int, ...]
    corpus: catalog.CorpusEntry | None


def _on_mode() -> None:
    controls.set_state(compare=st.session_state[K_MODE], token_b=None, layer_b=None)


def _on_sentence_b() -> None:
    text = " ".join((st.session_state.get(K_SENTENCE_B) or "").split())[: app_state.MAX_SENTENCE_CHARS]
    if text and text != controls.get_state().sentence_b:
        controls.set_state(sentence_b=text, token_b=None)


def _on_model_b() -> None:
    name, problem = app_state.check_model_name(st.session_state.get(K_MODEL_B) or "")
    if problem:
        controls.note(problem.replace("Model ", "The second model ", 1))
    controls.set_state(model_b=name, token_b=None, layer_b=None)


def _same_token(a: Analysis, position: int, b: Analysis, same_text: bool) -> int | None:
    """The token of ``b`` that is ``a``'s token ``position``: the token at the same characters
    when both read the same text, else the first token with the same word."""
    special = [t.special for t in b.tokens]
    if same_text:
        start = a.tokens[position].start
        for t in b.tokens:
            if not t.special and t.start <= start < max(t.end, t.start + 1):
                return t.position
        return next((t.position for t in b.tokens if not t.special and t.start >= start), None)
    word = a.sentence[a.tokens[position].start:a.tokens[position].end].strip().lower()
    for t in b.tokens:
        if not t.special and b.sentence[t.start:t.end].strip().lower() == word:
            return t.position
    return app_state.default_token([t.text for t in b.tokens], special)


def _matching_corpus(model: str) -> catalog.CorpusEntry | None:
    fitting = {e.name: e for e in catalog.entries() if e.fits(model)}
    return fitting.get(catalog.default_corpus_name(model)) or next(iter(fitting.values()), None)


def _draw(side: Side, state: app_state.AppState) -> None:
    a = side.analysis
    tokens = a.tokens
    visible = figures.visible_positions([t.special for t in tokens], state.hide_special)
    labels = [clean_piece(tokens[p].text) for p in visible]
    word = "[MASK]" if side.token in a.masked else clean_piece(tokens[side.token].text)
    label = layer_label(side.layer, side.heads, side.info.heads)
    key = side.name.lower()
    stem = f"{side.model.split('/')[-1]}-{label}-{word}"

    if not side.heads:
        st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
    else:
        matrix = figures.head_mean(a.attention[side.layer - 1], side.heads)[np.ix_(visible, visible)]
        if state.hide_special:
            matrix = figures.renormalize_rows(matrix)
        st.plotly_chart(figures.attention_heatmap(matrix, labels, positions=visible, selected=side.token,
                                                  title=f"Attention at {label}"),
                        key=f"cmp_heat_{key}", config=controls.chart_config(f"compare-{key}-attention-{stem}"))
        if side.token in visible:
            row = matrix[visible.index(side.token)]
            st.caption(f"“{word}” attends most to: " + ", ".join(
                f"{labels[j]} {row[j]:.0%}" for j in np.argsort(-row)[:4] if row[j] > 0))

    if a.predictions is not None:
        candidates = [(c.token, c.prob) for c in a.predictions[side.token]]
        title = f"Next token after “{word}”" if side.info.causal else f"What {side.model} puts at “{word}”"
        st.plotly_chart(figures.predictions_bar(candidates, title=title), key=f"cmp_pred_{key}",
                        config=controls.chart_config(f"compare-{key}-predictions-{stem}"))
    else:
        st.caption(f"{side.model} has no language-model head, so it makes no predictions (smollm2 has one).")

    entry = side.corpus
    if entry is None:
        own = catalog.default_corpus_name(side.model)
        st.info(f"No reference corpus is built with {side.model}, so there are no neighbours to summarise. "
                f"Build '{own}' on the Corpora page (select {side.model} in the sidebar there).")
        st.page_link("app_pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        return
    kind = state.by if side.heads else "embedding"
    try:
        result = cache.search(side.model, str(entry.path), entry.stamp, a.sentence, a.masked, side.token,
                              side.layer, kind, tuple(side.heads), state.k)
    except USER_ERRORS as err:
        st.error(str(err))
        return
    hist = summary.histograms(result)["matched"][state.feature]
    describe = figures.describe_labels(list(hist))
    st.plotly_chart(
        figures.histogram(hist, describe=describe, color=figures.MATCHED_COLOR,
                          title=f"{FEATURE_LABELS[state.feature]} of its {len(result.matches)} nearest tokens in "
                                f"'{entry.name}'"),
        key=f"cmp_hist_{key}", config=controls.chart_config(f"compare-{key}-{state.feature}-{stem}"))
    nearest = []
    for m in result.matches:
        text = m.token.word or clean_piece(m.token.token)
        if text not in nearest:
            nearest.append(text)
    st.caption("Nearest words: " + ", ".join(nearest[:12]))
    st.download_button(f"Matches of {side.name} as CSV", match_table.matches_csv(result),
                       file_name=f"exbert-compare-{key}-{entry.name}-{stem}.csv", mime="text/csv",
                       key=f"download_cmp_{key}", icon=":material/download:", on_click="ignore")


def _token_b_picker(analysis: Analysis, token: int) -> None:
    pickable = [t.position for t in analysis.tokens if not t.special]

    def shown(p: int) -> str:
        return "[MASK]" if p in analysis.masked else clean_piece(analysis.tokens[p].text)

    controls.seed(K_TOKEN_B, token)

    def on_change() -> None:
        controls.set_state(token_b=int(st.session_state[K_TOKEN_B]))

    if len(analysis.tokens) <= LONG_INPUT_TOKENS:
        st.pills("Token of B", pickable, key=K_TOKEN_B, required=True, format_func=shown, on_change=on_change)
    else:
        st.selectbox("Token of B", pickable, key=K_TOKEN_B, format_func=lambda p: f"{p} · {shown(p)}",
                     on_change=on_change, width=320)


# --- Controls ------------------------------------------------------------------------------------
view = controls.sidebar(groups=("layer", "heads", "masks", "special", "search"),
                        params=("compare", "sentence_b", "model_b", "layer_b", "token_b", "feature", "image"))
state = view.state
st.markdown("## Compare")
st.caption("The same token side by side: its attention, its predictions and its corpus neighbours. A is the "
           "sentence and model of the sidebar; choose what B changes.")

with st.container(key="compare_controls"):
    controls.seed(K_MODE, state.compare)
    st.segmented_control("Compare", list(app_state.COMPARE_MODES), key=K_MODE, required=True,
                         format_func=MODE_LABELS.get, on_change=_on_mode)
    if state.compare == "sentences":
        controls.seed(K_SENTENCE_B, state.sentence_b)
        st.text_area("Sentence B", key=K_SENTENCE_B, on_change=_on_sentence_b, height=70,
                     max_chars=app_state.MAX_SENTENCE_CHARS, help="Press Ctrl+Enter (or click outside the box).")
        model_b = state.model
    else:
        model_b = state.model_b or app_state.other_model(state.model)
        options = list(OFFLINE_MODELS) + list(app_state.SUGGESTED_HUB_MODELS)
        if model_b not in options:
            options.append(model_b)
        controls.seed(K_MODEL_B, model_b)
        st.selectbox("Model B", options, key=K_MODEL_B, on_change=_on_model_b, accept_new_options=True,
                     width=420, help="An offline model, or any Hugging Face model id (needs internet).")

if not view.ready:
    st.info("Fix the problem above to compare.")
    st.stop()
info, analysis = view.info, view.analysis
assert info is not None and analysis is not None and state.layer is not None
if state.token is None:
    st.info("Sentence A has no word token to compare.")
    st.stop()

# --- Side B: its model, its analysis, the same token ---------------------------------------------
sentence_b = state.sentence_b if state.compare == "sentences" else state.sentence
try:
    loaded_b = cache.model(model_b)
    plain_b, _ = cache.analysis(model_b, sentence_b, ())
except USER_ERRORS as err:
    st.error(f"B: {err}")
    st.stop()
except Exception as err:
    log.exception("Side B failed")
    st.error(f"B: could not load or run '{model_b}' ({type(err).__name__}: {err}). Pick another model.")
    st.stop()
info_b = loaded_b.info
state = controls.page_fitted(view, *app_state.fit_side_b(
    state, layers=info_b.layers, texts=[t.text for t in plain_b.tokens],
    special=[t.special for t in plain_b.tokens], model_label=model_b))
# Unset (or bad) values of B follow A: the same token, and one model's layer (or, for two models,
# the layer at the same relative depth).
token_b = state.token_b
if token_b is None:
    token_b = _same_token(analysis, state.token, plain_b, same_text=state.compare == "models")
if token_b is None:
    st.info("Sentence B has no word token to compare.")
    st.stop()
if state.compare == "sentences":
    layer_b = state.layer
elif state.layer_b is not None:
    layer_b = state.layer_b
else:
    layer_b = max(1, min(info_b.layers, round(state.layer * info_b.layers / info.layers)))
# B follows A's masking of the compared token (where B's model can mask).
masks_b = (token_b,) if state.token in analysis.masked and info_b.mask_token else ()
analysis_b = plain_b if not masks_b else cache.analysis(model_b, sentence_b, masks_b)[0]
heads_a = state.selected_heads(info.heads)
heads_b = heads_a if state.compare == "sentences" else tuple(range(info_b.heads))

entry_a = view.corpus if view.corpus is not None and view.corpus.fits(state.model) else _matching_corpus(state.model)
sides = [
    Side("A", state.model, info, analysis, state.token, state.layer, heads_a, entry_a),
    Side("B", model_b, info_b, analysis_b, token_b, layer_b, heads_b,
         entry_a if state.compare == "sentences" else _matching_corpus(model_b)),
]

controls.seed(K_FEATURE, state.feature)
st.segmented_control("Neighbours by", list(app_state.FEATURES), key=K_FEATURE, required=True,
                     format_func=FEATURE_LABELS.get,
                     on_change=lambda: controls.set_state(feature=st.session_state[K_FEATURE]))

left, right = st.columns(2, gap="large")
with left, st.container(key="compare_a"):
    st.markdown(f"#### A · {state.model}")
    st.caption(f"“{analysis.sentence}”")
    controls.token_picker(view, "Token of A (mask it in the sidebar)", mask_button=False,
                          on_pick=lambda: controls.set_state(token_b=None))
    _draw(sides[0], state)
with right, st.container(key="compare_b"):
    st.markdown(f"#### B · {model_b}")
    st.caption(f"“{analysis_b.sentence}”" + (" (B follows A's mask)" if masks_b else ""))
    _token_b_picker(analysis_b, token_b)
    if state.compare == "models":
        controls.seed(K_LAYER_B, layer_b)
        st.select_slider("Layer of B", list(range(1, info_b.layers + 1)), key=K_LAYER_B,
                         on_change=lambda: controls.set_state(layer_b=int(st.session_state[K_LAYER_B])),
                         help=f"Starts at the depth of A's layer ({state.layer} of {info.layers}); B shows all its heads.")
    _draw(sides[1], state)
