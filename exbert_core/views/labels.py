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


def told_apart(labels: Sequence[str], positions: Sequence[int]) -> list[str]:
    """``labels`` with each repeated one followed by its token position (``to (4)`` ... ``to (8)``),
    the others as they are: a reader can tell the occurrences apart, and so can Streamlit's pills
    and segmented controls, which match a click to its option *by label*. Plain visible text, so
    a copied label is what it looks like."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [f"{label} ({position})" if counts[label] > 1 else label for label, position in zip(labels, positions)]


def bare_piece(text: str) -> str:
    """A token's characters as they stand in the text: :func:`clean_piece` without WordPiece's
    ``##`` (``##ingo`` -> ``ingo``)."""
    piece = clean_piece(text)
    return piece[2:] if piece.startswith("##") and len(piece) > 2 else piece


def word_and_piece(token: str, word: str | None) -> str:
    """A token named for a reader: its word, with the piece when the token is only part of it
    (``flamingo (piece 'flaming')``); the piece alone when it is the whole word or has no word."""
    piece = clean_piece(token)
    word = (word or "").strip()
    if not word or bare_piece(token).casefold() == word.casefold():
        return piece
    return f"{word} (piece '{piece}')"


def piece_spans(text: str, pieces: Sequence[tuple[str, int, int]]) -> list[tuple[int, int] | None]:
    """Where each model token stands in ``text``: ``pieces`` are ``(token, lo, hi)`` in sentence
    order, ``lo..hi`` the characters it must lie in (its word's, or ``0, len(text)``). Each token
    is looked for after the previous one, case-insensitively; None where it is not found as
    written (an accent the tokenizer stripped, a byte-level piece of a non-ASCII character,
    ``[UNK]``), and the search goes on from the last token found."""
    folded = text.casefold()
    if len(folded) != len(text):  # a letter that folds to two (ß, İ): offsets would shift
        folded = text.lower() if len(text.lower()) == len(text) else text
    out: list[tuple[int, int] | None] = []
    cursor = 0
    for token, lo, hi in pieces:
        piece = bare_piece(token).casefold()
        lo, hi = max(0, lo), min(len(text), hi)
        at = folded.find(piece, max(cursor, lo), hi) if piece and piece != "␣" else -1
        if at < 0:
            out.append(None)
            continue
        out.append((at, at + len(piece)))
        cursor = at + len(piece)
    return out
