"""figures: pure Plotly builders. Invariants of the arrays they draw, escaping, selection data."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
from conftest import PAPER_SENTENCE

from exbert_core.model import analysis
from exbert_core.views.charts import attention_arrays, attention_charts, chart_style, corpus_charts, head_maps, sweep_charts


@pytest.fixture(scope="module")
def paper(minilm):
    return analysis.analyze(minilm, PAPER_SENTENCE)


def _links_drawn(fig: go.Figure) -> int:
    """Number of curves in the line traces (each curve ends with a None separator)."""
    return sum(trace.x.count(None) for trace in fig.data if trace.mode == "lines")


def test_head_mean_of_real_attention_keeps_rows_summing_to_one(paper):
    layer = paper.attention[1]  # heads x tokens x tokens
    mean = attention_arrays.head_mean(layer, [0, 3, 7])
    np.testing.assert_allclose(mean, layer[[0, 3, 7]].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(attention_arrays.head_mean(layer, range(12)), layer.mean(axis=0), atol=1e-6)
    assert not attention_arrays.head_mean(layer, []).any()
    with pytest.raises(ValueError):
        attention_arrays.head_mean(layer[0], [0])


def test_top_p_mask_keeps_the_smallest_set_reaching_p():
    m = np.array([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0], [0, 0, 0, 0]])
    keep = attention_arrays.top_p_mask(m, 0.8)
    assert keep[0].tolist() == [True, True, False, False]
    assert keep[1].all()  # equal weights: 0.75 < 0.8 needs all four
    assert keep[2].tolist() == [False, True, False, False]
    assert not keep[3].any()  # zero weights are never drawn
    assert attention_arrays.top_p_mask(m, 0.5)[0].tolist() == [True, False, False, False]
    assert attention_arrays.top_p_mask(m, 1.0)[0].all()
    with pytest.raises(ValueError):
        attention_arrays.top_p_mask(m, 0)


def test_top_p_mask_on_real_attention_is_minimal(paper):
    m = attention_arrays.head_mean(paper.attention[3], range(12))
    for p in (0.3, 0.6, 0.9):
        keep = attention_arrays.top_p_mask(m, p)
        for row, kept in zip(m, keep):
            assert row[kept].sum() >= p - 1e-6
            # Dropping the weakest kept link falls below p: the set is minimal.
            assert row[kept].sum() - row[kept].min() < p


def test_visible_positions():
    assert attention_arrays.visible_positions([True, False, False, True], False) == [0, 1, 2, 3]
    assert attention_arrays.visible_positions([True, False, False, True], True) == [1, 2]


def test_attention_curves_structure(paper):
    m = attention_arrays.head_mean(paper.attention[1], range(12))
    labels = [t.text for t in paper.tokens]
    keep = attention_arrays.top_p_mask(m, 0.9)
    fig = attention_charts.attention_curves(m, labels, keep=keep)
    left, right = fig.data[-2], fig.data[-1]
    assert list(left.customdata) == list(range(len(labels))) and list(right.customdata) == list(range(len(labels)))
    assert set(left.x) == {0.0} and set(right.x) == {1.0}
    assert _links_drawn(fig) == keep.sum()
    assert all(trace.line.color == chart_style.LINK for trace in fig.data[:-2])
    json.loads(fig.to_json())  # serialisable as Streamlit sends it


def test_attention_curves_highlight_the_selected_row_and_map_positions(paper):
    visible = list(range(1, len(paper.tokens) - 1))  # special tokens hidden
    m = attention_arrays.head_mean(paper.attention[1], range(12))[np.ix_(visible, visible)]
    labels = [paper.tokens[p].text for p in visible]
    fig = attention_charts.attention_curves(m, labels, positions=visible, selected=9)
    accent = [trace for trace in fig.data if trace.mode == "lines" and trace.line.color == chart_style.ACCENT]
    assert accent and sum(trace.x.count(None) for trace in accent) == (m[visible.index(9)] > 0).sum()
    left = fig.data[-2]
    assert list(left.customdata) == visible
    assert left.text[visible.index(9)] == "<b>escape</b>"
    assert "attends to" in left.hovertext[0]


def test_token_strings_are_escaped_everywhere():
    labels = ["<s>", "a&b", '"q"', "</s>"]
    m = np.full((4, 4), 0.25)
    curves = attention_charts.attention_curves(m, labels, selected=0)
    assert curves.data[-2].text[0] == "<b>&lt;s&gt;</b>" and curves.data[-1].text[1] == "a&amp;b"
    assert "<s>" not in curves.to_json().replace("\\u003c", "<").replace("<b>", "")
    heat = attention_charts.attention_heatmap(m, labels)
    # Plotly reads tags and a few entities in text, not &quot;: quotes stay quotes (issue 13, 9).
    assert list(heat.layout.yaxis.ticktext) == ["&lt;s&gt;", "a&amp;b", '"q"', "&lt;/s&gt;"]
    grid = head_maps.head_grid(np.stack([m, m]), labels)
    assert "&lt;s&gt;" in grid.data[0].customdata[0][0]
    hist = corpus_charts.histogram({"<script>": 2}, title="<i>t</i>")
    assert hist.layout.title.text == "&lt;i&gt;t&lt;/i&gt;" and "&lt;script&gt;" in hist.layout.yaxis.ticktext[0]


def test_heatmap_shows_the_matrix_and_outlines_the_selected_row(paper):
    m = attention_arrays.head_mean(paper.attention[0], [2])
    labels = [t.text for t in paper.tokens]
    fig = attention_charts.attention_heatmap(m, labels, selected=9)
    np.testing.assert_allclose(np.array(fig.data[0].z), m, atol=1e-4)  # rounded to keep figures small
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1) == (8.5, 9.5)
    assert fig.layout.yaxis.autorange == "reversed"
    assert not attention_charts.attention_heatmap(m, labels).layout.shapes
    with pytest.raises(ValueError):
        attention_charts.attention_heatmap(m[:3], labels)


def test_head_grid_has_one_map_per_head(paper):
    labels = [t.text for t in paper.tokens]
    fig = head_maps.head_grid(paper.attention[2], labels, selected_heads=[1, 5])
    assert len(fig.data) == 12 and all(isinstance(t, go.Heatmap) for t in fig.data)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[1] == "head 1 ●" and titles[0] == "head 0"
    assert fig.layout.annotations[5].font.color == chart_style.ACCENT
    np.testing.assert_allclose(np.array(fig.data[4].z), paper.attention[2, 4], atol=1e-3)


def test_histograms_put_the_most_frequent_on_top_and_explain_labels():
    describe = corpus_charts.describe_labels(["VERB", "NOUN", "(none)", "nsubj", "PERSON"])
    assert describe["VERB"] == "verb" and "(none)" not in describe and describe["nsubj"]
    fig = corpus_charts.histogram({"VERB": 7, "NOUN": 2, "(none)": 1}, title="POS", describe=describe)
    bar = fig.data[0]
    assert list(bar.x) == [1, 2, 7]  # drawn bottom-up: most frequent on top
    assert fig.layout.yaxis.ticktext[-1] == "VERB · verb"
    assert "7 of 10 matches (70%)" in bar.customdata[-1]


def test_offset_histogram_is_ordered_by_offset():
    fig = corpus_charts.offset_histogram({"1": 5, "-2": 1, "0": 3}, title="offsets")
    assert list(fig.data[0].x) == [-2, 0, 1] and list(fig.data[0].y) == [1, 3, 5]
    assert list(fig.layout.xaxis.ticktext) == ["-2", "0", "+1"]
    assert "2 tokens before" in fig.data[0].customdata[0]


def test_predictions_bar():
    fig = attention_charts.predictions_bar([(" escape", 0.6), ("<run>", 0.3), (" ", 0.1)], title="next")
    assert list(fig.data[0].x) == [0.1, 0.3, 0.6]
    assert list(fig.layout.yaxis.ticktext) == ["' '", "&lt;run&gt;", "escape"]


def test_renormalize_rows():
    m = np.array([[0.6, 0.1, 0.1], [0.0, 0.0, 0.0], [0.2, 0.2, 0.0]])
    r = attention_arrays.renormalize_rows(m)
    np.testing.assert_allclose(r.sum(axis=1), [1.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(r[0], [0.75, 0.125, 0.125], atol=1e-6)


def test_long_sentences_give_figures_of_a_few_megabytes():
    n = 220
    rng = np.random.default_rng(0)
    attention = rng.dirichlet(np.ones(n) * 0.3, size=(12, n)).astype(np.float32)  # heads x n x n
    labels = [f"w{i}" for i in range(n)]
    m = attention_arrays.head_mean(attention, range(12))
    curves = attention_charts.attention_curves(m, labels, keep=attention_arrays.top_p_mask(m, 0.9))
    assert _links_drawn(curves) == attention_arrays.top_p_mask(m, 0.9).sum()
    assert len(curves.to_json()) < 3_000_000
    heat = attention_charts.attention_heatmap(m, labels)
    assert heat.data[0].customdata is None and len(heat.to_json()) < 2_000_000
    assert len(head_maps.head_grid(attention, labels).to_json()) < 6_000_000


# ---------------------------------------------------------------------------------------------
# Export, long inputs, and the views across layers and heads


def test_plot_config_exports_png_or_svg_with_a_safe_name():
    png = chart_style.plot_config("exbert-curves-minilm-2-[all]")
    assert png["toImageButtonOptions"] == {"format": "png", "filename": "exbert-curves-minilm-2--all", "scale": 2}
    assert png["displaylogo"] is False and "zoom2d" in png["modeBarButtonsToRemove"]
    assert "toImage" not in png["modeBarButtonsToRemove"]
    svg = chart_style.plot_config("a/b c", "svg", zoom=True)
    assert svg["toImageButtonOptions"]["format"] == "svg" and svg["toImageButtonOptions"]["filename"] == "a-b-c"
    assert "zoom2d" not in svg["modeBarButtonsToRemove"] and "resetScale2d" not in svg["modeBarButtonsToRemove"]
    json.dumps(svg)  # st.plotly_chart sends the config as JSON
    with pytest.raises(ValueError):
        chart_style.plot_config("x", "jpeg")


def test_strongest_links_keeps_the_heaviest_of_the_kept_links():
    m = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.05, 0.05, 0.9]])
    keep = m > 0.1
    cut = attention_arrays.strongest_links(m, keep, 3)
    assert cut.sum() == 3 and cut[2, 2] and cut[1, 1] and cut[0, 0]
    assert not (cut & ~keep).any()
    assert (attention_arrays.strongest_links(m, keep, 10) == keep).all()


def test_pool_takes_block_maxima():
    a = np.arange(25, dtype=np.float32).reshape(5, 5)
    assert attention_arrays.pool(a, 5) is not None and attention_arrays.pool(a, 5).shape == (5, 5)
    pooled = attention_arrays.pool(a, 3)  # blocks of 2: 3 x 3 cells
    assert pooled.shape == (3, 3) and pooled[0, 0] == 6 and pooled[2, 2] == 24
    stacked = attention_arrays.pool(np.stack([a, a * 2]), 2)
    assert stacked.shape == (2, 2, 2) and stacked[1, 1, 1] == 48


def _long_attention(n: int, heads: int = 12, layers: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n) * 0.3, size=(layers, heads, n)).astype(np.float32)


def test_a_512_token_input_stays_fast_and_small():
    """The attention view of a 512-token input: curves cut to the strongest links, the heat map
    with token names in the hover but no n x n strings, the per-head maps pooled."""
    import time

    n = 512
    attention = _long_attention(n, layers=6)
    labels = [f"w{i}" for i in range(n)]
    m = attention_arrays.head_mean(attention[1], range(12))
    started = time.perf_counter()
    keep = attention_arrays.strongest_links(m, attention_arrays.top_p_mask(m, 0.9), attention_charts.MAX_LONG_LINKS)
    curves = attention_charts.attention_curves(m, labels, keep=keep, selected=9)
    heat = attention_charts.attention_heatmap(m, labels, selected=9)
    grid = head_maps.head_grid(attention[1], labels, selected_heads=[3])
    model = head_maps.model_view(attention, labels, layer=2, heads=[3])
    sizes = [len(f.to_json()) for f in (curves, heat, grid, model)]
    seconds = time.perf_counter() - started
    assert _links_drawn(curves) == attention_charts.MAX_LONG_LINKS
    assert heat.layout.xaxis.type == "category" and heat.data[0].x[9] == "9 w9" and heat.data[0].customdata is None
    assert np.array(grid.data[0].z).shape == (86, 86)  # 512 tokens pooled by blocks of 6
    assert sizes[0] < 1_000_000 and sizes[1] < 2_000_000 and sizes[2] < 1_000_000 and sizes[3] < 1_000_000, sizes
    assert seconds < 5, f"figures for 512 tokens took {seconds:.1f} s"


def test_model_view_has_one_tile_and_one_click_target_per_head(paper):
    labels = [t.text for t in paper.tokens]
    fig = head_maps.model_view(paper.attention, labels, layer=2, heads=[0, 5])
    heat, targets = fig.data
    n = len(labels)
    step = n + max(1, n // 8)
    z = np.array(heat.z, dtype=float)
    np.testing.assert_allclose(z[step:step + n, 5 * step:5 * step + n], paper.attention[1, 5], atol=1e-3)  # layer 2, head 5
    assert len(targets.customdata) == 6 * 12 and list(targets.customdata[13]) == [2, 1]
    assert "layer 2, head 1" in targets.hovertext[13]
    assert len(fig.layout.shapes) == 2 and fig.layout.clickmode == "event+select"
    assert list(fig.layout.yaxis.ticktext)[:2] == ["1", "2"] and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.xaxis.tickangle == 0 and fig.layout.xaxis.title.text == "head"
    # fixed maps of MODEL_VIEW_TILE_PX (tappable), so a phone scrolls the chart instead of shrinking it
    assert fig.layout.width == 12 * head_maps.MODEL_VIEW_TILE_PX + 60
    assert fig.layout.height == 6 * head_maps.MODEL_VIEW_TILE_PX + 75
    json.loads(fig.to_json())


def test_layer_sweep_chart_stacks_shares_to_one_per_layer():
    counts = [{"VERB": 6, "NOUN": 3, "ADV": 1}, {"NOUN": 8, "PROPN": 1, "X": 1}, {"VERB": 10}]
    fig = sweep_charts.layer_sweep_chart([0, 1, 2], counts, describe={"VERB": "verb"}, top=2)
    names = [trace.name for trace in fig.data]
    assert names == ["VERB · verb", "NOUN", "other"]  # most frequent overall first, the rest as other
    totals = np.sum([np.array(trace.y) for trace in fig.data], axis=0)
    np.testing.assert_allclose(totals, 1.0)
    assert fig.data[2].y[1] == pytest.approx(0.2) and fig.layout.barmode == "stack"
    assert fig.layout.xaxis.ticktext[0] == "0<br>emb."
    assert "6 of 10 neighbours (60%)" in fig.data[0].customdata[0]


def test_logit_lens_chart_has_a_row_per_layer():
    rows = [[("<s>", 0.2), (" the", 0.1)], [(" escape", 0.9), (" run", 0.05)]]
    fig = sweep_charts.logit_lens_chart([1, 2], rows, title="lens")
    (heat,) = fig.data
    assert np.array(heat.z).shape == (2, 2) and heat.z[1][0] == pytest.approx(0.9)
    assert heat.text[0][0] == "&lt;s&gt;" and heat.text[1][0] == "escape"
    assert list(heat.y) == ["1", "2"] and fig.layout.yaxis.autorange == "reversed"


def test_head_atlas_heatmap_outlines_the_best_head_and_is_clickable():
    acc = np.zeros((6, 12))
    acc[3, 7] = 0.8
    fig = sweep_charts.head_atlas_heatmap(acc, relation="det", count=120, baseline=(1, 0.6), description="determiner",
                                     selected=(2, (4,)))
    heat, targets = fig.data
    np.testing.assert_allclose(np.array(heat.z), acc * 100)  # whole percents in the cells, one precision
    assert heat.texttemplate == "%{z:.0f}"
    title = fig.layout.title.text.replace("<br>", " ")
    assert "best head: layer 4, head 7 (4-7), 80% right" in title and "offset +1: 60%" in title
    assert fig.layout.width is None  # the chart takes its column's width (a phone's too)
    best, chosen = fig.layout.shapes
    assert (best.x0, best.y0) == (6.5, 3.5) and best.line.color == chart_style.ACCENT
    assert (chosen.x0, chosen.y0) == (3.5, 1.5)
    assert len(targets.customdata) == 72 and list(targets.customdata[3 * 12 + 7]) == [4, 7]
    assert "80% of 120" in targets.hovertext[3 * 12 + 7] and "layer 4, head 7 (4-7)" in targets.hovertext[3 * 12 + 7]


def test_chart_titles_sit_under_the_toolbar_and_fit_a_phone():
    """Every title is above the plotting area with room for Plotly's toolbar band over it, and is
    wrapped to lines a phone's chart holds."""
    long = "Part of speech of the tokens they attend to most, in the reference corpus"
    for fig in (corpus_charts.histogram({"VERB": 3}, title=long), corpus_charts.offset_histogram({"1": 2}, title=long),
                attention_charts.predictions_bar([("a", 0.5)], title=long),
                sweep_charts.layer_sweep_chart([0, 1], [{"VERB": 1}, {"NOUN": 2}], title=long),
                attention_charts.attention_curves(np.eye(2), ["a", "b"], title=long)):
        title = fig.layout.title
        lines = title.text.split("<br>")
        assert len(lines) == 2 and all(len(line) <= chart_style.TITLE_WRAP for line in lines)
        assert (title.yref, title.y, title.yanchor) == ("container", 1, "top") and title.pad.t > chart_style.TOOLBAR_PX
        assert fig.layout.margin.t >= chart_style.TOOLBAR_PX + chart_style.TITLE_LINE_PX * len(lines)
    assert chart_style.wrap_title("a " * 3) == ["a a a"] and chart_style.wrap_title("x" * 60) == ["x" * 60]


