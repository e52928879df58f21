"""Charts across layers and heads: the layer sweep (the paper's Figure 4), the logit lens and the
head atlas's per-head accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from exbert_core.views.charts.chart_style import (ACCENT, MUTED, OTHER_COLOR, PALETTE, chart_title, click_targets, esc,
                                           shown_prediction, with_description)


def layer_sweep_chart(
    layers: Sequence[int],
    counts: Sequence[Mapping[str, int]],
    *,
    describe: Mapping[str, str] | None = None,
    top: int = 8,
    title: str | None = None,
    noun: str = "neighbours",
) -> go.Figure:
    """The paper's Figure 4 in one chart: per layer, the share of each label among the
    neighbours, stacked to 100 %. ``counts[i]`` is label -> count at ``layers[i]``; the ``top``
    most frequent labels overall get a colour each, the rest are stacked as ``other``. Layer 0
    is the embedding output."""
    if len(layers) != len(counts):
        raise ValueError(f"{len(layers)} layers but {len(counts)} histograms")
    describe = describe or {}
    totals: dict[str, int] = {}
    for c in counts:
        for label, v in c.items():
            totals[label] = totals.get(label, 0) + int(v)
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    shown, rest = ranked[:top], ranked[top:]
    sums = [sum(int(v) for v in c.values()) or 1 for c in counts]
    ticks = [f"{layer}<br>emb." if layer == 0 else str(layer) for layer in layers]
    series = [(label, [int(c.get(label, 0)) for c in counts], PALETTE[i % len(PALETTE)])
              for i, label in enumerate(shown)]
    if rest:
        series.append(("other", [sum(int(c.get(label, 0)) for label in rest) for c in counts], OTHER_COLOR))
    fig = go.Figure()
    for label, values, color in series:
        words = describe.get(label)
        name = with_description(label, words, limit=22)
        hover = [f"layer {layer}: <b>{esc(label)}</b>{' (' + esc(words) + ')' if words else ''} "
                 f"{v} of {total} {noun} ({v / total:.0%})" for layer, v, total in zip(layers, values, sums)]
        fig.add_trace(go.Bar(x=list(range(len(layers))), y=[v / t for v, t in zip(values, sums)], name=esc(name),
                             marker_color=color, customdata=hover, hovertemplate="%{customdata}<extra></extra>"))
    heading, top = chart_title(title)
    fig.update_layout(
        barmode="stack",
        height=400 + top,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
        xaxis={"tickmode": "array", "tickvals": list(range(len(layers))), "ticktext": ticks,
               "title": {"text": "layer"}},
        yaxis={"range": [0, 1], "tickformat": ".0%", "title": {"text": f"share of the {noun}"}},
        # Below the chart, so a phone's narrow screen keeps its width for the bars.
        legend={"traceorder": "normal", "title": {"text": ""}, "orientation": "h", "yanchor": "top", "y": -0.28,
                "x": 0},
        bargap=0.15,
    )
    return fig


def logit_lens_chart(
    layers: Sequence[int],
    candidates: Sequence[Sequence[tuple[str, float]]],
    *,
    title: str | None = None,
) -> go.Figure:
    """The logit lens: the LM head's top-k tokens at every layer (rows, first layer on top),
    each cell coloured by its probability."""
    if len(layers) != len(candidates):
        raise ValueError(f"{len(layers)} layers but {len(candidates)} rows of candidates")
    k = max((len(row) for row in candidates), default=0)
    z = np.full((len(layers), k), np.nan)
    text = [[""] * k for _ in layers]
    for r, row in enumerate(candidates):
        for c, (token, prob) in enumerate(row):
            z[r, c] = float(prob)
            text[r][c] = shown_prediction(token)
    fig = go.Figure(go.Heatmap(
        z=np.round(z, 4), x=[f"#{c + 1}" for c in range(k)], y=[str(layer) for layer in layers], text=text,
        texttemplate="%{text}", textfont={"size": 11}, colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="layer %{y}, rank %{x}: <b>%{text}</b> %{z:.1%}<extra></extra>",
        colorbar={"title": {"text": "prob."}, "thickness": 10, "tickformat": ".0%"},
    ))
    heading, top = chart_title(title, pad=28)
    fig.update_layout(
        height=max(220, 24 * len(layers) + 60) + top,
        margin={"l": 10, "r": 10, "t": top if title else 30, "b": 10},
        title=heading,
        xaxis={"side": "top", "fixedrange": True},
        yaxis={"type": "category", "autorange": "reversed", "title": {"text": "layer"}, "fixedrange": True},
    )
    return fig


def head_atlas_heatmap(
    accuracy: np.ndarray,
    *,
    relation: str,
    count: int,
    baseline: tuple[int, float],
    description: str | None = None,
    selected: tuple[int, Sequence[int]] | None = None,
) -> go.Figure:
    """Clark et al.'s per-head accuracy for one relation: ``accuracy`` is ``[layers, heads]`` in
    [0, 1] (how often a dependent's strongest attention lands on its syntactic head); the best
    head is outlined in the accent colour, the fixed-offset baseline is in the title.
    ``selected`` (1-based layer, heads) is outlined in grey. The last trace holds one click
    target per cell, ``customdata`` = ``[layer, head]``."""
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim != 2:
        raise ValueError(f"expected [layers, heads], got shape {acc.shape}")
    n_layers, n_heads = acc.shape
    best_l, best_h = np.unravel_index(int(np.argmax(acc)), acc.shape)
    offset, base = baseline
    cell = int(min(60, max(18, min(780 // max(n_heads, 1), 900 // max(n_layers, 1)))))
    named = esc(relation) + (f" ({esc(description)})" if description else "")
    # Whole percents without the sign (the colour bar says "%"): two digits fit a cell also when a
    # phone narrows the chart to about 25 px a head.
    fig = go.Figure(go.Heatmap(
        z=np.round(acc * 100, 2), x=list(range(n_heads)), y=list(range(1, n_layers + 1)), colorscale="Blues",
        zmin=0, zmax=100, hoverinfo="skip", texttemplate="%{z:.0f}" if n_layers * n_heads <= 400 else None,
        textfont={"size": 10},
        colorbar={"title": {"text": "% right"}, "ticksuffix": " %", "thickness": 10, "len": 0.8},
    ))
    xs, ys, data, hover = [], [], [], []
    for l in range(n_layers):
        for h in range(n_heads):
            xs.append(h)
            ys.append(l + 1)
            data.append([l + 1, h])
            hover.append(f"<b>layer {l + 1}, head {h} ({l + 1}-{h})</b>: for {acc[l, h]:.0%} of {count} “{named}” dependents the "
                         f"strongest attention lands on their head (offset {offset:+d}: {base:.0%})"
                         "<br>click to open it in the attention view")
    fig.add_trace(click_targets(xs, ys, data, hover, size=cell * 0.95))
    fig.add_shape(type="rect", x0=best_h - 0.5, x1=best_h + 0.5, y0=best_l + 0.5, y1=best_l + 1.5,
                  line={"color": ACCENT, "width": 3})
    if selected is not None:
        layer, heads = selected
        for h in heads:
            if 1 <= layer <= n_layers and 0 <= h < n_heads and (layer - 1, h) != (best_l, best_h):
                fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                              line={"color": MUTED, "width": 2, "dash": "dot"})
    heading, top = chart_title(
        f"{relation}{f' ({description})' if description else ''}: best head: layer {best_l + 1}, head {best_h} "
        f"({best_l + 1}-{best_h}), {acc[best_l, best_h]:.0%} right · the word at offset {offset:+d}: {base:.0%}")
    # No fixed width: the chart takes its column's width (a phone's too); the height keeps cells
    # near square on a laptop.
    fig.update_layout(
        height=n_layers * cell + top + 60,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
        xaxis={"title": {"text": "head"}, "tickmode": "array", "tickvals": list(range(n_heads)),
               "fixedrange": True, "showgrid": False, "zeroline": False, "range": [-0.5, n_heads - 0.5]},
        yaxis={"title": {"text": "layer"}, "tickmode": "array", "tickvals": list(range(1, n_layers + 1)),
               "range": [n_layers + 0.5, 0.5], "fixedrange": True, "showgrid": False, "zeroline": False},
        hovermode="closest",
        clickmode="event+select",
        dragmode=False,
    )
    return fig
