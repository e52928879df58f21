"""Plotly figures for the app: pure functions of arrays, token strings and counts (no streamlit).

Every string that reaches a figure (tokens, labels) is escaped with
:func:`exbert_core.views.labels.plotly_text`: Plotly renders a subset of HTML in text, so a token
like RoBERTa's ``<s>`` would otherwise vanish or restyle the label. Token strings are shown with
:func:`exbert_core.views.labels.clean_piece` (byte-level ``Ġ``/``▁`` markers removed, WordPiece
``##`` continuations kept).

Charts shown side by side take their scale as an argument (``zmax``, ``x_max``), so a pair can
share one.

Shapes: a layer's attention is ``[heads, tokens, tokens]`` (rows attend *from*, columns *to*);
the views show one ``[tokens, tokens]`` matrix, the mean of the selected heads (the heads summed
and divided by their number, so each row still sums to 1).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sequential, unlabel_rgb
from plotly.subplots import make_subplots

from exbert_core.views.labels import plotly_text

ACCENT = "#e4572e"  # the selected token's links and the matched token
LINK = "#1f6fb2"  # other links
MUTED = "#9aa5b1"
MATCHED_COLOR = "#2a9d8f"
ATTENDED_COLOR = "#7b5ea7"
_BINS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0001)  # upper bounds of link weight bins
_CURVE_POINTS = 17
_MAX_CURVE_POINTS = 40_000  # points over all curves of one figure
_NAMED_HOVER_CELLS = 6_400  # heat maps name both tokens in the hover up to this many cells
MAX_LONG_LINKS = 1_500  # curves drawn at most for a long input (the strongest of the top-p set)
POOLED_TILE = 96  # a small map of a long input is pooled to at most this many cells a side
MODEL_VIEW_TILE = 24  # the model view's thumbnails: at most this many cells a side
MODEL_VIEW_TILE_PX = 56  # the model view's maps on screen: tappable with a finger
_REMOVED_BUTTONS = ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d",
                    "lasso2d", "select2d", "toggleSpikelines", "hoverClosestCartesian",
                    "hoverCompareCartesian"]


esc = plotly_text  # every string shown in a figure

# Plotly draws its toolbar (the camera button) in a band at the top right of every chart (34 px
# high on a phone, whose buttons are enlarged to be tapped): titles go under it, wrapped to lines
# that fit a phone's chart (about 350 px at 14 px, under 7 px a character).
TOOLBAR_PX = 38
TITLE_LINE_PX = 19
TITLE_WRAP = 50  # characters per title line


def wrap_title(text: str, width: int = TITLE_WRAP) -> list[str]:
    """``text`` cut into lines of at most ``width`` characters, at spaces (a longer word is a line
    of its own)."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def chart_title(text: str | None, *, size: int = 14, markup: bool = False, pad: int = 8) -> tuple[dict | None, int]:
    """A chart's title and the top margin it needs: the title starts at the chart's left edge,
    below the toolbar's band, so the toolbar never covers it. ``markup``: ``text`` is already
    escaped and may hold Plotly's tags (kept within one line); ``pad``: pixels between the title and
    the plotting area (more where tick labels or subplot titles sit above it). Without a title:
    ``(None, 10)``."""
    if not text:
        return None, 10
    lines = [text] if markup else [esc(line) for line in wrap_title(text)]
    title = {"text": "<br>".join(lines), "font": {"size": size}, "x": 0, "xref": "container", "xanchor": "left",
             "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": _title_pad(len(lines)), "l": 6}}
    return title, _title_pad(len(lines)) + TITLE_LINE_PX * len(lines) + pad


