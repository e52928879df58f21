"""Attention & search: the paper's Figure 1. The attention of the selected heads (curves, heat map,
per-head maps), the token to search with, the model's predictions, the nearest corpus tokens and
their summaries."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from app_pages.common import build, cache, components, page, style, widgets
from app_pages.common import state as session
from app_pages.common.sidebar import sidebar
from exbert_core.app import state as app_state
from exbert_core.app.state import LONG_INPUT_TOKENS
from exbert_core.corpus.search import summary
from exbert_core.model.selection import Heads, block_index
from exbert_core.views import attention_view, explain, match_table, serialize, tables
from exbert_core.views.charts import attention_arrays, attention_charts, chart_style, corpus_charts, head_maps
from exbert_core.views.labels import clean_piece, markdown_text
from exbert_core.views.tokens import reader_names, strongest

CURVES_NONCE = "curves_nonce"
K_CONTEXT = "ctx_width"
K_VIEW = "attention_view"
K_RESULTS = "results_tab"
K_HIST = "hist_tab"
K_HEAD_MAPS = "head_maps"
VIEW_LABELS = {"curves": "Curves", "matrix": "Heat map", "heads": "Every head"}
RESULT_LABELS = {"matches": "Matches", "summary": "Summary"}
# Short enough that "<title> of the tokens they attend to most" is one line of a phone's chart.
FEATURE_TITLES = {"pos": "Part of speech", "dep": "Grammatical role", "ner": "Named entity"}
SCROLL_HEIGHT = 900  # px: a long input's curves scroll inside a box of this height

HOW_TO_READ = f"""
A language model reads the sentence in the sidebar in **layers** (one after the other); in each layer,
several **heads** each decide how much every token (a word or a piece of one) *looks at*, or
**attends to**, every other token.

- **Attention** (left): each token on the left is linked to the tokens it attends to on the right;
  thicker, darker curves carry more attention. The small blue maps under it are the single heads
  (row: the token that attends; column: the token it attends to). Click a map to show only that
  head, then others to add them.
- **{explain.NOTATION}**
- **Selected token** (right): the token searched with (click one above the chart, or in the chart), what
  it attends to most, and what the model predicts there (if it can).
- **Matches** (below): the tokens of a reference text (by default *Alice in Wonderland*) that the model
  represents most like the selected one at this layer, each in its sentence. Highlighted: the matching
  token; underlined: the token it attends to most.
- **Summary**: what kind of words the matches are (part of speech, grammatical role, named entity), and
  the same for the tokens they attend to most; *Offset* says where those sit relative to the match.
- **Masking** a token replaces it by a blank (`[MASK]`): the model must guess it from its context.
- **Special tokens** are markers the model adds: `[CLS]` opens a sentence and `[SEP]` closes it (BERT's
  names); `[UNK]` stands for a character the model does not know.
- **Score** (in the matches): how alike the two tokens' vectors are (cosine similarity): 1 means the same
  direction, 0 unrelated.
- **Measure** (sidebar): what the attention numbers are. See *Which measure* below.

Every change is kept in the page's address: **Copy link** at the top gives a colleague this exact view.
{explain.MEASURE_GUIDE}"""


def _on_curve_pick(chart_key: str, positions: list[int]) -> None:
    event = st.session_state.get(chart_key) or {}
    for point in (event.get("selection") or {}).get("points") or []:
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
            session.set_state(token=position)
            st.session_state[CURVES_NONCE] = st.session_state.get(CURVES_NONCE, 0) + 1
            return


def _tab_setter(key: str, labels: dict[str, str], field: str):
    """``on_change`` of stateful tabs: the open tab's value goes into the state (and the URL)."""
    def callback() -> None:
        chosen = next((value for value, text in labels.items() if text == st.session_state.get(key)), None)
        if chosen:
            session.set_state(**{field: chosen})

    return callback


def _tabs(key: str, labels: dict[str, str], field: str, current: str):
    """Tabs that remember the open one in the state; only the open tab's code runs."""
    widgets.seed(key, labels[current])
    return st.tabs(list(labels.values()), key=key, on_change=_tab_setter(key, labels, field))


view = sidebar(page_name="attention")
state = view.state

st.markdown("## Attention & search")
style.phone_hint()
with st.expander("How to read this page", icon=":material/help:"):
    st.markdown(HOW_TO_READ)
