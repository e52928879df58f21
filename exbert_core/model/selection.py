"""Which layer and which heads a view or a search looks at: the one statement of each rule
(light: no torch, so URL parsing uses it too).

Layers follow the exBERT paper:

- ``embedding`` search: layers 0..L (0 is the embedding output, L the last block's output),
  read from ``hidden[layer]`` (``[layers + 1, tokens, hidden]``);
- ``heads`` search and the attention view: layers 1..L (the attention of block L and the
  head contexts inside it), read from ``attention[layer - 1]`` and ``contexts[layer - 1]``.

A head selection is a value: :class:`Heads` holds explicit head indices or "all heads". An
empty selection is allowed as a value (the attention view then has nothing to draw) but is
refused by everything that needs at least one head (a head search).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from exbert_core.errors import InputError

KINDS = ("embedding", "heads")
_KIND_ALIASES = {"token": "embedding", "embeddings": "embedding", "head": "heads"}


def canonical_kind(text: str) -> str | None:
    """``embedding`` or ``heads`` (aliases accepted, any case), or None when it is neither."""
    value = (text or "").strip().lower()
    value = _KIND_ALIASES.get(value, value)
    return value if value in KINDS else None


def layer_range(kind: str, n_layers: int) -> range:
    """The layers a ``kind`` search (or, for ``heads``, the attention view) can use."""
    if kind not in KINDS:
        raise InputError(f"Search by 'embedding' or 'heads', not {kind!r}.")
    return range(0 if kind == "embedding" else 1, n_layers + 1)


def check_layer(kind: str, layer: int, n_layers: int) -> int:
    """``layer`` if ``kind`` can use it in a model of ``n_layers``; else InputError naming the range."""
    allowed = layer_range(kind, n_layers)
    if layer not in allowed:
        what = "embeddings" if kind == "embedding" else "head search and attention"
        raise InputError(f"Layer {layer} is out of range for {what}: {allowed.start}-{allowed.stop - 1}.")
    return layer


def block_index(layer: int) -> int:
    """Index into ``attention`` ``[layers, ...]`` and ``contexts`` ``[layers, ...]`` of paper layer
    ``layer`` (1..L): the block's own index."""
    if layer < 1:
        raise InputError(f"Layer {layer} has no attention: attention layers start at 1.")
    return layer - 1


@dataclass(frozen=True)
class Heads:
    """A head selection: ``indices`` sorted and distinct, or None for every head of the model."""

    indices: tuple[int, ...] | None = None

    @classmethod
    def all(cls) -> "Heads":
        return cls(None)

    @classmethod
    def of(cls, heads: Iterable[int] | None) -> "Heads":
        """Explicit heads (None: all heads). Negative indices are refused."""
        if heads is None:
            return cls(None)
        chosen = tuple(sorted({int(h) for h in heads}))
        if any(h < 0 for h in chosen):
            raise InputError(f"Heads are numbered from 0, got {list(chosen)}.")
        return cls(chosen)

    @classmethod
    def parse(cls, text: str) -> "Heads":
        """``all`` (or empty), ``none``, or numbers like ``0,3,7``; InputError otherwise."""
        value = (text or "").strip().lower()
        if value in ("all", "*", ""):
            return cls(None)
        if value in ("none", "-"):
            return cls(())
        parts = [p for p in re.split(r"[,\s]+", value) if p]
        if not parts or not all(re.fullmatch(r"\d{1,4}", p) for p in parts):
            raise InputError(f"Heads {text!r} are not 'all', 'none' or numbers like 0,3,7.")
        return cls.of(int(p) for p in parts)

    def resolve(self, n_heads: int) -> tuple[int, ...]:
        """The explicit head indices for a model with ``n_heads`` heads; InputError for a head the
        model does not have."""
        if self.indices is None:
            return tuple(range(n_heads))
        bad = [h for h in self.indices if h >= n_heads]
        if bad:
            raise InputError(f"Heads must be in 0-{n_heads - 1}, got {list(self.indices)}.")
        return self.indices

    def require(self, n_heads: int) -> tuple[int, ...]:
        """:meth:`resolve`, refusing an empty selection (a head search needs at least one head)."""
        heads = self.resolve(n_heads)
        if not heads:
            raise InputError("No head is selected: a head search needs at least one head.")
        return heads

    def is_all(self, n_heads: int) -> bool:
        return self.indices is None or len(self.indices) == n_heads

    def format(self) -> str:
        """``all``, ``none`` or ``0,3,7`` (the URL's and the CLI's form)."""
        if self.indices is None:
            return "all"
        return ",".join(map(str, self.indices)) if self.indices else "none"

    def label(self, layer: int, n_heads: int) -> str:
        """The paper's ``<layer>-[<heads>]`` label, e.g. ``3-[0,4]``; all heads as ``3-[all]``."""
        inside = "all" if self.is_all(n_heads) else ",".join(map(str, self.indices or ()))
        return f"{layer}-[{inside}]"