def _title_pad(lines: int) -> int:
    """Pixels from the chart's top to its title: the toolbar's band, plus what Plotly lifts a title
    of several lines by (half a line per extra line, measured in Chromium)."""
    return TOOLBAR_PX + 4 + (lines - 1) * (TITLE_LINE_PX // 2 + 1)

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


def shared_max(*arrays: np.ndarray) -> float:
    """One colour scale for maps shown together: their largest value (1.0 when all are empty or
    zero)."""
    top = max((float(np.max(a)) for a in arrays if np.size(a)), default=0.0)
    return top if top > 0 else 1.0


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


def plot_config(filename: str, image_format: str = "png", *, zoom: bool = False) -> dict:
    """Plotly's config for ``st.plotly_chart(config=...)``: a toolbar whose camera button saves
    the chart as ``image_format`` (``png`` at twice the screen resolution, or ``svg``: vector
    graphics for papers; heat maps stay raster images inside an SVG) named ``filename``.
    ``zoom`` keeps the zoom and reset buttons (heat maps of long inputs)."""
    if image_format not in ("png", "svg"):
        raise ValueError(f"image_format must be 'png' or 'svg', got {image_format!r}")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename).strip("-.")[:120] or "exbert"
    removed = [b for b in _REMOVED_BUTTONS if not (zoom and b in ("zoom2d", "zoomIn2d", "zoomOut2d", "resetScale2d"))]
    return {
        "displaylogo": False,
        "modeBarButtonsToRemove": removed,
        "toImageButtonOptions": {"format": image_format, "filename": safe,
                                 "scale": 2 if image_format == "png" else 1},
    }


def strongest_links(matrix: np.ndarray, keep: np.ndarray, max_links: int) -> np.ndarray:
    """``keep`` (``[T, T]`` bool) cut to its ``max_links`` strongest links (ties by position):
    a long input's curves stay few enough to draw fast and to read."""
    m = np.asarray(matrix, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != m.shape:
        raise ValueError(f"keep {keep.shape} and matrix {m.shape} differ")
    if int(keep.sum()) <= max_links:
        return keep
    flat = np.flatnonzero(keep)
    strongest = flat[np.argsort(-m.ravel()[flat], kind="stable")[:max(max_links, 0)]]
    out = np.zeros(keep.size, dtype=bool)
    out[strongest] = True
    return out.reshape(keep.shape)


def pool(matrix: np.ndarray, size: int) -> np.ndarray:
    """``[..., n, n]`` -> ``[..., m, m]`` with ``m <= size``: each cell the *maximum* of a
    ``ceil(n / size)``-square block (so a strong link stays visible in a thumbnail). Unchanged
    when ``n <= size``."""
    a = np.asarray(matrix, dtype=np.float32)
    n = a.shape[-1]
    if a.shape[-2] != n:
        raise ValueError(f"expected [..., n, n], got shape {a.shape}")
    if n <= size:
        return a
    block = math.ceil(n / size)
    m = math.ceil(n / block)
    padded = np.zeros(a.shape[:-2] + (m * block, m * block), dtype=np.float32)
    padded[..., :n, :n] = a
    return padded.reshape(a.shape[:-2] + (m, block, m, block)).max(axis=(-3, -1))


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
    m = _square(matrix, labels)
    n = len(labels)
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    escaped = [esc(label) for label in labels]
    long = n * n > _NAMED_HOVER_CELLS
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
    pooled = a.shape[1] > POOLED_TILE
    if pooled:  # a long input: each map pooled (block maximum), hover by block
        a = pool(a, POOLED_TILE)
    heads, n = a.shape[0], a.shape[1]
    cols = max(1, min(columns, heads))
    rows = math.ceil(heads / cols)
    chosen = {int(h) for h in selected_heads}
    names = [f"head {h}" + (" ●" if h in chosen else "") for h in range(heads)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names,
                        horizontal_spacing=0.02, vertical_spacing=0.06 if rows > 1 else 0.0)
    escaped = [esc(label) for label in labels]
    named = not pooled and heads * n * n <= _NAMED_HOVER_CELLS * 4
    block = math.ceil(len(labels) / n)
    for h in range(heads):
        if pooled:
            hover = {"hovertemplate": f"head {h}: tokens {block}×%{{y}}… → {block}×%{{x}}… "
                                      f"max %{{z:.0%}}<extra></extra>"}
        elif named:
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
    heading, top = chart_title(title, pad=24)
    fig.update_layout(
        coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "showscale": False},
        height=max(200, rows * 150 + 50),
        margin={"l": 5, "r": 5, "t": top if title else 25, "b": 5},
        title=heading,
    )
    return fig