def test_pairs_share_one_scale():
    """Charts shown side by side take one scale (issue 11, 2): the heat maps' darkest colour, the
    histograms' axis."""
    small, large = np.full((2, 2), 0.2), np.array([[0.9, 0.1], [0.5, 0.5]])
    zmax = attention_arrays.shared_max(small, large)
    assert zmax == pytest.approx(0.9) and attention_arrays.shared_max(np.zeros((2, 2))) == 1.0
    left = attention_charts.attention_heatmap(small, ["a", "b"], zmax=zmax)
    right = attention_charts.attention_heatmap(large, ["a", "b"], zmax=zmax)
    assert left.data[0].zmax == right.data[0].zmax == pytest.approx(0.9)
    assert attention_charts.attention_heatmap(small, ["a", "b"]).data[0].zmax == pytest.approx(0.2)  # alone: its own
    a = corpus_charts.histogram({"VERB": 3}, title="a", x_max=40)
    b = corpus_charts.histogram({"NOUN": 40, "VERB": 2}, title="b", x_max=40)
    assert a.layout.xaxis.range == b.layout.xaxis.range == (0, pytest.approx(40 * 1.18))


def test_head_thumbnails_are_the_paper_s_blue_matrices(paper):
    """One PNG per head, one pixel per token pair, darker where a head attends more; one scale."""
    import base64
    import io

    from PIL import Image

    layer = paper.attention[1]  # heads x tokens x tokens
    thumbnails = head_maps.head_thumbnails(layer)
    assert len(thumbnails) == layer.shape[0]
    images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(t.split(",", 1)[1]))).convert("RGB"), dtype=float)
              for t in thumbnails]
    n = len(paper.tokens)
    assert all(image.shape == (n, n, 3) for image in images)
    darkness = np.stack([765 - image.sum(-1) for image in images])  # heads x n x n
    # Darker pixels are stronger links: the order of the weights is the order of the darkness.
    h, i = 8, 5
    strong, weak = int(np.argmax(layer[h, i])), int(np.argmin(layer[h, i]))
    assert darkness[h, i, strong] > darkness[h, i, weak]
    # One scale for all heads: the darkest pixel of the layer is its largest weight.
    assert np.unravel_index(np.argmax(darkness), darkness.shape) == np.unravel_index(np.argmax(layer), layer.shape)
    long = head_maps.head_thumbnails(np.random.default_rng(0).random((2, 300, 300)).astype(np.float32))
    assert Image.open(io.BytesIO(base64.b64decode(long[0].split(",", 1)[1]))).size == (60, 60)  # pooled


def test_reader_names_give_the_word_the_piece_and_the_position_of_a_repeat(minilm):
    """What the pages say a token is (issue 19, 2-3): "flamingo (piece 'flaming')", not "flaming";
    "to (8)" and "to (11)" for a repeated word; [MASK] where masked; no invisible characters."""
    from exbert_core.views.tokens import reader_names

    a = analysis.analyze(minilm, "The flamingo came jumping merrily to the pub to escape.", masks=[12])
    names = reader_names(a)
    assert [t.text for t in a.tokens][2:4] == ["flaming", "##o"]
    assert names[2] == "flamingo (piece 'flaming')" and names[3] == "flamingo (piece '##o')"
    assert names[6] == "merrily (piece 'mer')" and names[4] == "came"
    assert (names[8], names[11]) == ("to (8)", "to (11)") and names[10] == "pub"
    assert names[12] == "[MASK]" and names[0] == "[CLS]"
    assert not any("\u2060" in n for n in names)
