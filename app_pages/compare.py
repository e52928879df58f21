"""Compare: two sentences under one model, or one sentence under two models, side by side: the
attention of the same token, its predictions and a summary of its corpus neighbours. The two
heat maps share one colour scale and the two histograms one axis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from app_pages.common import cache, page, style, widgets
from app_pages.common import state as session
from app_pages.common.sidebar import sidebar
from exbert_core.app import state as app_state
from exbert_core.app.corpus_choice import entry_for
from exbert_core.app.state import ModelFacts, TokenFacts
from exbert_core.corpus.search import catalog, summary
from exbert_core.corpus.search.query import SearchResult
from exbert_core.model.analysis import Analysis
from exbert_core.model.loading import ModelInfo
from exbert_core.model.names import OFFLINE_MODELS
from exbert_core.model.selection import Heads, block_index, layer_range
from exbert_core.views import attention_view, explain, match_table
from exbert_core.views.charts import attention_arrays, attention_charts, chart_style, corpus_charts
from exbert_core.views.labels import clean_piece, markdown_text
from exbert_core.views.tokens import reader_names, same_depth, same_token, strongest

K_MODE = "cmp_mode"
K_SENTENCE_B = "cmp_sentence_b"
K_MODEL_B = "cmp_model_b"
K_LAYER_B = "cmp_layer_b"
K_TOKEN_B = "cmp_token_b"
K_TOKEN_A = "token_pick"
K_FEATURE = "cmp_feature"
MODE_LABELS = {"sentences": "Two sentences, one model", "models": "One sentence, two models"}


@dataclass
class Side:
    """One side of the comparison: what is drawn, computed before either side is drawn (the two
    share scales)."""

    name: str  # "A" or "B"
    model: str
    info: ModelInfo
    analysis: Analysis
    token: int
    layer: int
    heads: Heads
    corpus: catalog.CorpusEntry | None
    matrix: np.ndarray | None = None  # [shown, shown] the selected heads' weights under the measure
    shown: attention_view.ShownAttention | None = None
    visible: list[int] | None = None
    result: SearchResult | None = None

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def word(self) -> str:
        return "[MASK]" if self.token in self.analysis.masked else clean_piece(self.analysis.tokens[self.token].text)

    @property
    def label(self) -> str:
        return self.heads.label(self.layer, self.info.heads)


def _on_mode() -> None:
    session.set_state(compare=st.session_state[K_MODE], token_b=None, layer_b=None)


def _on_sentence_b() -> None:
    text = " ".join((st.session_state.get(K_SENTENCE_B) or "").split())[: app_state.MAX_SENTENCE_CHARS]
    if text and text != session.get_state().sentence_b:
        session.set_state(sentence_b=text, token_b=None)


def _on_model_b() -> None:
    name, problem = app_state.check_model_name(st.session_state.get(K_MODEL_B) or "")
    if problem:
        session.note(problem.replace("Model ", "The second model ", 1))
    session.set_state(model_b=name, token_b=None, layer_b=None)


def _prepare(side: Side, state: app_state.AppState) -> None:
    """The side's attention matrix and its corpus neighbours (None where there are none)."""
    a = side.analysis
    side.visible = attention_arrays.visible_positions([t.special for t in a.tokens], state.hide_special)
    heads = side.heads.resolve(side.info.heads)
    if heads:
        weights = widgets.attempt(lambda: cache.weights(side.model, a.sentence, a.masked, state.measure),
                                  f"The attention measure of {side.name} could not be computed.")
        if weights is not None:
            side.shown = attention_view.shown(weights, a.attention, side.layer, heads, side.info.heads, state.aggregate)
            matrix = side.shown.matrix[np.ix_(side.visible, side.visible)]
            side.matrix = attention_arrays.renormalize_rows(matrix) if state.hide_special else matrix
    if side.corpus is not None:
        kind = state.by if heads else "embedding"
        entry = side.corpus
        side.result = widgets.attempt(
            lambda: cache.search(side.model, str(entry.path), entry.stamp, a.sentence, a.masked, side.token,
                                 side.layer, kind, tuple(heads), state.k, state.measure, state.aggregate),
            f"The search of {side.name} failed.")


