"""Plotly figures for the app: pure functions of arrays, token strings and counts (no streamlit).

Every string that reaches a figure (tokens, labels) is HTML-escaped: Plotly renders a subset of
HTML in text, so a token like RoBERTa's ``<s>`` would otherwise vanish or restyle the label.
Token strings are shown with :func:`exbert_core.app_state.clean_piece` (byte-level ``Ġ``/``▁``
markers removed, WordPiece ``##`` continuations kept).

Shapes: a layer's attention is ``[heads, tokens, tokens]`` (rows attend *from*, columns *to*);
the views show one ``[tokens, tokens]`` matrix, the mean of the selected heads (the heads summed
and divided by their number, so each row still sums to 1).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ACCENT = "#e4572e"  # the selected token's links and the matched token
LINK = "#1f6fb2"  # other links
MUTED = "#9aa5b1"
MATCHED_COLOR = "#2a9d8f"
ATTENDED_COLOR = "#7b5ea7"
_BINS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0001)  # upper bounds of link weight bins
_CURVE_POINTS = 17
_MAX_CURVE_POINTS = 40_000  # points over all curves of one figure
_NAMED_HOVER_CELLS = 6_400  # heat maps name both tokens in the hover up to this many cells


def esc(text: str) -> str:
    """Escape a string for Plotly text (and HTML)."""
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------------------
# Attention arrays


def head_mean(layer_attention: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """``[heads, T, T]`` -> ``[T, T]``: the mean over ``heads`` (rows keep summing to 1).
    No heads gives zeros."""
    attention = np.asarray(layer_attention, dtype=np.float32)
    if attention.ndim != 3:
        raise ValueError(f"expected [heads, tokens, tokens], got shape {attention.shape}")
    selected = sorted({int(h) for h in heads})
    if not selected:
        return np.zeros(attention.shape[1:], dtype=np.float32)
    return attention[selected].mean(axis=0)


def renormalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (all-zero rows stay zero): attention over the shown tokens only,
    e.g. once special tokens, which often take most of it, are hidden."""
    m = np.asarray(matrix, dtype=np.float32)
    totals = m.sum(axis=-1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def top_p_mask(matrix: np.ndarray, p: float) -> np.ndarray:
    """Per row, the smallest set of links whose weights reach ``p`` (0 < p <= 1) of the row's
    total: ``[T, T]`` bool. Ties break by column order; zero weights are never kept."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a [tokens, tokens] matrix, got shape {m.shape}")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    order = np.argsort(-m, axis=1, kind="stable")
    ranked = np.take_along_axis(m, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked  # weight kept before each link
    totals = m.sum(axis=1, keepdims=True)
    keep_ranked = (before < p * totals - 1e-9) & (ranked > 0)
    keep = np.zeros_like(keep_ranked)
    np.put_along_axis(keep, order, keep_ranked, axis=1)
    return keep


def visible_positions(special: Sequence[bool], hide_special: bool) -> list[int]:
    """Token positions shown in the views."""
    return [i for i, s in enumerate(special) if not (hide_special and s)]


def top_links(row: np.ndarray, labels: Sequence[str], n: int = 3) -> str:
    """``"pub 31%, to 12%, escape 9%"``: a row's strongest links, for hover text (escaped)."""
    order = np.argsort(-np.asarray(row), kind="stable")[:n]
    return ", ".join(f"{esc(labels[j])} {row[j]:.0%}" for j in order if row[j] > 0)


# ---------------------------------------------------------------------------------------------
# Attention views


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
    all non-zero, see :func:`top_p_mask`); selected: a *position* whose links are highlighted.

    Traces: the link bins first (grey or blue, then accent for the selected row), then the left
    tokens, then the right tokens (the last two carry ``customdata`` = position).
    """
    m = _square(matrix, labels)
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
    fig.update_layout(
        height=max(260, 24 * n + 70),
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis={"visible": False, "range": [-0.75, 1.75], "fixedrange": True},
        yaxis={"visible": False, "range": [-n + 0.4, 0.6], "fixedrange": True},
        title={"text": esc(title)} if title else None,
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
) -> go.Figure:
    """The same ``[n, n]`` matrix as a heat map: rows attend from, columns to. The selected
    position's row is outlined."""
    m = _square(matrix, labels)
    n = len(labels)
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    escaped = [esc(label) for label in labels]
    if n * n <= _NAMED_HOVER_CELLS:
        hover: dict = {"customdata": [[f"{escaped[i]} → {escaped[j]}: {m[i, j]:.1%}" for j in range(n)]
                                      for i in range(n)],
                       "hovertemplate": "%{customdata}<extra></extra>"}
    else:  # long sentences: positions only, to keep the figure small
        hover = {"hovertemplate": "token %{y} → token %{x}: %{z:.1%}<extra></extra>"}
    fig = go.Figure(
        go.Heatmap(
            z=np.round(m, 4), x=list(range(n)), y=list(range(n)), **hover, colorscale="Blues", zmin=0,
            zmax=float(m.max()) if m.size and m.max() > 0 else 1.0,
            colorbar={"title": {"text": "weight"}, "thickness": 12},
        )
    )
    if selected in positions:
        r = positions.index(selected)
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=r - 0.5, y1=r + 0.5,
                      line={"color": ACCENT, "width": 3})
    side = max(320, min(900, 28 * n + 140))
    fig.update_layout(
        height=side,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        title={"text": esc(title)} if title else None,
        xaxis={"tickmode": "array", "tickvals": list(range(n)), "ticktext": escaped, "tickangle": -60,
                   "title": {"text": "attends to"}, "side": "bottom"},
        yaxis={"tickmode": "array", "tickvals": list(range(n)), "ticktext": escaped, "autorange": "reversed",
                   "title": {"text": "token"}},
    )
    return fig


