"""Attention & search: the paper's Figure 1. The attention of the selected heads, the token to
search with, the model's predictions, the nearest corpus tokens and their summaries."""

from __future__ import annotations

import json
import logging

import numpy as np
import streamlit as st

from app_pages.common import build, cache, controls
from exbert_core.app.state import LONG_INPUT_TOKENS
from exbert_core.corpus import summary
from exbert_core.errors import USER_ERRORS
from exbert_core.views import figures, match_table, serialize, tables
from exbert_core.views.labels import clean_piece

log = logging.getLogger(__name__)
CURVES_NONCE = "curves_nonce"
K_CONTEXT = "ctx_width"
K_VIEW = "attention_view"
VIEW_LABELS = {"curves": "Curves", "matrix": "Heat map", "heads": "Every head"}
SCROLL_HEIGHT = 900  # px: a long input's curves scroll inside a box of this height

view = controls.sidebar(params=("view", "image"))
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
controls.token_picker(view, "Token to search with (or click a token in the attention curves)")


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


def _on_view() -> None:
    label = st.session_state.get(K_VIEW)
    chosen = next((v for v, text in VIEW_LABELS.items() if text == label), None)
    if chosen:
        controls.set_state(view=chosen)


# --- Attention ---------------------------------------------------------------------------------
long_input = len(tokens) > LONG_INPUT_TOKENS
current = state.view if state.view != "auto" else ("matrix" if long_input else "curves")
left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown(f"#### Attention at layer {state.layer}")
    controls.seed(K_VIEW, VIEW_LABELS[current])
    # Tabs with state: only the open tab runs (a long input's curves are built only when asked for).
    curves, heatmap, per_head = st.tabs(list(VIEW_LABELS.values()), key=K_VIEW, on_change=_on_view)
    matrix = figures.head_mean(layer_attention, heads)[np.ix_(visible, visible)]
    if state.hide_special:
        matrix = figures.renormalize_rows(matrix)
    shown = (" With special tokens hidden, each token's attention is rescaled over the tokens shown."
             if state.hide_special else "")
    stem = f"{state.model.split('/')[-1]}-{view.layer_label()}"
    if curves.open is not False:
        with curves:
            if not heads:
                st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
            else:
                keep = figures.top_p_mask(matrix, state.threshold / 100)
                limited = ""
                if long_input:
                    kept = int(keep.sum())
                    keep = figures.strongest_links(matrix, keep, figures.MAX_LONG_LINKS)
                    if int(keep.sum()) < kept:
                        limited = (f" This input is long ({len(tokens)} tokens): only the {int(keep.sum()):,} "
                                   f"strongest of those {kept:,} links are drawn; the heat map shows them all.")
                chart_key = f"curves_{st.session_state.get(CURVES_NONCE, 0)}"
                figure = figures.attention_curves(matrix, shown_labels, positions=visible, keep=keep,
                                                  selected=state.token)
                with st.container(key="attention_curves", height=SCROLL_HEIGHT if long_input else "content"):
                    st.plotly_chart(figure, key=chart_key, on_select=lambda: _on_curve_pick(chart_key, visible),
                                    selection_mode="points", config=controls.chart_config(f"curves-{stem}"))
                st.caption(
                    f"Each token on the left attends to the tokens on the right; thicker, darker curves "
                    f"carry more attention. Shown: the strongest links making up {state.threshold} % of each "
                    f"token's attention, averaged over heads {view.layer_label()}. Hover a token for its "
                    "strongest links; click one to search with it." + shown + limited
                )
    if heatmap.open is not False:
        with heatmap:
            if not heads:
                st.info("No head is selected: choose heads in the sidebar (or press *All heads*).")
            else:
                with st.container(key="attention_heatmap"):
                    st.plotly_chart(figures.attention_heatmap(matrix, shown_labels, positions=visible,
                                                              selected=state.token),
                                    config=controls.chart_config(f"heatmap-{stem}", zoom=long_input), key="heatmap")
                st.caption("Row: the token that attends; column: the token it attends to. The selected "
                           "token's row is outlined." + shown
                           + (" Drag over a region to zoom in (its tokens are then labelled); double-click "
                              "to zoom out." if long_input else ""))
    if per_head.open is not False:
        with per_head:
            grid = layer_attention[:, visible][:, :, visible]
            st.plotly_chart(figures.head_grid(grid, shown_labels, selected_heads=heads),
                            config=controls.chart_config(f"heads-layer{state.layer}"), key="head_grid")
            pooled = len(visible) > figures.POOLED_TILE
            st.caption(f"Every head of layer {state.layer}: one small heat map per head (● = selected). "
                       "Hover for the weights."
                       + (" Long input: each cell is the strongest link of a block of tokens." if pooled else ""))

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
            st.plotly_chart(figures.predictions_bar(candidates, title=title), key="predictions",
                            config=controls.chart_config(f"predictions-{state.model.split('/')[-1]}-{position}"))
            st.page_link("app_pages/layers.py", label="Its predictions at every layer (logit lens)",
                         icon=":material/stacked_bar_chart:")
        else:
            st.caption(
                f"{info.name} has no language-model head, so it makes no predictions. The offline "
                "model with one is **smollm2** (it predicts the next token); online, "
                "**bert-base-uncased** predicts masked tokens."
            )


