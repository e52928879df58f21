"""What every chart shares: its colours, a title that clears Plotly's toolbar, the toolbar's
buttons, click targets over heat-map cells, and the one escaper for text in a figure.

Every string that reaches a figure (tokens, labels) is escaped with :data:`esc`
(:func:`exbert_core.views.labels.plotly_text`): Plotly renders a subset of HTML in text, so a
token like RoBERTa's ``<s>`` would otherwise vanish or restyle the label.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from exbert_core.views.labels import plotly_text

ACCENT = "#e4572e"  # the selected token's links and the matched token
LINK = "#1f6fb2"  # other links
MUTED = "#9aa5b1"
MATCHED_COLOR = "#2a9d8f"
ATTENDED_COLOR = "#7b5ea7"
# The layer sweep's labels, one colour each, and the rest together:
PALETTE = ("#1f6fb2", "#e4572e", "#2a9d8f", "#e9c46a", "#7b5ea7", "#f4a261", "#264653", "#d62976",
           "#8ab17d", "#6c757d")
OTHER_COLOR = "#c8ced4"
_REMOVED_BUTTONS = ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d",
                    "lasso2d", "select2d", "toggleSpikelines", "hoverClosestCartesian",
                    "hoverCompareCartesian"]
NAMED_HOVER_CELLS = 6_400  # heat maps name both tokens in the hover up to this many cells

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


def with_description(label: str, description: str | None, limit: int = 30) -> str:
    """``"VERB · verb"``: a label with its plain words, cut to ``limit`` characters (not escaped)."""
    if not description:
        return label
    short = description if len(description) <= limit else description[: limit - 1] + "…"
    return f"{label} · {short}"


def shown_prediction(token: str) -> str:
    """A predicted token as shown (escaped): without its spaces, or its ``repr`` if only spaces."""
    stripped = token.strip()
    return esc(stripped if stripped else repr(token))
