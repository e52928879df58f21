"""Attention & search: the paper's Figure 1. The attention of the selected heads, the token to
search with, the model's predictions, the nearest corpus tokens and their summaries."""

from __future__ import annotations

import json
import logging

import numpy as np
import streamlit as st

from exbert_core import catalog, figures, match_table, serialize, summary
from exbert_core.app_state import DEFAULT_CORPUS, clean_piece
from exbert_core.errors import USER_ERRORS
from exbert_core.models import DEFAULT_MODEL
from pages.common import build, cache, controls

log = logging.getLogger(__name__)
PLOT_CONFIG = {"displayModeBar": False}
CURVES_NONCE = "curves_nonce"
K_CONTEXT = "ctx_width"

view = controls.sidebar()
state = view.state

st.markdown("## Attention & search")
if not view.ready:
    st.info("Fix the problem above to see the attention view.")
    st.stop()

info, analysis = view.info, view.analysis
assert info is not None and analysis is not None and state.layer is not None
tokens = analysis.tokens
labels = [clean_piece(t.text) for t in tokens]
heads = state.selected_heads(info.heads)
visible = figures.visible_positions([t.special for t in tokens], state.hide_special)
shown_labels = [labels[p] for p in visible]
layer_attention = analysis.attention[state.layer - 1]  # heads x tokens x tokens
st.caption(f"Model **{info.name}** · layer-[heads] **{view.layer_label()}** · corpus **{state.corpus}** · "
           f"{len(tokens)} tokens")

if analysis.masked and info.mask_token and not info.has_lm_head:
    st.warning(
        f"**{info.name} was not trained to fill in masked tokens** (it has no masked-LM head), so a "
        "masked token's neighbours say little. Measured with MiniLM on *alice*: a masked “escape” "
        "in the example sentence finds mostly proper nouns at every layer (verbs ≤ 14 %), while the "
        "unmasked “escape” finds verbs (74 % at layers 1–2). For the paper's masking experiments "
        "use a masked language model such as `bert-base-uncased` (needs internet).",
        icon=":material/theater_comedy:",
    )

# --- The token to search with ------------------------------------------------------------------
pickable = [t.position for t in tokens if not t.special]
if state.token is not None and pickable:
    controls.seed(controls.K_TOKEN, state.token)
    with st.container(key="token_row", horizontal=True, vertical_alignment="bottom"):
        st.pills(
            "Token to search with (or click a token in the attention curves)", pickable,
            key=controls.K_TOKEN, required=True,
            format_func=lambda p: ("[MASK]" if p in analysis.masked else labels[p]),
            on_change=lambda: controls.pick_token(st.session_state[controls.K_TOKEN]),
        )
        masked = state.token in analysis.masked
        word = analysis.sentence[tokens[state.token].start:tokens[state.token].end].strip()
        st.button(
            f"Unmask “{word}”" if masked else f"Mask “{word}”", key="toggle_mask",
            on_click=controls.toggle_mask, args=(state.token,), disabled=info.mask_token is None,
            help="Replace the token by the mask token and run the model again."
            if info.mask_token else "This model reads left to right and has no mask token.",
        )


