"""Layer sweep and logit lens: how the corpus neighbours of the selected token (the paper's
Figure 4, which its authors assembled by hand) and the model's predictions for it change from
layer to layer."""

from __future__ import annotations

import json

import streamlit as st

from app_pages.common import build, cache, page, style, widgets
from app_pages.common import state as session
from app_pages.common.sidebar import sidebar
from exbert_core.app import state as app_state
from exbert_core.model.selection import layer_range
from exbert_core.views import explain, match_table, sweep, tables
from exbert_core.views.charts import corpus_charts, sweep_charts
from exbert_core.views.labels import clean_piece, markdown_text

K_FEATURE = "sweep_feature"
LENS_SHOWN = 5  # candidates per layer in the chart (the CSV has all of them)

view = sidebar(page_name="layers", groups=("heads", "masks", "search"))
state = view.state

st.markdown("## Layer sweep & logit lens")
style.phone_hint()
info, analysis = page.ready(view, "the layer sweep")
tokens = analysis.tokens
widgets.token_picker(analysis, "Token to follow across the layers", selected=state.token,
                     can_mask=info.mask_token is not None)
if state.token is None:
    st.info("The sentence has no word token to follow.")
    st.stop()
position = state.token
word = "[MASK]" if position in analysis.masked else clean_piece(tokens[position].text)
heads = state.selected_heads(info.heads)
stem = f"{state.model.split('/')[-1]}-{word}-{position}"
st.caption(f"Model **{markdown_text(info.name)}** · token **“{markdown_text(word)}”** (position {position}) · "
           f"corpus **{markdown_text(state.corpus)}** · {len(tokens)} tokens")

sweep_col, lens_col = st.columns([4, 3], gap="large")

# --- Logit lens ----------------------------------------------------------------------------------
with lens_col, st.container(key="logit_lens"):
    st.markdown("#### Logit lens", help="The model's final step, which turns a token's vector into a guess of "
                "the next word, applied after every layer: what the model would say if it stopped there.")
    if not info.has_lm_head:
        st.caption(f"{markdown_text(info.name)} has no language-model head, so it has no logit lens (its layers cannot be "
                   "read as predictions). The offline model with one is **smollm2** (pick it in the "
                   "sidebar); online, **bert-base-uncased**.")
    else:
        lens = widgets.attempt(lambda: cache.logit_lens(state.model, analysis.sentence, analysis.masked, position),
                               "The logit lens failed.")
        if lens is not None:
            layers = list(layer_range("heads", info.layers))
            target = "the next token" if info.causal else f"position {position}"
            st.plotly_chart(
                sweep_charts.logit_lens_chart(layers, [[(c.token, c.prob) for c in row[:LENS_SHOWN]] for row in lens],
                                         title=f"Top predictions for {target} after each layer"),
                config=widgets.chart_config(f"logit-lens-{stem}"), key="lens_chart")
            st.caption("The model's language-model head applied to the token's output after every layer "
                       "(the logit lens): where the final prediction first appears. The last row is the "
                       f"model's own prediction. Shown: the top {LENS_SHOWN}; the CSV has the top "
                       f"{len(lens[0])}.")
            st.download_button("Logit lens as CSV", match_table.rows_csv(tables.lens_rows(layers, lens)),
                               file_name=f"exbert-logit-lens-{stem}.csv", mime="text/csv", key="download_lens_csv",
                               icon=":material/download:", on_click="ignore")

# --- Layer sweep ---------------------------------------------------------------------------------
with sweep_col, st.container(key="layer_sweep"):
    by_words = "token embedding" if state.by == "embedding" else f"head embedding (heads {state.heads.format()})"
    st.markdown(f"#### Corpus neighbours of “{markdown_text(word)}” at every layer")
    if analysis.masked and info.mask_token and not info.has_lm_head:
        hidden = [analysis.sentence[tokens[m].start:tokens[m].end] for m in analysis.masked]
        st.caption(explain.masking_caveat(info.name, hidden, analysis.sentence[tokens[position].start:tokens[position].end],
                                          position in analysis.masked))
    entry = build.corpus_ready(view)
    if entry is None:
        st.stop()
    if state.by == "heads" and not heads:
        st.info("Search by head embedding needs at least one head: select heads in the sidebar.")
        st.stop()
    summaries = page.required(widgets.attempt(
        lambda: cache.sweep(state.model, str(entry.path), entry.stamp, analysis.sentence, analysis.masked,
                            position, state.by, tuple(heads), state.k),
        "The layer sweep failed.", hint="Try another token."))

    widgets.seed(K_FEATURE, state.feature)
    st.segmented_control("Feature", list(app_state.FEATURES), key=K_FEATURE, required=True,
                         format_func=explain.FEATURE_NAMES.get,
                         on_change=lambda: session.set_state(feature=st.session_state[K_FEATURE]))
    layers = [s.layer for s in summaries]
    counts = [s.histograms[state.feature] for s in summaries]
    describe = corpus_charts.describe_labels(sorted({label for c in counts for label in c}))
    st.plotly_chart(
        sweep_charts.layer_sweep_chart(layers, counts, describe=describe,
                                  title=f"{explain.FEATURE_NAMES[state.feature]} of the {state.k} nearest corpus tokens"),
        config=widgets.chart_config(f"layer-sweep-{state.feature}-{stem}"), key="sweep_chart")
    first = ("Layer 0 is the embedding output (before any attention), layers 1-"
             f"{info.layers} the output of each block" if state.by == "embedding"
             else f"Layers 1-{info.layers}: what the selected heads of each block gathered")
    st.caption(f"At every layer, the {state.k} tokens of corpus '{markdown_text(entry.name)}' whose {by_words} is "
               f"closest to that of “{markdown_text(word)}”, by {explain.FEATURE_NAMES[state.feature].lower()}. {first}. Point at (or tap) "
               "a bar for its label's meaning and count.")
    st.download_button("Sweep as CSV (every feature)", match_table.rows_csv(tables.sweep_rows(summaries)),
                       file_name=f"exbert-layer-sweep-{entry.name}-{state.by}-{stem}.csv", mime="text/csv",
                       key="download_sweep_csv", icon=":material/download:", on_click="ignore")
    st.download_button("Sweep as JSON", json.dumps(sweep.sweep_dict(summaries), ensure_ascii=False),
                       file_name=f"exbert-layer-sweep-{entry.name}-{state.by}-{stem}.json",
                       mime="application/json", key="download_sweep_json", icon=":material/download:",
                       on_click="ignore")
