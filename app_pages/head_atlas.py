"""Head atlas: which attention head tracks which syntactic relation (Clark et al., 2019), over a
sample of the reference corpus. Computed on first use with its progress shown, then cached in
the corpus folder."""

from __future__ import annotations

import json
import time

import streamlit as st

from app_pages.common import build, cache, page, widgets
from app_pages.common import state as session
from app_pages.common.sidebar import sidebar
from exbert_core.app import state as app_state
from exbert_core.app.state import Relations
from exbert_core.model.measure_names import LABELS as MEASURE_LABELS
from exbert_core.views import explain, head_atlas, match_table, tables
from exbert_core.views.charts import corpus_charts, sweep_charts
from exbert_core.views.labels import markdown_text
K_SAMPLE = "atlas_sample"
K_RELATION = "atlas_relation"
K_CHART = "atlas_chart"
K_SCORE = "atlas_score"
OTHER_WORDS = {"raw": "attention × value", "norm": "raw attention"}  # the table's second head, by the scoring shown


def _compute(entry, sentences: int) -> head_atlas.HeadAtlas:
    """The atlas of ``sentences`` corpus sentences: read from the corpus folder, or computed with a
    progress bar (one session computes, others wait for its file)."""
    reference = cache.corpus(str(entry.path), entry.stamp)
    loaded = cache.model(entry.model)
    shown: dict = {}
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if "bar" not in shown:  # only when it is computed, not when read from the cache
            shown["status"] = st.status(f"Computing the head atlas over {total:,} sentences of "
                                        f"'{entry.name}' (once; then cached with the corpus)…", expanded=True)
            shown["bar"] = shown["status"].progress(0.0)
        shown["bar"].progress(done / max(total, 1), text=f"{done:,} of {total:,} sentences")

    with cache.atlas_lock(str(entry.path), sentences):
        atlas = head_atlas.cached(reference, loaded, sentences, progress)
    if "status" in shown:
        shown["bar"].empty()
        shown["status"].update(label=f"Computed the head atlas over {atlas.sentences:,} sentences in "
                                     f"{time.perf_counter() - started:.0f} s", state="complete", expanded=False)
    return atlas


widgets.follow_switch()
view = sidebar(page_name="head_atlas", analysis_controls=False)
state = view.state

st.markdown("## Head atlas")
st.caption("For every layer × head: how often a word's strongest attention lands on its syntactic head, "
           "per dependency relation, over a sample of the reference corpus, beside the best fixed-offset "
           "baseline (always pick the word at offset −1, +1, …). The method of Clark et al. (2019), *What "
           "does BERT look at?*. Attention to a word sums its tokens; special tokens are left out.")
if view.info is None:
    st.info("Load a model in the sidebar first: the atlas is of the selected model.")
    st.stop()
entry = build.corpus_ready(view)
if entry is None:
    st.stop()

widgets.seed(K_SAMPLE, state.sample)
st.select_slider("Corpus sentences read", list(app_state.ATLAS_SAMPLES), key=K_SAMPLE, width=420,
                 on_change=lambda: session.set_state(sample=int(st.session_state[K_SAMPLE])),
                 help="A random sample of the corpus (the same for every model). 1,000 sentences took 29 s "
                      "with MiniLM on a busy 2-core machine, longer with bigger models; each sample size is "
                      "computed once and cached with the corpus.")
atlas = page.required(widgets.attempt(
    lambda: _compute(entry, state.sample), "The head atlas failed.",
    hint=f"Try a smaller sample, or compute it from the command line: python scripts/head_atlas.py "
         f"--corpus {entry.name} --sentences {state.sample}"))

scored_by = "norm" if state.measure != "raw" and "norm" in atlas.measures else "raw"
widgets.seed(K_SCORE, scored_by)
st.segmented_control("Score heads by", list(atlas.measures), key=K_SCORE, required=True,
                     format_func=MEASURE_LABELS.get,
                     on_change=lambda: session.set_state(measure=st.session_state[K_SCORE]),
                     help="Raw attention: where a head's strongest attention weight lands (Clark et al.). "
                          "Attention × value: the weight times the size of what that word passes on (Kobayashi "
                          "et al. 2020). The table shows the best head by the other measure beside it; "
                          "contribution is measured per layer, not per head, so it scores by attention × value.")