THUMBNAIL_CELLS = 64  # a head thumbnail of a long input is pooled to at most this many cells a side
_BLUES = np.array([unlabel_rgb(c) for c in sequential.Blues], dtype=np.float64)  # Plotly's "Blues"


def head_thumbnails(layer_attention: np.ndarray, *, cells: int = THUMBNAIL_CELLS) -> list[str]:
    """The paper's blue matrices: one small PNG per head of a layer (``[heads, n, n]`` for the
    shown tokens; row = the token that attends), as ``data:`` URIs, one cell per pixel (pooled to
    at most ``cells`` a side, block maximum). All heads share one colour scale, so maps compare."""
    from PIL import Image  # Streamlit's dependency; only the app draws thumbnails

    a = pool(np.asarray(layer_attention, dtype=np.float32), cells)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"expected [heads, tokens, tokens], got shape {a.shape}")
    scaled = np.clip(a / shared_max(a), 0.0, 1.0) * (len(_BLUES) - 1)
    low = np.floor(scaled).astype(int)
    high = np.minimum(low + 1, len(_BLUES) - 1)
    part = (scaled - low)[..., None]
    rgb = np.round(_BLUES[low] * (1 - part) + _BLUES[high] * part).astype(np.uint8)  # heads x n x n x 3
    out = []
    for head in rgb:
        buffer = io.BytesIO()
        Image.fromarray(head).save(buffer, format="PNG")
        out.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return out


# ---------------------------------------------------------------------------------------------
# Across layers and heads

PALETTE = ("#1f6fb2", "#e4572e", "#2a9d8f", "#e9c46a", "#7b5ea7", "#f4a261", "#264653", "#d62976",
           "#8ab17d", "#6c757d")
OTHER_COLOR = "#c8ced4"


def click_targets(x: Sequence[float], y: Sequence[float], customdata: Sequence, hover: Sequence[str],
                  *, size: float) -> go.Scatter:
    """Invisible square markers over the cells or tiles of a heat map. Plotly cannot select heat
    map cells, so a click selects the marker over the cell instead; its ``customdata`` says
    which cell (read by the page's ``on_select``)."""
    return go.Scatter(
        x=list(x), y=list(y), mode="markers", customdata=list(customdata), hovertext=list(hover),
        hoverinfo="text", showlegend=False, name="click targets",
        marker={"symbol": "square", "size": size, "color": "rgba(0,0,0,0)", "line": {"width": 0}},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
    )