def head_grid(
    layer_attention: np.ndarray,
    labels: Sequence[str],
    *,
    selected_heads: Sequence[int] = (),
    columns: int = 6,
    title: str | None = None,
) -> go.Figure:
    """Small multiples: one heat map per head of a layer (``[heads, n, n]`` for the shown
    tokens). Selected heads are titled in the accent colour, the others in grey."""
    a = np.asarray(layer_attention, dtype=np.float32)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] != len(labels):
        raise ValueError(f"expected [heads, {len(labels)}, {len(labels)}], got shape {a.shape}")
    heads, n = a.shape[0], a.shape[1]
    cols = max(1, min(columns, heads))
    rows = math.ceil(heads / cols)
    chosen = {int(h) for h in selected_heads}
    names = [f"head {h}" + (" ●" if h in chosen else "") for h in range(heads)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names,
                        horizontal_spacing=0.02, vertical_spacing=0.06 if rows > 1 else 0.0)
    escaped = [esc(label) for label in labels]
    named = heads * n * n <= _NAMED_HOVER_CELLS * 4
    for h in range(heads):
        if named:
            hover: dict = {"customdata": [[f"head {h}: {escaped[i]} → {escaped[j]} {a[h, i, j]:.0%}"
                                           for j in range(n)] for i in range(n)],
                           "hovertemplate": "%{customdata}<extra></extra>"}
        else:  # long sentences: positions only, to keep the figure small
            hover = {"hovertemplate": f"head {h}: token %{{y}} → token %{{x}} %{{z:.0%}}<extra></extra>"}
        fig.add_trace(
            go.Heatmap(z=np.round(a[h], 3), **hover, coloraxis="coloraxis"),
            row=h // cols + 1, col=h % cols + 1,
        )
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, autorange="reversed")
    for h, annotation in enumerate(fig.layout.annotations):
        annotation.font = {"size": 12, "color": ACCENT if h in chosen else MUTED}
    fig.update_layout(
        coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "showscale": False},
        height=max(200, rows * 150 + 50),
        margin={"l": 5, "r": 5, "t": 45 if title else 25, "b": 5},
        title={"text": esc(title)} if title else None,
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Predictions and summaries


def predictions_bar(candidates: Sequence[tuple[str, float]], *, title: str | None = None) -> go.Figure:
    """Top-k predicted tokens with their probabilities, most likely on top."""
    tokens = [_shown_prediction(t) for t, _ in candidates][::-1]
    probs = [float(p) for _, p in candidates][::-1]
    fig = go.Figure(go.Bar(x=probs, y=list(range(len(tokens))), orientation="h",
                           marker_color=MATCHED_COLOR, text=[f"{p:.1%}" for p in probs],
                           textposition="auto", hovertemplate="%{customdata}: %{x:.1%}<extra></extra>",
                           customdata=tokens))
    fig.update_layout(
        height=max(160, 28 * len(tokens) + 60),
        margin={"l": 10, "r": 10, "t": 35 if title else 10, "b": 10},
        title={"text": esc(title)} if title else None,
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": {"text": "probability"}},
        yaxis={"tickmode": "array", "tickvals": list(range(len(tokens))), "ticktext": tokens},
    )
    return fig


