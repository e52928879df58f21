"""Histograms of the linguistic metadata of search matches (the paper's Figures 1-3)."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from exbert_core.corpus.search.query import CorpusToken, SearchResult

FEATURES = ("pos", "dep", "ner")
NO_LABEL = {"pos": "(none)", "dep": "(none)", "ner": "(no entity)"}


def label(token: CorpusToken, feature: str) -> str:
    """A token's label for ``feature``; tokens without one get a visible placeholder."""
    return getattr(token, feature) or NO_LABEL[feature]


def counts(tokens: Iterable[CorpusToken], feature: str) -> dict[str, int]:
    """Label -> count, most frequent first."""
    return dict(Counter(label(t, feature) for t in tokens).most_common())


def histograms(result: SearchResult) -> dict[str, dict[str, dict[str, int]]]:
    """``{"matched": {"pos", "dep", "ner"}, "max_attention": {"pos", "dep", "ner", "offset"}}``;
    each histogram's counts sum to the number of matches."""
    matched = [m.token for m in result.matches]
    attended = [m.max_attention for m in result.matches if m.max_attention is not None]
    offsets = Counter(a.offset for a in attended)
    return {
        "matched": {f: counts(matched, f) for f in FEATURES},
        "max_attention": {
            **{f: counts((a.token for a in attended), f) for f in FEATURES},
            "offset": {str(o): offsets[o] for o in sorted(offsets)},
        },
    }