info, analysis = page.ready(view, "the attention view")
assert state.layer is not None
tokens = analysis.tokens
labels = [clean_piece(t.text) for t in tokens]
names = reader_names(analysis)  # "flamingo (piece 'flaming')", "to (4)": what a reader is told
heads = state.selected_heads(info.heads)
visible = attention_arrays.visible_positions([t.special for t in tokens], state.hide_special)
shown_labels = [labels[p] for p in visible]
weights = page.required(widgets.attempt(
    lambda: cache.weights(state.model, analysis.sentence, analysis.masked, state.measure),
    "The attention measure could not be computed.", hint="Choose Raw attention in the sidebar."))
shown_attention = attention_view.shown(weights, analysis.attention, state.layer, heads, info.heads, state.aggregate)
layer_attention = shown_attention.per_head  # heads x tokens x tokens, under the per-head measure
label = view.layer_label()
st.caption(f"Model **{markdown_text(info.name)}** · layer-[heads] **{label}** · corpus "
           f"**{markdown_text(state.corpus)}** · {len(tokens)} tokens", help=explain.NOTATION)

if analysis.masked and info.mask_token and not info.has_lm_head:
    hidden = [analysis.sentence[tokens[m].start:tokens[m].end] for m in analysis.masked]
    selected_word = analysis.sentence[tokens[state.token].start:tokens[state.token].end] if state.token is not None else ""
    st.warning(explain.masking_caveat(info.name, hidden, selected_word, state.token in analysis.masked),
               icon=":material/theater_comedy:")

# --- The token to search with ------------------------------------------------------------------
widgets.token_picker(analysis, "Token to search with (or click a token in the attention curves)", selected=state.token,
                     can_mask=info.mask_token is not None)

# --- Attention ---------------------------------------------------------------------------------
long_input = len(tokens) > LONG_INPUT_TOKENS
current = state.view if state.view != "auto" else ("matrix" if long_input else "curves")
left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown(f"#### Attention at layer {state.layer}")
    if heads:
        lead = (explain.attention_sentence(state.layer, list(heads), info.heads, label)
                if (state.measure, state.aggregate) == ("raw", "layer")
                else "What each token of the sentence takes from every other token.")
        st.caption(lead + " " + attention_view.describe(shown_attention, state.layer, heads, info.heads,
                                                        causal=info.causal))
    # Tabs with state: only the open tab runs (a long input's curves are built only when asked for).
    curves, heatmap, per_head = _tabs(K_VIEW, VIEW_LABELS, "view", current)
    matrix = shown_attention.matrix[np.ix_(visible, visible)]
    if state.hide_special:
        matrix = attention_arrays.renormalize_rows(matrix)
    shown = (" With special tokens hidden, each token's attention is rescaled over the tokens shown."
             if state.hide_special else "")
    stem = f"{state.model.split('/')[-1]}-{label}"
    no_heads = "No head is selected: click a head's map below, or choose heads in the sidebar."
    if curves.open is not False:
        with curves:
            if not heads:
                st.info(no_heads)
            else:
                keep = attention_arrays.top_p_mask(matrix, state.threshold / 100)
                limited = ""
                if long_input:
                    kept = int(keep.sum())
                    keep = attention_arrays.strongest_links(matrix, keep, attention_charts.MAX_LONG_LINKS)
                    if int(keep.sum()) < kept:
                        limited = (f" This input is long ({len(tokens)} tokens): only the {int(keep.sum()):,} "
                                   f"strongest of those {kept:,} links are drawn; the heat map shows them all.")
                chart_key = f"curves_{st.session_state.get(CURVES_NONCE, 0)}"
                figure = attention_charts.attention_curves(matrix, shown_labels, positions=visible, keep=keep,
                                                  selected=state.token)
                with st.container(key="attention_curves", height=SCROLL_HEIGHT if long_input else "content"):
                    st.plotly_chart(figure, key=chart_key, on_select=lambda: _on_curve_pick(chart_key, visible),
                                    selection_mode="points", config=widgets.chart_config(f"curves-{stem}"))
                st.caption(
                    f"Each token on the left attends to the tokens on the right; thicker, darker curves "
                    f"carry more attention. Shown: the strongest links making up {state.threshold} % of each "
                    f"token's attention, averaged over heads {label}. Point at a token (tap it on a "
                    "phone) for its strongest links; click it to search with it." + shown + limited
                )
    if heatmap.open is not False:
        with heatmap:
            if not heads:
                st.info(no_heads)
            else:
                with st.container(key="attention_heatmap"):
                    st.plotly_chart(attention_charts.attention_heatmap(matrix, shown_labels, positions=visible,
                                                              selected=state.token),
                                    config=widgets.chart_config(f"heatmap-{stem}", zoom=long_input), key="heatmap")
                st.caption("Row: the token that attends; column: the token it attends to. The selected "
                           "token's row is outlined." + shown
                           + (" Drag over a region to zoom in (its tokens are then labelled); double-click "
                              "to zoom out." if long_input else ""))
    if per_head.open is not False:
        with per_head:
            grid = layer_attention[:, visible][:, :, visible]
            st.plotly_chart(head_maps.head_grid(grid, shown_labels, selected_heads=heads),
                            config=widgets.chart_config(f"heads-layer{state.layer}"), key="head_grid")
            pooled = len(visible) > head_maps.POOLED_TILE
            st.caption(f"Every head of layer {state.layer}: one small heat map per head (● = selected), by "
                       f"{attention_view.measure_words(shown_attention.per_head_measure)}. "
                       "Point at (or tap) a cell for its weight."
                       + (" Long input: each cell is the strongest link of a block of tokens." if pooled else ""))

    # The paper's per-head maps, as toggles (the selection is sent once the clicks pause).
    with st.container(key="head_maps_box"):
        st.markdown(f"**Heads of layer {state.layer}** · "
                    + ("click a map to show only that head, then others to add them"
                       if state.heads.is_all(info.heads) else "click a map to add or remove that head"),
                    help="Each map is one head: row = the token that attends, column = the token it attends "
                         "to, darker = more. " + explain.NOTATION)
        thumbnails = head_maps.head_thumbnails(layer_attention[:, visible][:, :, visible])
        components.head_picker(thumbnails, selected=heads, all_heads=state.heads.is_all(info.heads), key=K_HEAD_MAPS,
                               visit=session.page_visit(),
                               on_change=lambda chosen: session.set_state(heads=Heads.of(chosen)))