def histogram(
    counts: Mapping[str, int],
    *,
    title: str,
    describe: Mapping[str, str] | None = None,
    color: str = MATCHED_COLOR,
    noun: str = "matches",
) -> go.Figure:
    """Horizontal bars, most frequent on top. ``describe`` maps a label to plain words
    (``VERB`` -> ``verb``), shown on the axis and in the hover."""
    labels = list(counts)[::-1]
    values = [int(counts[label]) for label in labels]
    total = sum(values) or 1
    describe = describe or {}
    ticks = [esc(_with_description(label, describe.get(label))) for label in labels]
    hover = [f"{esc(label)}{' (' + esc(describe[label]) + ')' if describe.get(label) else ''}: "
             f"{v} of {total} {noun} ({v / total:.0%})" for label, v in zip(labels, values)]
    fig = go.Figure(go.Bar(x=values, y=list(range(len(labels))), orientation="h", marker_color=color,
                           text=[f"{v / total:.0%}" for v in values], textposition="outside",
                           cliponaxis=False, customdata=hover,
                           hovertemplate="%{customdata}<extra></extra>"))
    fig.update_layout(
        height=max(150, 24 * len(labels) + 70),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": esc(title), "font": {"size": 14}},
        xaxis={"title": {"text": f"number of {noun}"}, "range": [0, max(values, default=1) * 1.18]},
        yaxis={"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": ticks},
        bargap=0.25,
    )
    return fig


def offset_histogram(counts: Mapping[str | int, int], *, title: str, color: str = ATTENDED_COLOR) -> go.Figure:
    """Vertical bars over offsets (position of the most-attended token minus the match's):
    -1 is the token just before, +1 just after, 0 the token itself."""
    offsets = sorted(int(o) for o in counts)
    values = [int(counts[str(o)] if str(o) in counts else counts[o]) for o in offsets]  # type: ignore[index]
    total = sum(values) or 1
    hover = [f"{_offset_words(o)}: {v} of {total} matches ({v / total:.0%})" for o, v in zip(offsets, values)]
    fig = go.Figure(go.Bar(x=offsets, y=values, marker_color=color, customdata=hover,
                           hovertemplate="%{customdata}<extra></extra>"))
    fig.update_layout(
        height=260,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": esc(title), "font": {"size": 14}},
        xaxis={"title": {"text": "offset: −1 = the token just before the match, +1 = just after"},
                   "tickmode": "array", "tickvals": offsets, "ticktext": [f"{o:+d}" if o else "0" for o in offsets]},
        yaxis={"title": {"text": "number of matches"}, "rangemode": "tozero"},
        bargap=0.2,
    )
    return fig


def describe_labels(labels: Sequence[str]) -> dict[str, str]:
    """Plain-language descriptions of spaCy labels (POS, DEP, NER) via ``spacy.explain``."""
    import warnings

    import spacy

    out = {}
    for label in labels:
        if not label or label.startswith("("):  # placeholders such as "(no entity)"
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spaCy warns about labels it cannot explain
            text = spacy.explain(label)
        if text:
            out[label] = text
    return out


def _with_description(label: str, description: str | None, limit: int = 30) -> str:
    if not description:
        return label
    short = description if len(description) <= limit else description[: limit - 1] + "…"
    return f"{label} · {short}"


def _offset_words(offset: int) -> str:
    if offset == 0:
        return "the match itself"
    side = "before" if offset < 0 else "after"
    return f"{abs(offset)} token{'s' if abs(offset) > 1 else ''} {side}"


def _shown_prediction(token: str) -> str:
    stripped = token.strip()
    return esc(stripped if stripped else repr(token))


def _square(matrix: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"expected a [{len(labels)}, {len(labels)}] matrix for {len(labels)} labels, got {m.shape}")
    return m
