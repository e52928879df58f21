"""How model tokens are shown to a reader (pure string functions, no plotting)."""

from __future__ import annotations


def clean_piece(text: str) -> str:
    """A model token as a reader expects it: byte-level markers removed (``Ġescape`` ->
    ``escape``, ``▁es`` -> ``es``, ``Ċ`` -> ``\\n``), WordPiece continuations kept as ``##ing``
    so a reader sees where a word was split."""
    if not text:
        return text
    out = text.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n").replace("ĉ", "\\t")
    stripped = out.strip(" ")
    return stripped if stripped else ("␣" if out else out)