with right:
    position = state.token
    if position is not None:
        word = view.words[position] if view.words else None
        st.markdown(f"#### Selected: “{markdown_text(names[position])}” (position {position})")
        if word is not None:
            said = corpus_charts.describe_labels([word.pos, word.dep, word.ner])  # PROPN -> proper noun

            def named(label: str) -> str:
                return f"**{markdown_text(label)}**" + (f" ({markdown_text(said[label])})" if said.get(label) else "")

            st.caption(f"word “{markdown_text(word.text)}” · part of speech {named(word.pos)} · "
                       f"grammatical role {named(word.dep)} · entity {named(word.ner) if word.ner else '**none**'}",
                       help="spaCy's labels for the word: its part of speech, its role in the sentence "
                            "(which word it depends on, and how), and the kind of name it is, if any.")
        if heads and position in visible:
            row = matrix[visible.index(position)]  # as drawn: shown tokens, rescaled if hiding specials
            st.caption(f"Takes most from ({attention_view.measure_words(shown_attention.measure)}): " + ", ".join(
                f"{markdown_text(names[visible[t.index]])} {t.weight:.0%}" for t in strongest(row)),
                help="Each token's share of what this token takes from the sentence, under the measure chosen in "
                     "the sidebar; a number in brackets is the token's position, for a word that repeats.")
        st.markdown("#### Predictions")
        if analysis.predictions is not None:
            candidates = [(c.token, c.prob) for c in analysis.predictions[position]]
            title = (f"Next token after “{labels[position]}”" if info.causal
                     else f"What the model puts at position {position}")
            st.plotly_chart(attention_charts.predictions_bar(candidates, title=title), key="predictions",
                            config=widgets.chart_config(f"predictions-{state.model.split('/')[-1]}-{position}"))
            st.page_link("app_pages/layers.py", label="Its predictions at every layer (logit lens)",
                         icon=":material/stacked_bar_chart:")
        else:
            st.caption(
                f"{markdown_text(info.name)} has no language-model head, so it makes no predictions. The offline "
                "model with one is **smollm2** (it predicts the next token); online, "
                "**bert-base-uncased** predicts masked tokens."
            )


# --- Corpus search -----------------------------------------------------------------------------
st.divider()
if state.token is None:
    st.info("The sentence has no word token to search with.")
    st.stop()
query_word = labels[state.token]
st.markdown(explain.search_heading(names[state.token], state.layer, state.by, label, list(heads), info.heads),
            help=explain.SEARCH_KINDS_HELP)
entry = build.corpus_ready(view)
if entry is None:
    st.stop()