def model_view(
    attention: np.ndarray,
    labels: Sequence[str],
    *,
    layer: int | None = None,
    heads: Sequence[int] = (),
    tile_cells: int = MODEL_VIEW_TILE,
    tile_px: int = MODEL_VIEW_TILE_PX,
) -> go.Figure:
    """BertViz's model view: every layer x head as a small attention map, in one heat map.

    attention: ``[layers, heads, n, n]`` for the shown tokens (rows attend from). Row ``l`` of
    tiles is layer ``l + 1``, column ``h`` head ``h``. Maps of more than ``tile_cells`` tokens
    are pooled (block maximum). ``layer`` and ``heads`` (1-based layer) are outlined. The last
    trace holds one click target per tile, ``customdata`` = ``[layer, head]``. The figure has a
    fixed size, ``tile_px`` a map (big enough to tap): a narrower screen scrolls it sideways
    instead of shrinking the maps.
    """
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 4 or a.shape[2] != a.shape[3] or a.shape[2] != len(labels):
        raise ValueError(f"expected [layers, heads, {len(labels)}, {len(labels)}], got shape {a.shape}")
    n_layers, n_heads, n = a.shape[0], a.shape[1], a.shape[2]
    small = pool(a, tile_cells)  # layers x heads x m x m
    m = small.shape[-1]
    gap = max(1, m // 8)
    step = m + gap
    mosaic = np.full((n_layers * step - gap, n_heads * step - gap), np.nan, dtype=np.float32)
    for l in range(n_layers):
        for h in range(n_heads):
            mosaic[l * step:l * step + m, h * step:h * step + m] = small[l, h]
    centre = (m - 1) / 2
    # The strongest link of each map, for the hover (special tokens count if shown).
    flat = a.reshape(n_layers, n_heads, -1).argmax(-1)
    xs, ys, data, hover = [], [], [], []
    for l in range(n_layers):
        for h in range(n_heads):
            i, j = divmod(int(flat[l, h]), n)
            xs.append(h * step + centre)
            ys.append(l * step + centre)
            data.append([l + 1, h])
            hover.append(f"<b>layer {l + 1}, head {h}</b><br>strongest: {esc(labels[i])} → {esc(labels[j])} "
                         f"{a[l, h, i, j]:.0%}<br>click to open it in the attention view")
    fig = go.Figure(go.Heatmap(z=np.round(mosaic, 3).astype(np.float32), colorscale="Blues", zmin=0, zmax=1, showscale=False,
                               hoverinfo="skip"))
    fig.add_trace(click_targets(xs, ys, data, hover, size=tile_px * 0.9))
    chosen = {int(h) for h in heads}
    if layer is not None and 1 <= layer <= n_layers:
        for h in sorted(chosen):
            if 0 <= h < n_heads:
                fig.add_shape(type="rect", x0=h * step - 0.5 - gap / 2, x1=h * step + m - 0.5 + gap / 2,
                              y0=(layer - 1) * step - 0.5 - gap / 2, y1=(layer - 1) * step + m - 0.5 + gap / 2,
                              line={"color": ACCENT, "width": 2})
    fig.update_layout(
        width=n_heads * tile_px + 60,
        height=n_layers * tile_px + 75,
        margin={"l": 50, "r": 10, "t": 65, "b": 10},
        # Fixed ranges: the large click targets would otherwise pad the autorange. Numbers as tick
        # labels (the axis titles say head and layer), so they stay level at any width.
        xaxis={"tickmode": "array", "tickvals": [h * step + centre for h in range(n_heads)],
               "ticktext": [str(h) for h in range(n_heads)], "side": "top", "showgrid": False, "tickangle": 0,
               "title": {"text": "head", "standoff": 4}, "zeroline": False, "fixedrange": True,
               "range": [-0.5 - gap, mosaic.shape[1] - 0.5 + gap]},
        yaxis={"tickmode": "array", "tickvals": [l * step + centre for l in range(n_layers)],
               "ticktext": [str(l + 1) for l in range(n_layers)], "showgrid": False, "zeroline": False,
               "title": {"text": "layer", "standoff": 4},
               "fixedrange": True, "range": [mosaic.shape[0] - 0.5 + gap, -0.5 - gap]},
        plot_bgcolor="rgba(0,0,0,0)",
        hovermode="closest",
        clickmode="event+select",
        dragmode=False,
    )
    return fig


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
        name = _with_description(label, words, limit=22)
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
            text[r][c] = _shown_prediction(token)
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
    heading, top = chart_title(title)
    fig.update_layout(
        height=max(150, 28 * len(tokens) + 50) + top - 10,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
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
    x_max: int | None = None,
) -> go.Figure:
    """Horizontal bars, most frequent on top. ``describe`` maps a label to plain words
    (``VERB`` -> ``verb``), shown on the axis and in the hover. ``x_max``: the largest count the
    axis must hold (default: this histogram's; pass one value to histograms shown side by side)."""
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
    heading, top = chart_title(title)
    fig.update_layout(
        height=max(110, 24 * len(labels) + 30) + top,  # the title's lines on top of the bars' room
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
        xaxis={"title": {"text": f"number of {noun}"}, "range": [0, (x_max or max(values, default=1)) * 1.18]},
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
    heading, top = chart_title(title)
    fig.update_layout(
        height=220 + top,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        title=heading,
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
            # "det (head->dep)": the head-to-dependent direction of a relation (head atlas)
            base, reverse, _ = label.partition(" (head->dep)")
            text = spacy.explain(base)
        if text:
            out[label] = f"{text}, seen from the head" if reverse else text
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
