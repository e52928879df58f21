"""Summaries of a corpus search: histograms of the matches' labels (POS, DEP, NER) and of the
offsets to the tokens they attend to most, with spaCy's plain words for each label.

Histograms shown side by side take their scale as an argument (``x_max``), so a pair can share one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from exbert_core.views.charts.chart_style import ATTENDED_COLOR, MATCHED_COLOR, chart_title, esc, with_description


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
    ticks = [esc(with_description(label, describe.get(label))) for label in labels]
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


def _offset_words(offset: int) -> str:
    if offset == 0:
        return "the match itself"
    side = "before" if offset < 0 else "after"
    return f"{abs(offset)} token{'s' if abs(offset) > 1 else ''} {side}"