if state.by == "heads" and not heads:
    st.info("Search by head embedding needs at least one head: select heads in the sidebar.")
    st.stop()

result = page.required(widgets.attempt(
    lambda: cache.search(state.model, str(entry.path), entry.stamp, analysis.sentence, analysis.masked,
                         state.token, state.layer, state.by, tuple(heads), state.k, state.measure, state.aggregate),
    "The search failed.", hint="Try another layer or token."))

title = explain.corpus_title(entry.name, entry.source)
search_stem = f"{state.model.split('/')[-1]}-{entry.name}-{label}-{query_word}"
hist = summary.histograms(result)
n = len(result.matches)
with st.container(key="downloads", horizontal=True):
    st.download_button("Matches as CSV", match_table.matches_csv(result), file_name=f"exbert-{search_stem}.csv",
                       mime="text/csv", key="download_csv", icon=":material/download:", on_click="ignore")
    st.download_button("JSON", json.dumps(serialize.search_dict(result), ensure_ascii=False, indent=1),
                       file_name=f"exbert-{search_stem}.json", mime="application/json",
                       key="download_json", icon=":material/download:", on_click="ignore")
    st.download_button("Summary as CSV", match_table.rows_csv(tables.summary_rows(hist)),
                       file_name=f"exbert-{search_stem}-summary.csv", mime="text/csv", key="download_summary_csv",
                       icon=":material/download:", on_click="ignore")

matches_tab, summary_tab = _tabs(K_RESULTS, {**RESULT_LABELS, "matches": f"Matches ({n})"}, "tab", state.tab)
if matches_tab.open is not False:
    with matches_tab, st.container(key="matches"):
        st.markdown(explain.matches_sentence(n, title, query_word, state.layer, state.by, label))
        widgets.seed(K_CONTEXT, state.context)
        width = st.slider("Context shown (tokens each side)", 1, app_state.MAX_CONTEXT, key=K_CONTEXT, width=360,
                          on_change=lambda: session.set_state(context=int(st.session_state[K_CONTEXT])))
        st.caption("Score: how alike the match's vector is to the selected token's (cosine similarity, 1 = the "
                   "same direction). Highlighted: the matched token; underlined: the token it takes most from, by "
                   f"{attention_view.measure_words(state.measure)} "
                   f"({'rolled out over layers 1 to ' + str(state.layer) if state.aggregate == 'rollout' else 'selected heads'}, "
                   "special tokens excluded), with its offset from the match. Point at a word for its part of "
                   "speech, grammatical role and entity (on a phone they are listed under each match).")
        st.html(match_table.matches_html(result, width=width))

if summary_tab.open is not False:
    with summary_tab, st.container(key="summary"):
        st.markdown(explain.summary_sentence(n, title, query_word, state.layer))
        st.caption("Both charts use one scale. Point at (or tap) a bar for its meaning and share.")
        everything = [lab for side in hist.values() for feature, counts in side.items() if feature != "offset"
                      for lab in counts]
        describe = corpus_charts.describe_labels(sorted(set(everything)))
        for feature, tab in zip(explain.FEATURE_NAMES, _tabs(K_HIST, explain.FEATURE_NAMES, "hist", state.hist)):
            if tab.open is False:
                continue
            with tab:
                if feature == "offset":
                    st.plotly_chart(corpus_charts.offset_histogram(hist["max_attention"]["offset"],
                                                             title="Where the most-attended token sits, relative to the match"),
                                    config=widgets.chart_config(f"offset-{search_stem}"), key="hist_offset")
                    continue
                matched, attended = hist["matched"][feature], hist["max_attention"][feature]
                top = max([*matched.values(), *attended.values(), 1])  # one x scale for the pair
                a, b = st.columns(2)
                a.plotly_chart(corpus_charts.histogram(matched, describe=describe, x_max=top, color=chart_style.MATCHED_COLOR,
                                                 title=f"{FEATURE_TITLES[feature]} of the {n} matched tokens"),
                               config=widgets.chart_config(f"{feature}-matched-{search_stem}"),
                               key=f"hist_matched_{feature}")
                b.plotly_chart(corpus_charts.histogram(attended, describe=describe, x_max=top, color=chart_style.ATTENDED_COLOR,
                                                 title=f"{FEATURE_TITLES[feature]} of the tokens they attend to most"),
                               config=widgets.chart_config(f"{feature}-attended-{search_stem}"),
                               key=f"hist_attended_{feature}")
