"""Vectors for corpus search: normalisation, query construction and the FAISS indices.

Two kinds of vector per token and layer (the exBERT paper's definitions):

- ``embedding``: the layer's hidden state, unit length; the score is a cosine.
- ``heads``: each head's context (attention-weighted values) normalised to unit length, the
  heads concatenated ``[heads * head_dim]``. A query keeps the selected heads and zeroes the
  rest, so its inner product is the *sum of per-head cosines* over the selected heads.

Storage was chosen by measurement (``scripts/benchmark.py``): an exhaustive scalar quantiser,
6 bits per dimension for embeddings and 8 bits for heads (6 bits drops 1-head recall@50 to ~0.89).
Exhaustive scans keep head-subset queries exact up to quantisation; graph and IVF indices
collapse on them because a subset query sees only a slice of each vector.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

log = logging.getLogger(__name__)

KINDS = ("embedding", "heads")
FACTORY = {"embedding": "SQ6", "heads": "SQ8"}
# Vectors recomputed at load time (not stored) are few; keep them at 8 bits in memory.
IN_MEMORY_FACTORY = "SQ8"
TRAIN_SAMPLE = 50_000


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


def new_index(dim: int, factory: str, sample: np.ndarray) -> faiss.Index:
    """An empty inner-product index of ``factory`` type, trained on ``sample`` ``[n, dim]``."""
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(_checked(sample[:TRAIN_SAMPLE], dim))
    return index


def add(index: faiss.Index, vectors: np.ndarray) -> None:
    """Append ``vectors`` ``[n, dim]``; their FAISS ids continue the row numbers."""
    index.add(_checked(vectors, index.d))


def search(index: faiss.Index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product: (scores ``[k]``, ids ``[k]``), best first; fewer when the index
    holds fewer than k vectors."""
    k = min(k, index.ntotal)
    scores, ids = index.search(_checked(query.reshape(1, -1), index.d), k)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


def save(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load(path: Path) -> faiss.Index:
    """Read an index written by :func:`save` (copied into memory)."""
    return faiss.read_index(str(path))


def _checked(x: np.ndarray, dim: int) -> np.ndarray:
    """FAISS needs C-contiguous float32 ``[n, dim]``; anything else is a caller's bug."""
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape [n, {dim}], got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)
