"""Vectors for corpus search: normalisation, query construction and the FAISS indices.

Two kinds of vector per token and layer (the exBERT paper's definitions):

- ``embedding``: the layer's hidden state, unit length; the score is a cosine.
- ``heads``: each head's context (attention-weighted values) normalised to unit length, the
  heads concatenated ``[heads * head_dim]``. A query keeps the selected heads and zeroes the
  rest, so its inner product is the *sum of per-head cosines* over the selected heads.

Storage was chosen by measurement (``scripts/benchmark.py``): an exhaustive scalar quantiser,
6 bits per dimension for embeddings and 8 bits for heads (6 bits drops 1-head recall@50 to ~0.89),
zstd-compressed on disk; 6-bit codes are widened to 8 bits in memory, where FAISS scans them
about 3x faster.
Exhaustive scans keep head-subset queries exact up to quantisation; graph and IVF indices
collapse on them because a subset query sees only a slice of each vector.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
import pyarrow as pa

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


_MAGIC = b"EXBERT-ZSTD-FAISS1"


def save(index: faiss.Index, path: Path) -> None:
    """Write ``index`` zstd-compressed (quantiser codes still compress by 5-10%)."""
    raw = faiss.serialize_index(index)
    packed = pa.Codec("zstd", compression_level=9).compress(raw, asbytes=True)
    path.write_bytes(_MAGIC + len(raw).to_bytes(8, "little") + packed)


def load(path: Path) -> faiss.Index:
    """Read an index written by :func:`save` into memory, ready to scan.

    A 6-bit index is transcoded to 8-bit codes with the same value ranges: FAISS scans 8-bit
    codes ~3x faster, and the disk keeps the compact form. Memory: 1 byte per dimension
    per vector. Raises ValueError for a file that is not such an index.
    """
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path.name} is not an exbert index file")
    size = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 8], "little")
    try:
        raw = pa.Codec("zstd").decompress(data[len(_MAGIC) + 8 :], decompressed_size=size, asbytes=True)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path.name} cannot be decompressed: {err}") from err
    index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
    return _as_8bit(index)


def _as_8bit(index: faiss.Index) -> faiss.Index:
    """A 6-bit scalar-quantiser index re-encoded with 8 bits over the same per-dimension ranges
    (the extra rounding is 1/4 of the 6-bit step); other indices unchanged."""
    if not isinstance(index, faiss.IndexScalarQuantizer) or index.sq.qtype != faiss.ScalarQuantizer.QT_6bit:
        return index
    fast = faiss.IndexScalarQuantizer(index.d, faiss.ScalarQuantizer.QT_8bit, index.metric_type)
    fast.sq.trained = index.sq.trained  # vmin and vdiff per dimension
    fast.is_trained = True
    step = 65_536
    for start in range(0, index.ntotal, step):
        count = min(step, index.ntotal - start)
        fast.add(index.reconstruct_n(start, count))
    return fast


def _checked(x: np.ndarray, dim: int) -> np.ndarray:
    """FAISS needs C-contiguous float32 ``[n, dim]``; anything else is a caller's bug."""
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape [n, {dim}], got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)
