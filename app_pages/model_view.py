"""Model view: the attention of every layer x head at once as small maps (BertViz's model view).
Click a map to open that head in the attention view."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.common import cache, page, style, widgets
from app_pages.common.sidebar import sidebar
from exbert_core.model.selection import block_index, layer_range
from exbert_core.views import attention_view, explain
from exbert_core.views.charts import attention_arrays, head_maps
from exbert_core.views.labels import clean_piece, markdown_text

K_CHART = "model_view_chart"
K_LAYER = "mv_layer"
K_HEAD = "mv_head"


def _open_picked() -> None:  # reads the menus at the click (args would hold the values drawn before)
    widgets.open_head(st.session_state[K_LAYER], st.session_state[K_HEAD])


widgets.follow_switch()
view = sidebar(page_name="model_view", groups=("masks", "measure", "special"))
state = view.state

st.markdown("## Model view")
style.phone_hint()
info, analysis = page.ready(view, "the model view")
assert state.layer is not None
tokens = analysis.tokens
visible = attention_arrays.visible_positions([t.special for t in tokens], state.hide_special)
labels = [clean_piece(tokens[p].text) for p in visible]
weights = page.required(widgets.attempt(
    lambda: cache.weights(state.model, analysis.sentence, analysis.masked, state.measure),
    "The attention measure could not be computed.", hint="Choose Raw attention in the sidebar."))
every_head = attention_view.every_head(weights, analysis.attention)  # layers x heads x tokens x tokens
attention = every_head[:, :, visible][:, :, :, visible]  # layers x heads x shown x shown
if state.hide_special:
    attention = attention_arrays.renormalize_rows(attention)
pooled = len(visible) > head_maps.MODEL_VIEW_TILE

st.caption(f"Model **{markdown_text(info.name)}**: {info.layers} layers × {info.heads} heads · {len(tokens)} tokens. Every "
           "map shows one head: row = the token that attends, column = the token it attends to (darker = "
           f"more), by **{attention_view.measure_words(weights.per_head)}**"
           + (" (contribution is measured per layer, so single heads show attention × value)"
              if weights.per_head != weights.measure else "")
           + ". **Click a map** to open that head in the attention view; on a narrow screen, swipe the maps "
           "sideways for the other heads."
           + (" With special tokens hidden, each row is rescaled over the tokens shown." if state.hide_special else "")
           + (f" Long input: each cell is the strongest link of a block of tokens (maps of at most "
              f"{head_maps.MODEL_VIEW_TILE} × {head_maps.MODEL_VIEW_TILE} cells)." if pooled else ""))

# The maps keep their size (tappable); a screen narrower than the chart scrolls it sideways.
chart = head_maps.model_view(attention, labels, layer=state.layer, heads=state.selected_heads(info.heads))
st.html(f"<style>.st-key-model_view {{ overflow-x: auto; }} .st-key-model_view > div {{ min-width: "
        f"{int(chart.layout.width)}px; }}</style>")
with st.container(key="model_view"):
    st.plotly_chart(
        chart,
        key=K_CHART, on_select=lambda: widgets.open_picked_head(K_CHART), selection_mode="points", width="content",
        config=widgets.chart_config(f"model-view-{state.model.split('/')[-1]}"),
    )
st.caption(f"Outlined: the heads selected for the attention view ({view.layer_label()}).",
           help=explain.NOTATION)

# The same without a pointer: pick a layer and a head, then open them.
with st.container(key="open_head_row", horizontal=True, vertical_alignment="bottom"):
    layer = st.selectbox("Layer", list(layer_range("heads", info.layers)), index=block_index(state.layer), key=K_LAYER,
                         width=120)
    strongest = np.asarray(attention[block_index(layer)]).reshape(info.heads, -1).max(-1)
    head = st.selectbox("Head", list(range(info.heads)), key=K_HEAD, width=220,
                        format_func=lambda h: f"{h} (strongest link {strongest[h]:.0%})")
    st.button("Open in the attention view", key="mv_open", icon=":material/open_in_new:", on_click=_open_picked)
