"""The attention page's charts: exBERT's curves between two columns of tokens, the same matrix as
a heat map, and the masked token's predictions.

Token strings are shown with :func:`exbert_core.views.labels.clean_piece` by the caller
(byte-level ``Ġ``/``▁`` markers removed, WordPiece ``##`` continuations kept). Charts shown side
by side take their scale as an argument (``zmax``), so a pair can share one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from exbert_core.views.charts.attention_arrays import shared_max, square, top_links
from exbert_core.views.charts.chart_style import (ACCENT, LINK, MATCHED_COLOR, MUTED, NAMED_HOVER_CELLS, chart_title, esc,
                                           shown_prediction)

_BINS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0001)  # upper bounds of link weight bins
_CURVE_POINTS = 17
_MAX_CURVE_POINTS = 40_000  # points over all curves of one figure
MAX_LONG_LINKS = 1_500  # curves drawn at most for a long input (the strongest of the top-p set)


def attention_curves(
    matrix: np.ndarray,
    labels: Sequence[str],
    *,
    positions: Sequence[int] | None = None,
    keep: np.ndarray | None = None,
    selected: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """exBERT's attention view: a curve from each token (left column) to each token it attends
    to (right column), opacity and width by weight.

    matrix: ``[n, n]`` weights of the shown tokens; labels: ``n`` token strings; positions: each
    shown token's position in the sentence (customdata of the token markers, so a click tells
    which token was picked; default 0..n-1); keep: ``[n, n]`` bool, the links to draw (default:
    all non-zero, see :func:`~exbert_core.views.charts.attention_arrays.top_p_mask`); selected: a *position* whose links are highlighted.

    Traces: the link bins first (grey or blue, then accent for the selected row), then the left
    tokens, then the right tokens (the last two carry ``customdata`` = position).
    """
    m = square(matrix, labels)
    n = len(labels)
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    keep = (m > 0) if keep is None else np.asarray(keep, dtype=bool)
    row_selected = positions.index(selected) if selected in positions else None
    y = -np.arange(n, dtype=np.float64)
    fig = go.Figure()

    # Fewer points per curve when there are many links, so a long sentence stays a few MB.
    n_links = int((keep & (m > 0)).sum())
    t = np.linspace(0.0, 1.0, max(3, min(_CURVE_POINTS, _MAX_CURVE_POINTS // max(n_links, 1))))
    # Cubic Bezier from (0, y_i) to (1, y_j), control points (0.5, y_i) and (0.5, y_j):
    # horizontal tangents at both ends.
    bx = 1.5 * (1 - t) ** 2 * t + 1.5 * (1 - t) * t**2 + t**3
    by0 = (1 - t) ** 3 + 3 * (1 - t) ** 2 * t
    by1 = 3 * (1 - t) * t**2 + t**3

    groups = [(False, LINK if row_selected is None else MUTED)]
    if row_selected is not None:
        groups.append((True, ACCENT))
    for is_selected, color in groups:
        lower = 0.0
        for upper in _BINS:
            rows, cols = np.nonzero(keep & (m > lower) & (m <= upper))
            if row_selected is not None:
                chosen = rows == row_selected
                rows, cols = (rows[chosen], cols[chosen]) if is_selected else (rows[~chosen], cols[~chosen])
            if len(rows):
                xs: list[float | None] = []
                ys: list[float | None] = []
                curve_x = np.round(bx, 3).tolist()
                for i, j in zip(rows, cols):
                    xs.extend(curve_x)
                    xs.append(None)
                    ys.extend(np.round(y[i] * by0 + y[j] * by1, 3).tolist())
                    ys.append(None)
                weight = min(upper, 1.0)
                opacity = 0.15 + 0.8 * weight
                if row_selected is not None and not is_selected:
                    opacity *= 0.45
                fig.add_trace(
                    go.Scatter(
                        x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                        line={"color": color, "width": 0.6 + 6 * weight, "shape": "linear"},
                        opacity=min(opacity, 1.0),
                    )
                )
            lower = upper

    def token_trace(x: float, side: str) -> go.Scatter:
        hover = []
        for r, label in enumerate(labels):
            if side == "left":
                hover.append(f"<b>{esc(label)}</b> (position {positions[r]}) attends to: "
                             f"{top_links(m[r], labels)}")
            else:
                hover.append(f"<b>{esc(label)}</b> (position {positions[r]}) is attended by: "
                             f"{top_links(m[:, r], labels)}")
        text = [f"<b>{esc(label)}</b>" if positions[r] == selected else esc(label)
                for r, label in enumerate(labels)]
        colors = [ACCENT if positions[r] == selected else "#5b6770" for r in range(n)]
        return go.Scatter(
            x=[x] * n, y=y, mode="markers+text", text=text,
            textposition="middle left" if side == "left" else "middle right",
            marker={"size": [11 if positions[r] == selected else 7 for r in range(n)], "color": colors},
            customdata=positions, hovertext=hover, hoverinfo="text", showlegend=False,
            name=f"{side} tokens",
        )

    fig.add_trace(token_trace(0.0, "left"))
    fig.add_trace(token_trace(1.0, "right"))
    heading, top = chart_title(title)
    fig.update_layout(
        height=max(260, 24 * n + 70),
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        xaxis={"visible": False, "range": [-0.75, 1.75], "fixedrange": True},
        yaxis={"visible": False, "range": [-n + 0.4, 0.6], "fixedrange": True},
        title=heading,
        hovermode="closest",
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def attention_heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    *,
    positions: Sequence[int] | None = None,
    selected: int | None = None,
    title: str | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """The same ``[n, n]`` matrix as a heat map: rows attend from, columns to. The selected
    position's row is outlined. ``zmax``: the weight of the darkest colour (default: the
    matrix's maximum; pass one value to maps shown side by side, see :func:`shared_max`)."""
    m = square(matrix, labels)
    n = len(labels)
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    escaped = [esc(label) for label in labels]
    long = n * n > NAMED_HOVER_CELLS
    if not long:
        hover: dict = {"customdata": [[f"{escaped[i]} → {escaped[j]}: {m[i, j]:.1%}" for j in range(n)]
                                      for i in range(n)],
                       "hovertemplate": "%{customdata}<extra></extra>"}
        axis = list(range(n))
    else:  # long inputs: the axes are the tokens as categories, so the hover names them without
        # n x n strings; Plotly shows as many labels as fit, more when zoomed in
        axis = [f"{positions[i]} {escaped[i]}" for i in range(n)]
        hover = {"hovertemplate": "%{y} → %{x}: %{z:.1%}<extra></extra>"}
    fig = go.Figure(
        go.Heatmap(
            z=np.round(m, 3 if long else 4).astype(np.float32), x=axis, y=axis, **hover, colorscale="Blues", zmin=0,
            zmax=zmax if zmax is not None else shared_max(m),
            colorbar={"title": {"text": "weight"}, "thickness": 12},
        )
    )
    if selected in positions:
        r = positions.index(selected)
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=r - 0.5, y1=r + 0.5,
                      line={"color": ACCENT, "width": 3 if not long else 1.5})
    heading, top = chart_title(title)
    side = max(320, min(900, 28 * n + 140)) + (top - 10)
    if long:
        ticks: dict = {"type": "category", "tickmode": "auto", "tickfont": {"size": 9}}
        x_axis, y_axis = dict(ticks, tickangle=-60, nticks=30), dict(ticks, nticks=60)
    else:
        # upright labels would overlap on a phone's narrow map: each stands on its own column
        x_axis = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": escaped, "tickangle": -90}
        y_axis = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": escaped}
    fig.update_layout(
        height=side,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
        xaxis={**x_axis, "title": {"text": "attends to"}, "side": "bottom"},
        yaxis={**y_axis, "autorange": "reversed", "title": {"text": "token"}},
    )
    return fig


def predictions_bar(candidates: Sequence[tuple[str, float]], *, title: str | None = None) -> go.Figure:
    """Top-k predicted tokens with their probabilities, most likely on top."""
    tokens = [shown_prediction(t) for t, _ in candidates][::-1]
    probs = [float(p) for _, p in candidates][::-1]
    fig = go.Figure(go.Bar(x=probs, y=list(range(len(tokens))), orientation="h",
                           marker_color=MATCHED_COLOR, text=[f"{p:.1%}" for p in probs],
                           textposition="auto", hovertemplate="%{customdata}: %{x:.1%}<extra></extra>",
                           customdata=tokens))
    heading, top = chart_title(title)
    fig.update_layout(
        height=max(150, 28 * len(tokens) + 50) + top - 10,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": {"text": "probability"}},
        yaxis={"tickmode": "array", "tickvals": list(range(len(tokens))), "ticktext": tokens},
    )
    return fig
