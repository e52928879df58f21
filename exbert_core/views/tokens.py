"""Which token a view shows: the default token, the same token under another tokenizer or in
another sentence, the same depth in another model, and what a token attends to most (pure; the
analyses are read, never computed here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from exbert_core.views.labels import clean_piece, told_apart, word_and_piece

if TYPE_CHECKING:  # light: the URL state imports default_token, and must not load torch
    from exbert_core.model.analysis import Analysis

DEFAULT_WORD = "escape"  # the paper's example token


def default_token(texts: Sequence[str], special: Sequence[bool]) -> int | None:
    """The paper's "escape" when the sentence has it, else the first non-special token (None
    when every token is special)."""
    candidates = [i for i, s in enumerate(special) if not s]
    for i in candidates:
        if clean_piece(texts[i]).lower() == DEFAULT_WORD:
            return i
    return candidates[0] if candidates else None


def reader_names(analysis: Analysis) -> list[str]:
    """Each token of ``analysis`` named for a reader, by position: its word, with the piece where
    the token is only part of it (``flamingo (piece 'flaming')``), ``[MASK]`` where masked, and the
    position after a name that repeats (``to (4)``). Words are the tokenizer's (the characters of
    the tokens it counts as one word)."""
    spans: dict[int, tuple[int, int]] = {}
    for t in analysis.tokens:
        if t.word is not None and not t.special:
            start, end = spans.get(t.word, (t.start, t.end))
            spans[t.word] = (min(start, t.start), max(end, t.end))
    names = []
    for t in analysis.tokens:
        if t.position in analysis.masked:
            names.append("[MASK]")
        elif t.special or t.word is None:
            names.append(clean_piece(t.text))
        else:
            start, end = spans[t.word]
            names.append(word_and_piece(t.text, analysis.sentence[start:end]))
    return told_apart(names, [t.position for t in analysis.tokens])


def same_token(a: Analysis, position: int, b: Analysis, *, same_text: bool) -> int | None:
    """The token of ``b`` that is token ``position`` of ``a``.

    Same text under two tokenizers (``same_text``): the token of ``b`` covering the first
    character of ``a``'s token, else the next one. Two sentences: the first token of ``b`` with
    the same word (case-insensitive), else ``b``'s :func:`default_token`.
    """
    if same_text:
        start = a.tokens[position].start
        for t in b.tokens:
            if not t.special and t.start <= start < max(t.end, t.start + 1):
                return t.position
        return next((t.position for t in b.tokens if not t.special and t.start >= start), None)
    word = a.sentence[a.tokens[position].start:a.tokens[position].end].strip().lower()
    for t in b.tokens:
        if not t.special and b.sentence[t.start:t.end].strip().lower() == word:
            return t.position
    return default_token([t.text for t in b.tokens], [t.special for t in b.tokens])


def same_depth(layer: int, layers: int, other_layers: int) -> int:
    """Layer ``layer`` of a model with ``layers`` layers at the same relative depth in a model with
    ``other_layers`` (layer 2 of 6 is layer 10 of 30), within 1..other_layers."""
    return max(1, min(other_layers, round(layer * other_layers / layers)))


@dataclass(frozen=True)
class Target:
    """A token that a token attends to: its index among the shown tokens, and the weight."""

    index: int
    weight: float


def strongest(row: np.ndarray, n: int = 4) -> list[Target]:
    """The ``n`` strongest non-zero weights of an attention row ``[tokens]`` (ties by position),
    strongest first: what the token attends to most."""
    weights = np.asarray(row, dtype=np.float64)
    order = np.argsort(-weights, kind="stable")[:n]
    return [Target(int(j), float(weights[j])) for j in order if weights[j] > 0]