scores = atlas.scores(scored_by)
best = atlas.best_heads(scored_by)  # most frequent relation first
relations = [row[0] for row in best]
if not relations:
    st.info(f"No relation was seen {head_atlas.MIN_COUNT} times in {atlas.sentences} sentences: read more "
            "sentences.")
    st.stop()
state = page.page_fitted(view, *app_state.fit(state, Relations(tuple(relations))))
describe = corpus_charts.describe_labels(relations)
stem = f"{state.model.split('/')[-1]}-{entry.name}-{atlas.sentences}"

with st.container(key="atlas_heatmap"):
    widgets.seed(K_RELATION, state.relation)
    st.selectbox("Relation", relations, key=K_RELATION, width=420,
                 format_func=lambda r: f"{r} · {describe.get(r, '')} ({atlas.count[r]:,})",
                 on_change=lambda: session.set_state(relation=st.session_state[K_RELATION]))
    rel = state.relation
    layer_now = state.layer if state.layer is not None else None
    st.plotly_chart(
        sweep_charts.head_atlas_heatmap(
            scores[rel], relation=rel, count=atlas.count[rel], baseline=atlas.baseline[rel],
            description=describe.get(rel),
            selected=(layer_now, state.selected_heads(view.info.heads)) if layer_now and state.heads.indices else None),
        key=K_CHART, on_select=lambda: widgets.open_picked_head(K_CHART), selection_mode="points", width="content",
        config=widgets.chart_config(f"head-atlas-{rel}-{stem}"),
    )
    _, layer, head, acc, offset, base = next(row for row in best if row[0] == rel)
    st.caption(f"{atlas.count[rel]:,} “{markdown_text(rel)}” dependents in {atlas.sentences:,} sentences. Each cell: "
               "the percent of them whose strongest attention (from that head) lands on their syntactic head. "
               f"Outlined: the best head, {explain.head_words(layer, head)}, right {acc:.0%} of the time; always "
               f"taking the word at offset {offset:+d} is right {base:.0%} of the time. "
               "**Click a cell** to open that head in the attention view.")
    st.button(f"Open {explain.head_words(layer, head)} in the attention view", key="atlas_open_best",
              icon=":material/open_in_new:", on_click=widgets.open_head, args=(layer, head))

with st.container(key="atlas_table_box"):
    st.markdown("#### Best head per relation")
    rows = tables.atlas_rows(atlas, describe, scored_by)
    st.html(tables.atlas_html(rows, f"best by {OTHER_WORDS[scored_by]}"))
    st.caption("Right: how often the head's strongest attention from the dependent lands on its syntactic "
               "head (by the measure chosen above; the next column, the best head by the other measure). Best "
               "fixed offset: always taking the word that far away (−1: the word before), and how often that is "
               "right. Choose a relation in the menu above to see all its heads.")
    tools = st.columns(2)
    tools[0].download_button("Table as CSV", match_table.rows_csv(rows), file_name=f"exbert-head-atlas-{stem}.csv",
                             mime="text/csv", key="download_atlas_csv", icon=":material/download:",
                             on_click="ignore")
    tools[1].download_button("Every head as CSV", match_table.rows_csv(tables.atlas_cells(atlas)),
                             file_name=f"exbert-head-atlas-{stem}-all-heads.csv", mime="text/csv",
                             key="download_atlas_cells_csv", icon=":material/download:", on_click="ignore")
    st.download_button("Atlas as JSON", json.dumps(atlas.to_dict()), file_name=f"exbert-head-atlas-{stem}.json",
                       mime="application/json", key="download_atlas_json", icon=":material/download:",
                       on_click="ignore")