# --- Corpus search -----------------------------------------------------------------------------
st.divider()
if state.token is None:
    st.info("The sentence has no word token to search with.")
    st.stop()
query_word = clean_piece(tokens[state.token].text)
st.markdown(f"### Corpus tokens like “{query_word}” at {view.layer_label()}")
entry = build.corpus_ready(view)
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

search_stem = f"{state.model.split('/')[-1]}-{entry.name}-{view.layer_label()}-{query_word}"
# Tabs with state: only the open tab's figures are built (a rerun builds 2 charts, not 9).
matches_tab, summary_tab = st.tabs([f"Matches ({len(result.matches)})", "Summary"], key="result_tabs",
                                   on_change="rerun")
with matches_tab, st.container(key="matches"):
    tools = st.columns([2, 1, 1], vertical_alignment="bottom")
    width = tools[0].slider("Context shown (tokens each side)", 1, match_table.MAX_WIDTH, 1, key=K_CONTEXT)
    tools[1].download_button("CSV", match_table.matches_csv(result), file_name=f"exbert-{search_stem}.csv",
                             mime="text/csv", key="download_csv", icon=":material/download:", on_click="ignore")
    tools[2].download_button("JSON", json.dumps(serialize.search_dict(result), ensure_ascii=False, indent=1),
                             file_name=f"exbert-{search_stem}.json", mime="application/json", key="download_json",
                             icon=":material/download:", on_click="ignore")
    st.html(match_table.matches_html(result, width=width))

with summary_tab:
    if summary_tab.open is False:
        st.stop()  # the last section of the page: nothing below to draw
    hist = summary.histograms(result)
    n = len(result.matches)
    everything = [label for side in hist.values() for feature, counts in side.items() if feature != "offset"
                  for label in counts]
    describe = figures.describe_labels(sorted(set(everything)))
    features = {"pos": "Part of speech", "dep": "Grammatical role (dependency)", "ner": "Named-entity type"}
    with st.container(key="summary"):
        st.caption("Left: the matched tokens. Right: the tokens each match attends to most. Hover a bar "
                   "for its meaning and share.")
        tabs = st.tabs(["Part of speech", "Grammatical role", "Named entity", "Offset"], key="summary_tabs",
                       on_change="rerun")
        for tab, (feature, title) in zip(tabs, features.items()):
            if tab.open is False:
                continue
            with tab:
                a, b = st.columns(2)
                a.plotly_chart(figures.histogram(hist["matched"][feature], describe=describe,
                                                 title=f"{title} of the {n} matched tokens",
                                                 color=figures.MATCHED_COLOR),
                               config=controls.chart_config(f"{feature}-matched-{search_stem}"),
                               key=f"hist_matched_{feature}")
                b.plotly_chart(figures.histogram(hist["max_attention"][feature], describe=describe,
                                                 title=f"{title} of the tokens they attend to most",
                                                 color=figures.ATTENDED_COLOR),
                               config=controls.chart_config(f"{feature}-attended-{search_stem}"),
                               key=f"hist_attended_{feature}")
        if tabs[-1].open is not False:
            tabs[-1].plotly_chart(figures.offset_histogram(hist["max_attention"]["offset"],
                                                           title="Where the most-attended token sits, relative to the match"),
                                  config=controls.chart_config(f"offset-{search_stem}"), key="hist_offset")
        st.download_button("Summary as CSV", match_table.rows_csv(tables.summary_rows(hist)),
                           file_name=f"exbert-{search_stem}-summary.csv", mime="text/csv", key="download_summary_csv",
                           icon=":material/download:", on_click="ignore")