def _draw(side: Side, state: app_state.AppState, zmax: float, x_max: int) -> None:
    a, word = side.analysis, side.word
    stem = f"{side.model.split('/')[-1]}-{side.label}-{word}"
    if side.matrix is None:
        st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
    else:
        assert side.visible is not None
        labels = [clean_piece(a.tokens[p].text) for p in side.visible]
        st.plotly_chart(attention_charts.attention_heatmap(side.matrix, labels, positions=side.visible, selected=side.token,
                                                  title=f"{attention_view.measure_words(state.measure).capitalize()} at {side.label}",
                                                  zmax=zmax),
                        key=f"cmp_heat_{side.key}", config=widgets.chart_config(f"compare-{side.key}-attention-{stem}"))
        heads = side.heads.resolve(side.info.heads)
        st.caption(attention_view.describe(side.shown, side.layer, heads, side.info.heads, causal=side.info.causal))
        if side.token in side.visible:
            row = side.matrix[side.visible.index(side.token)]
            names = reader_names(a)
            st.caption(f"“{markdown_text(names[side.token])}” takes most from: " + ", ".join(
                f"{markdown_text(names[side.visible[t.index]])} {t.weight:.0%}" for t in strongest(row)))

    if a.predictions is not None:
        candidates = [(c.token, c.prob) for c in a.predictions[side.token]]
        title = f"Next token after “{word}”" if side.info.causal else f"What {side.model} puts at “{word}”"
        st.plotly_chart(attention_charts.predictions_bar(candidates, title=title), key=f"cmp_pred_{side.key}",
                        config=widgets.chart_config(f"compare-{side.key}-predictions-{stem}"))
    else:
        st.caption(f"{markdown_text(side.model)} has no language-model head, so it makes no predictions "
                   "(smollm2 has one).")

    entry = side.corpus
    if entry is None:
        own = catalog.default_corpus_name(side.model)
        model = markdown_text(side.model)
        st.info(f"No reference corpus is built with {model}, so there are no neighbours to summarise. "
                f"Build '{markdown_text(own)}' on the Corpora page (select {model} in the sidebar there).")
        st.page_link("app_pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        return
    if side.result is None:
        return
    result = side.result
    hist = summary.histograms(result)["matched"][state.feature]
    st.plotly_chart(
        corpus_charts.histogram(hist, describe=corpus_charts.describe_labels(list(hist)), color=chart_style.MATCHED_COLOR, x_max=x_max,
                          title=f"{explain.FEATURE_NAMES[state.feature]} of its {len(result.matches)} nearest tokens in "
                                f"'{entry.name}'"),
        key=f"cmp_hist_{side.key}", config=widgets.chart_config(f"compare-{side.key}-{state.feature}-{stem}"))
    nearest: list[str] = []
    for m in result.matches:
        text = m.token.word or clean_piece(m.token.token)
        if text not in nearest:
            nearest.append(text)
    st.caption("Nearest words: " + ", ".join(markdown_text(w) for w in nearest[:12]))
    st.download_button(f"Matches of {side.name} as CSV", match_table.matches_csv(result),
                       file_name=f"exbert-compare-{side.key}-{entry.name}-{stem}.csv", mime="text/csv",
                       key=f"download_cmp_{side.key}", icon=":material/download:", on_click="ignore")


# --- Controls ------------------------------------------------------------------------------------
view = sidebar(page_name="compare", groups=("layer", "heads", "masks", "measure", "special", "search"))
state = view.state
st.markdown("## Compare")
style.phone_hint()
st.caption("The same token side by side: its attention, its predictions and its corpus neighbours. A is the "
           "sentence and model of the sidebar; choose what B changes. Both heat maps use one colour scale, both "
           "histograms one axis.", help=explain.NOTATION)

with st.container(key="compare_controls"):
    widgets.seed(K_MODE, state.compare)
    st.segmented_control("Compare", list(app_state.COMPARE_MODES), key=K_MODE, required=True,
                         format_func=MODE_LABELS.get, on_change=_on_mode)
    if state.compare == "sentences":
        widgets.seed(K_SENTENCE_B, state.sentence_b)
        st.text_area("Sentence B", key=K_SENTENCE_B, on_change=_on_sentence_b, height=70,
                     max_chars=app_state.MAX_SENTENCE_CHARS, help="Press Ctrl+Enter (or click outside the box).")
        model_b = state.model
    else:
        model_b = state.model_b or app_state.other_model(state.model)
        options = list(OFFLINE_MODELS) + list(app_state.SUGGESTED_HUB_MODELS)
        if model_b not in options:
            options.append(model_b)
        widgets.seed(K_MODEL_B, model_b)
        st.selectbox("Model B", options, key=K_MODEL_B, on_change=_on_model_b, accept_new_options=True,
                     width=420, help="An offline model, or any Hugging Face model id (needs internet).")

info, analysis = page.ready(view, "the comparison")
assert state.layer is not None
if state.token is None:
    st.info("Sentence A has no word token to compare.")
    st.stop()

# --- Side B: its model, its analysis, the same token ---------------------------------------------
sentence_b = state.sentence_b if state.compare == "sentences" else state.sentence
loaded_b, plain_b = page.required(widgets.attempt(
    lambda: (cache.model(model_b), cache.analysis(model_b, sentence_b, ())[0]),
    f"B: could not load or run '{model_b}'.", hint="Pick another model."))
info_b = loaded_b.info
facts_b = TokenFacts(tuple(t.text for t in plain_b.tokens), tuple(t.special for t in plain_b.tokens))
checked, on_model = app_state.fit(state, ModelFacts(model_b, info_b.layers, info_b.heads, info_b.mask_token is not None),
                                  side="b")
checked, on_tokens = app_state.fit(checked, facts_b, side="b")
state = page.page_fitted(view, checked, on_model + on_tokens)
# Unset (or bad) values of B follow A: the same token, and one model's layer (or, for two models,
# the layer at the same relative depth).
token_b = state.token_b
if token_b is None:
    token_b = same_token(analysis, state.token, plain_b, same_text=state.compare == "models")
if token_b is None:
    st.info("Sentence B has no word token to compare.")
    st.stop()
if state.compare == "sentences":
    layer_b = state.layer
elif state.layer_b is not None:
    layer_b = state.layer_b
else:
    layer_b = same_depth(state.layer, info.layers, info_b.layers)
# B follows A's masking of the compared token (where B's model can mask).
masks_b = (token_b,) if state.token in analysis.masked and info_b.mask_token else ()
analysis_b = plain_b if not masks_b else page.required(widgets.attempt(
    lambda: cache.analysis(model_b, sentence_b, masks_b)[0], f"B: could not run '{model_b}'."))
heads_b = state.heads if state.compare == "sentences" else Heads.all()

entries = catalog.entries()
entry_a = entry_for(state.model, entries, current=state.corpus)
sides = [
    Side("A", state.model, info, analysis, state.token, state.layer, state.heads, entry_a),
    Side("B", model_b, info_b, analysis_b, token_b, layer_b, heads_b,
         entry_a if state.compare == "sentences" else entry_for(model_b, entries)),
]
for side in sides:
    _prepare(side, state)
zmax = attention_arrays.shared_max(*[s.matrix for s in sides if s.matrix is not None])
x_max = max([max(summary.histograms(s.result)["matched"][state.feature].values(), default=1)
             for s in sides if s.result is not None] or [1])

widgets.seed(K_FEATURE, state.feature)
st.segmented_control("Neighbours by", list(app_state.FEATURES), key=K_FEATURE, required=True,
                     format_func=explain.FEATURE_NAMES.get,
                     on_change=lambda: session.set_state(feature=st.session_state[K_FEATURE]))

left, right = st.columns(2, gap="large")
with left, st.container(key="compare_a"):
    st.markdown(f"#### A · {markdown_text(state.model)}")
    st.caption(f"“{markdown_text(analysis.sentence)}”")
    widgets.token_picker(analysis, "Token of A (mask it in the sidebar)", selected=state.token, key=K_TOKEN_A,
                         on_pick=lambda position: session.set_state(token=position, token_b=None))
    _draw(sides[0], state, zmax, x_max)
with right, st.container(key="compare_b"):
    st.markdown(f"#### B · {markdown_text(model_b)}")
    st.caption(f"“{markdown_text(analysis_b.sentence)}”" + (" (B follows A's mask)" if masks_b else ""))
    widgets.token_picker(analysis_b, "Token of B", selected=token_b, key=K_TOKEN_B,
                         on_pick=lambda position: session.set_state(token_b=position))
    if state.compare == "models":
        widgets.seed(K_LAYER_B, layer_b)
        st.select_slider("Layer of B", list(layer_range("heads", info_b.layers)), key=K_LAYER_B,
                         on_change=lambda: session.set_state(layer_b=int(st.session_state[K_LAYER_B])),
                         help=f"Starts at the depth of A's layer ({state.layer} of {info.layers}); B shows all its heads.")
    _draw(sides[1], state, zmax, x_max)
