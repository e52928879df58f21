"""Measurements behind scripts/benchmark.py: storage per token, search recall and latency."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import faiss
import numpy as np

from exbert_core.corpus.store import Corpus


def exbert_bytes_per_token(corpus: Corpus) -> float:
    """Bytes per indexed token of exBERT's layout for the same model and corpus, fp32:
    per sentence attention ``[layers, heads, T, T]`` plus per token the embeddings of every
    layer ``[layers + 1, hidden]`` and the head contexts ``[layers, hidden]``."""
    m = corpus.manifest
    lengths = np.array([len(ids) for ids in corpus.sentences.column("ids").to_pylist()], dtype=np.float64)
    attention = m["layers"] * m["heads"] * np.sum(lengths**2) * 4
    per_token = ((m["layers"] + 1) * m["hidden"] + m["layers"] * m["heads"] * m["head_dim"]) * 4
    return float(attention / m["tokens"] + per_token)


def our_bytes_per_token(corpus: Corpus) -> float:
    """Bytes on disk per indexed token: every file of the corpus folder."""
    return sum(f.stat().st_size for f in corpus.path.iterdir() if f.is_file()) / corpus.manifest["tokens"]


def recall_at_k(exact: np.ndarray, found: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Mean recall@k of ``found`` ids ``[q, k]`` against exact search over ``exact`` ``[n, d]``.

    Tie-aware: a found item counts when its exact score reaches the k-th best exact score
    (repeated words in similar contexts give equal vectors; any of them is a right answer).
    """
    flat = faiss.IndexFlatIP(exact.shape[1])
    flat.add(exact)
    best, _ = flat.search(queries, k)
    hits = []
    for q, row, kth in zip(queries, found, best[:, -1]):
        row = row[row >= 0]
        scores = exact[row] @ q
        hits.append(np.sum(scores >= kth - 1e-5) / k)
    return float(np.mean(hits))


def head_subset_queries(vectors: np.ndarray, heads: int, subset: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of head vectors ``[q, heads * head_dim]`` with a random subset of heads kept."""
    out = np.zeros_like(vectors)
    dim = vectors.shape[1] // heads
    for i, v in enumerate(vectors):
        for h in rng.choice(heads, size=subset, replace=False):
            out[i, h * dim : (h + 1) * dim] = v[h * dim : (h + 1) * dim]
    return out


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float


def time_queries(search: Callable[[np.ndarray], object], queries: np.ndarray, repeat: int = 1) -> Timing:
    """Per-query latency of ``search(query[1, d])``."""
    samples = []
    for _ in range(repeat):
        for q in queries:
            start = time.perf_counter()
            search(q[None])
            samples.append((time.perf_counter() - start) * 1000)
    return Timing(float(np.percentile(samples, 50)), float(np.percentile(samples, 95)))