def _on_curve_pick(chart_key: str, positions: list[int]) -> None:
    event = st.session_state.get(chart_key) or {}
    points = (event.get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if isinstance(data, (int, float)) and int(data) in positions:
            position = int(data)
        else:  # a token marker sits at y = -row
            y = point.get("y")
            if not isinstance(y, (int, float)) or abs(y - round(y)) > 1e-6 or not 0 <= -round(y) < len(positions):
                continue
            position = positions[-round(y)]
        if not tokens[position].special:
            controls.pick_token(position)
            st.session_state[CURVES_NONCE] = st.session_state.get(CURVES_NONCE, 0) + 1
            return


# --- Attention ---------------------------------------------------------------------------------
left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown(f"#### Attention at layer {state.layer}")
    curves, heatmap, per_head = st.tabs(["Curves", "Heat map", f"Every head of layer {state.layer}"])
    matrix = figures.head_mean(layer_attention, heads)[np.ix_(visible, visible)]
    if state.hide_special:
        matrix = figures.renormalize_rows(matrix)
    shown = (" With special tokens hidden, each token's attention is rescaled over the tokens shown."
             if state.hide_special else "")
    with curves:
        if not heads:
            st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
        else:
            keep = figures.top_p_mask(matrix, state.threshold / 100)
            chart_key = f"curves_{st.session_state.get(CURVES_NONCE, 0)}"
            with st.container(key="attention_curves"):
                st.plotly_chart(
                    figures.attention_curves(matrix, shown_labels, positions=visible, keep=keep, selected=state.token),
                    key=chart_key, on_select=lambda: _on_curve_pick(chart_key, visible),
                    selection_mode="points", config=PLOT_CONFIG,
                )
            st.caption(
                f"Each token on the left attends to the tokens on the right; thicker, darker curves "
                f"carry more attention. Shown: the strongest links making up {state.threshold} % of each "
                f"token's attention, averaged over heads {view.layer_label()}. Hover a token for its "
                "strongest links; click one to search with it." + shown
            )
    with heatmap:
        if not heads:
            st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
        else:
            with st.container(key="attention_heatmap"):
                st.plotly_chart(figures.attention_heatmap(matrix, shown_labels, positions=visible, selected=state.token),
                                config=PLOT_CONFIG, key="heatmap")
            st.caption("Row: the token that attends; column: the token it attends to. The selected "
                       "token's row is outlined." + shown)
    with per_head:
        grid = layer_attention[:, visible][:, :, visible]
        st.plotly_chart(figures.head_grid(grid, shown_labels, selected_heads=heads), config=PLOT_CONFIG,
                        key="head_grid")
        st.caption("One small heat map per head (● = selected). Hover for the weights.")

with right:
    position = state.token
    if position is not None:
        word = view.words[position] if view.words else None
        st.markdown(f"#### Selected: “{clean_piece(tokens[position].text)}” (position {position})")
        if word is not None:
            st.caption(f"word “{word.text}” · part of speech **{word.pos}** · dependency **{word.dep}** · "
                       f"entity **{word.ner or 'none'}**")
        if heads and position in visible:
            row = matrix[visible.index(position)]  # as drawn: shown tokens, rescaled if hiding specials
            st.caption("Attends most to: " + ", ".join(
                f"{shown_labels[j]} {row[j]:.0%}" for j in np.argsort(-row)[:4] if row[j] > 0))
        st.markdown("#### Predictions")
        if analysis.predictions is not None:
            candidates = [(c.token, c.prob) for c in analysis.predictions[position]]
            title = (f"Next token after “{labels[position]}”" if info.causal
                     else f"What the model puts at position {position}")
            st.plotly_chart(figures.predictions_bar(candidates, title=title), config=PLOT_CONFIG, key="predictions")
        else:
            st.caption(
                f"{info.name} has no language-model head, so it makes no predictions. The offline "
                "model with one is **smollm2** (it predicts the next token); online, "
                "**bert-base-uncased** predicts masked tokens."
            )


# --- Corpus search -----------------------------------------------------------------------------
def _built(name: str) -> None:
    entry = catalog.entry_of(name)
    size = f" ({entry.sentences:,} sentences, {entry.tokens:,} tokens)" if entry else ""
    controls.set_state(corpus=name)
    controls.note(f"Built the reference corpus '{name}'{size}. It is kept in the data cache for next time.",
                  kind="success")
    st.rerun()


def _corpus_ready() -> catalog.CorpusEntry | None:
    """The selected corpus if it can be searched with this model; else explain and offer a fix."""
    entry = view.corpus
    name = state.corpus
    own = catalog.default_corpus_name(state.model)
    if entry is None:
        if name == DEFAULT_CORPUS and state.model == DEFAULT_MODEL:
            if build.build(DEFAULT_CORPUS, DEFAULT_MODEL, source="alice",
                           label="First run: building the reference corpus 'alice' (Alice in Wonderland)…"):
                _built(DEFAULT_CORPUS)
            return None
        if name == own:
            st.info(f"Corpus '{name}' is not built yet: it indexes *Alice in Wonderland* with "
                    f"{state.model} (a minute or more for larger models).")
            if st.button(f"Build '{name}' now", key="build_own") and build.build(name, state.model, source="alice"):
                _built(name)
        else:
            st.warning(f"Corpus '{name}' is not built. Build it on the Corpora page, or pick another "
                       "corpus in the sidebar.")
            st.page_link("pages/corpora.py", label="Go to the Corpora page", icon=":material/library_books:")
        return None
    if not entry.fits(state.model):
        fitting = [e.name for e in catalog.entries() if e.fits(state.model)]
        st.warning(f"Corpus '{name}' was built with model '{entry.model}', so it cannot be searched "
                   f"with '{state.model}'. Pick a corpus built with '{state.model}' or build one.")
        if fitting:
            st.button(f"Use corpus '{fitting[0]}'", key="use_fitting",
                      on_click=controls.set_state, kwargs={"corpus": fitting[0]})
        elif (st.button(f"Build '{own}' (Alice in Wonderland with {state.model})", key="build_own")
              and build.build(own, state.model, source="alice")):
            _built(own)
        return None
    return entry


st.divider()
if state.token is None:
    st.info("The sentence has no word token to search with.")
    st.stop()
query_word = clean_piece(tokens[state.token].text)
st.markdown(f"### Corpus tokens like “{query_word}” at {view.layer_label()}")
entry = _corpus_ready()
if entry is None:
    st.stop()
if state.by == "heads" and not heads:
    st.info("Search by head embedding needs at least one head: select heads in the sidebar.")
    st.stop()

try:
    result = cache.search(state.model, str(entry.path), entry.stamp, analysis.sentence, analysis.masked,
                          state.token, state.layer, state.by, tuple(heads), state.k)
except USER_ERRORS as err:
    st.error(str(err))
    st.stop()
except Exception as err:
    log.exception("Search failed")
    st.error(f"The search failed ({type(err).__name__}: {err}). Try another layer or token.")
    st.stop()

by_words = "embedding" if state.by == "embedding" else "head embedding (selected heads)"
st.caption(
    f"The {len(result.matches)} tokens of corpus '{entry.name}' whose {by_words} at layer {state.layer} is "
    f"closest (cosine) to that of “{query_word}”. Highlighted: the matched word; underlined: the token "
    "it attends to most (selected heads, special tokens excluded). Hover a word for its part of speech, "
    "dependency and entity."
)

matches_tab, summary_tab = st.tabs([f"Matches ({len(result.matches)})", "Summary"])
with matches_tab, st.container(key="matches"):
    tools = st.columns([2, 1, 1], vertical_alignment="bottom")
    width = tools[0].slider("Context shown (tokens each side)", 1, match_table.MAX_WIDTH, 1, key=K_CONTEXT)
    stem = f"exbert-{state.model.split('/')[-1]}-{entry.name}-{view.layer_label()}-{query_word}"
    tools[1].download_button("CSV", match_table.matches_csv(result), file_name=f"{stem}.csv",
                             mime="text/csv", key="download_csv", icon=":material/download:", on_click="ignore")
    tools[2].download_button("JSON", json.dumps(serialize.search_dict(result), ensure_ascii=False, indent=1),
                             file_name=f"{stem}.json", mime="application/json", key="download_json",
                             icon=":material/download:", on_click="ignore")
    st.html(match_table.matches_html(result, width=width))

with summary_tab:
    hist = summary.histograms(result)
    n = len(result.matches)
    everything = [label for side in hist.values() for feature, counts in side.items() if feature != "offset"
                  for label in counts]
    describe = figures.describe_labels(sorted(set(everything)))
    features = {"pos": "Part of speech", "dep": "Grammatical role (dependency)", "ner": "Named-entity type"}
    with st.container(key="summary"):
        st.caption("Left: the matched tokens. Right: the tokens each match attends to most. Hover a bar "
                   "for its meaning and share.")
        tabs = st.tabs(["Part of speech", "Grammatical role", "Named entity", "Offset"])
        for tab, (feature, title) in zip(tabs, features.items()):
            with tab:
                a, b = st.columns(2)
                a.plotly_chart(figures.histogram(hist["matched"][feature], describe=describe,
                                                 title=f"{title} of the {n} matched tokens",
                                                 color=figures.MATCHED_COLOR),
                               config=PLOT_CONFIG, key=f"hist_matched_{feature}")
                b.plotly_chart(figures.histogram(hist["max_attention"][feature], describe=describe,
                                                 title=f"{title} of the tokens they attend to most",
                                                 color=figures.ATTENDED_COLOR),
                               config=PLOT_CONFIG, key=f"hist_attended_{feature}")
        with tabs[-1]:
            st.plotly_chart(figures.offset_histogram(hist["max_attention"]["offset"],
                                                     title="Where the most-attended token sits, relative to the match"),
                            config=PLOT_CONFIG, key="hist_offset")
