"""Attention arrays made ready to draw (numpy only, no figures).

Shapes: a layer's attention is ``[heads, tokens, tokens]`` (rows attend *from*, columns *to*);
the views show one ``[tokens, tokens]`` matrix, the mean of the selected heads (the heads summed
and divided by their number, so each row still sums to 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from exbert_core.views.charts.chart_style import esc


def head_mean(layer_attention: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """``[heads, T, T]`` -> ``[T, T]``: the mean over ``heads`` (rows keep summing to 1).
    No heads gives zeros."""
    attention = np.asarray(layer_attention, dtype=np.float32)
    if attention.ndim != 3:
        raise ValueError(f"expected [heads, tokens, tokens], got shape {attention.shape}")
    selected = sorted({int(h) for h in heads})
    if not selected:
        return np.zeros(attention.shape[1:], dtype=np.float32)
    return attention[selected].mean(axis=0)


def shared_max(*arrays: np.ndarray) -> float:
    """One colour scale for maps shown together: their largest value (1.0 when all are empty or
    zero)."""
    top = max((float(np.max(a)) for a in arrays if np.size(a)), default=0.0)
    return top if top > 0 else 1.0


def renormalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (all-zero rows stay zero): attention over the shown tokens only,
    e.g. once special tokens, which often take most of it, are hidden."""
    m = np.asarray(matrix, dtype=np.float32)
    totals = m.sum(axis=-1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def top_p_mask(matrix: np.ndarray, p: float) -> np.ndarray:
    """Per row, the smallest set of links whose weights reach ``p`` (0 < p <= 1) of the row's
    total: ``[T, T]`` bool. Ties break by column order; zero weights are never kept."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a [tokens, tokens] matrix, got shape {m.shape}")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    order = np.argsort(-m, axis=1, kind="stable")
    ranked = np.take_along_axis(m, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked  # weight kept before each link
    totals = m.sum(axis=1, keepdims=True)
    keep_ranked = (before < p * totals - 1e-9) & (ranked > 0)
    keep = np.zeros_like(keep_ranked)
    np.put_along_axis(keep, order, keep_ranked, axis=1)
    return keep


def visible_positions(special: Sequence[bool], hide_special: bool) -> list[int]:
    """Token positions shown in the views."""
    return [i for i, s in enumerate(special) if not (hide_special and s)]


def top_links(row: np.ndarray, labels: Sequence[str], n: int = 3) -> str:
    """``"pub 31%, to 12%, escape 9%"``: a row's strongest links, for hover text (escaped)."""
    order = np.argsort(-np.asarray(row), kind="stable")[:n]
    return ", ".join(f"{esc(labels[j])} {row[j]:.0%}" for j in order if row[j] > 0)


def strongest_links(matrix: np.ndarray, keep: np.ndarray, max_links: int) -> np.ndarray:
    """``keep`` (``[T, T]`` bool) cut to its ``max_links`` strongest links (ties by position):
    a long input's curves stay few enough to draw fast and to read."""
    m = np.asarray(matrix, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != m.shape:
        raise ValueError(f"keep {keep.shape} and matrix {m.shape} differ")
    if int(keep.sum()) <= max_links:
        return keep
    flat = np.flatnonzero(keep)
    strongest = flat[np.argsort(-m.ravel()[flat], kind="stable")[:max(max_links, 0)]]
    out = np.zeros(keep.size, dtype=bool)
    out[strongest] = True
    return out.reshape(keep.shape)


def pool(matrix: np.ndarray, size: int) -> np.ndarray:
    """``[..., n, n]`` -> ``[..., m, m]`` with ``m <= size``: each cell the *maximum* of a
    ``ceil(n / size)``-square block (so a strong link stays visible in a thumbnail). Unchanged
    when ``n <= size``."""
    a = np.asarray(matrix, dtype=np.float32)
    n = a.shape[-1]
    if a.shape[-2] != n:
        raise ValueError(f"expected [..., n, n], got shape {a.shape}")
    if n <= size:
        return a
    block = math.ceil(n / size)
    m = math.ceil(n / block)
    padded = np.zeros(a.shape[:-2] + (m * block, m * block), dtype=np.float32)
    padded[..., :n, :n] = a
    return padded.reshape(a.shape[:-2] + (m, block, m, block)).max(axis=(-3, -1))


def square(matrix: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """``matrix`` as float64, checked to be ``[n, n]`` for ``n`` labels (``ValueError`` if not)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"expected a [{len(labels)}, {len(labels)}] matrix for {len(labels)} labels, got {m.shape}")
    return m
