"""How model tokens and user-given text are shown to a reader (pure string functions, no plotting).

Each output format escapes differently, so each has its own function: :func:`markdown_text` for
Markdown (Streamlit's messages, captions, buttons, pills), :func:`plotly_text` for Plotly's
labels (a subset of HTML). HTML tables escape with :func:`html.escape` where they are built.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

# Characters that start Markdown (CommonMark + GFM) or Streamlit's own syntax anywhere in a line:
# emphasis, code, links and images, raw HTML and autolinks, strikethrough, tables, LaTeX ($),
# Streamlit's :colour[...] / :emoji: directives, and entities (&).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>#~|$:&])")
# "_" makes emphasis only next to a non-alphanumeric character (CommonMark's flanking rule), so
# hide_special stays readable in the source while _x_ is escaped.
_FLANKING_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# GFM links bare addresses (scheme://..., www.host, name@host) and Streamlit reads :icon: names
# even when their characters are escaped; an invisible word joiner inside the pattern keeps them
# text. (A colon before a space starts neither, so ordinary prose stays as it was.)
_BARE_LINK = re.compile(r"(?i)(?<=:)(?=\S)|(?<=\bwww)(?=\.)|(?=@)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_WORD_JOINER = "\u2060"  # no width, no line break: invisible in the text a reader sees


def clean_piece(text: str) -> str:
    """A model token as a reader expects it: byte-level markers removed (``Ġescape`` ->
    ``escape``, ``▁es`` -> ``es``, ``Ċ`` -> ``\\n``), WordPiece continuations kept as ``##ing``
    so a reader sees where a word was split."""
    if not text:
        return text
    out = text.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n").replace("ĉ", "\\t")
    stripped = out.strip(" ")
    return stripped if stripped else ("␣" if out else out)


def markdown_text(text: object) -> str:
    """``text`` as literal Markdown inside a line: every character that could start markup is
    backslash-escaped, line breaks become spaces (a value never starts a heading or a list), and
    bare addresses (``http://``, ``www.``, ``a@b``) and ``:icon:`` names are kept as text (an
    invisible word joiner splits them). Use for every user or corpus string in Markdown."""
    out = _CONTROL.sub(" ", str(text))
    out = _MARKDOWN_SPECIAL.sub(r"\\\1", out)
    out = _FLANKING_UNDERSCORE.sub(r"\\_", out)
    return _BARE_LINK.sub(_WORD_JOINER, out)


def plotly_text(text: object) -> str:
    """``text`` as literal text in a Plotly label, title or hover. Plotly reads a subset of HTML
    (tags and a few entities) but not ``&quot;``, so only ``&``, ``<`` and ``>`` are escaped."""
    return html.escape(str(text), quote=False)


def distinct_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` made distinct without changing how they look: the n-th repeat of a label gets
    n invisible word joiners. Streamlit's pills and segmented controls match a click to its
    option *by label*, so a repeated word ("to" ... "to") would otherwise always select its last
    occurrence."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        count = seen.get(label, 0)
        seen[label] = count + 1
        out.append(label + _WORD_JOINER * count)
    return out
