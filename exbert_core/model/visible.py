"""Whether a text has anything to show (a leaf of the model package: no torch, no spaCy, so that a
build's parse workers can use it too)."""

from __future__ import annotations


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a character that shows: white space, control and format characters
    (zero-width spaces and joiners, direction marks) do not count. One rule for typed sentences
    and corpus texts."""
    return any(ch.isprintable() and not ch.isspace() for ch in text)
