"""Which reference corpus the app shows for a model: the one rule, stated once (pure: it reads a
list of catalog entries, never the disk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from exbert_core.corpus.format.names import default_corpus_name


class Entry(Protocol):
    """What the rule reads of a corpus (:class:`exbert_core.corpus.search.catalog.CorpusEntry`)."""

    name: str

    def fits(self, model: str) -> bool: ...


def fitting(model: str, entries: Sequence[Entry]) -> list[Entry]:
    """The built corpora that ``model`` can search (those built with it), in catalog order."""
    return [e for e in entries if e.fits(model)]


def corpus_for(model: str, entries: Sequence[Entry], current: str | None = None) -> str:
    """The corpus to show with ``model``: ``current`` if it fits, else the model's own corpus
    (``alice`` or ``alice-<model>``) if it is built or nothing fits (it is then offered for
    building), else the first corpus that fits."""
    names = [e.name for e in fitting(model, entries)]
    if current in names:
        return current
    own = default_corpus_name(model)
    return own if own in names or not names else names[0]


def entry_for(model: str, entries: Sequence[Entry], current: str | None = None) -> Entry | None:
    """The entry of :func:`corpus_for`, or None when no built corpus fits ``model``."""
    name = corpus_for(model, entries, current)
    return next((e for e in fitting(model, entries) if e.name == name), None)
