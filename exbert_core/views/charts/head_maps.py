"""Maps of many heads at once: one layer's heads as small multiples or as thumbnails, and every
layer x head in BertViz's model view. Maps of long inputs are pooled (block maximum) so a strong
link stays visible."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sequential, unlabel_rgb
from plotly.subplots import make_subplots

from exbert_core.views.charts.attention_arrays import pool, shared_max
from exbert_core.views.charts.chart_style import ACCENT, MUTED, NAMED_HOVER_CELLS, chart_title, click_targets, esc

POOLED_TILE = 96  # a small map of a long input is pooled to at most this many cells a side
MODEL_VIEW_TILE = 24  # the model view's thumbnails: at most this many cells a side
MODEL_VIEW_TILE_PX = 56  # the model view's maps on screen: tappable with a finger


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
    named = not pooled and heads * n * n <= NAMED_HOVER_CELLS * 4
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
