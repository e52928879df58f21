"""Vectors for corpus search: normalisation and query construction.

Two kinds of vector per token and layer (the exBERT paper's definitions):

- ``embedding``: the layer's hidden state, unit length; the score is a cosine.
- ``heads``: each head's context (attention-weighted values) normalised to unit length, the
  heads concatenated ``[heads * head_dim]``. A query keeps the selected heads and zeroes the
  rest, so its inner product is the *sum of per-head cosines* over the selected heads.

How they are stored and scanned: :mod:`exbert_core.corpus.format.codes` and :mod:`exbert_core.corpus.search.scan`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero). ``[n, d]`` -> ``[n, d]`` float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def embedding_vectors(hidden: np.ndarray) -> np.ndarray:
    """Token embeddings ``[n, hidden]`` -> unit vectors ``[n, hidden]``."""
    return unit_rows(hidden)


def head_vectors(contexts: np.ndarray) -> np.ndarray:
    """Head contexts ``[n, heads, head_dim]`` -> per-head unit vectors, concatenated
    ``[n, heads * head_dim]``."""
    n, heads, head_dim = contexts.shape
    return unit_rows(contexts).reshape(n, heads * head_dim)


def head_query(contexts: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """Query for one token from its contexts ``[heads, head_dim]``: selected heads unit length,
    the others zero. Its inner product with a corpus vector is the sum of per-head cosines."""
    n_heads, _ = contexts.shape
    selected = sorted(set(heads))
    if not selected or not all(0 <= h < n_heads for h in selected):
        raise ValueError(f"heads must be a non-empty subset of 0..{n_heads - 1}, got {list(heads)}")
    query = unit_rows(contexts).copy()
    keep = np.zeros(n_heads, dtype=bool)
    keep[selected] = True
    query[~keep] = 0.0
    return query.reshape(-1)
