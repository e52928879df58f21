"""Measurements behind scripts/benchmark.py: storage per token, search recall and latency."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import faiss
import numpy as np
import pyarrow.compute as pc

from exbert_core.corpus.build import embed
from exbert_core.corpus.search.store import Corpus
from exbert_core.model.loading import LoadedModel


def exbert_bytes_per_token(corpus: Corpus) -> float:
    """Bytes per indexed token of exBERT's layout for the same model and corpus, fp32:
    per sentence attention ``[layers, heads, T, T]`` plus per token the embeddings of every
    layer ``[layers + 1, hidden]`` and the head contexts ``[layers, hidden]``."""
    m = corpus.manifest
    squares = sum(float(np.sum(pc.list_value_length(s.sentences().column("ids")).to_numpy().astype(np.float64) ** 2))
                  for s in corpus.shards)
    attention = m.layers * m.heads * squares * 4
    per_token = ((m.layers + 1) * m.hidden + m.layers * m.heads * m.head_dim) * 4
    return float(attention / m.tokens + per_token)


def our_bytes_per_token(corpus: Corpus) -> float:
    """Bytes on disk per indexed token: every file of the corpus folder and its shards."""
    return sum(f.stat().st_size for f in corpus.path.rglob("*") if f.is_file()) / corpus.manifest.tokens


def exact_vectors(corpus: Corpus, loaded: LoadedModel, kind: str, layer: int) -> np.ndarray:
    """The exact float32 search vectors of every corpus token at ``layer`` (row order), by running
    the model again: ``[tokens, hidden]`` unit embeddings, or ``[tokens, heads * head_dim]`` per-head
    unit contexts. For measuring recall; memory: tokens x width x 4 bytes."""
    return exact_layer(corpus, loaded, layer, (kind,))[kind]


def exact_layer(corpus: Corpus, loaded: LoadedModel, layer: int,
                kinds: tuple[str, ...] = ("embedding", "heads")) -> dict[str, np.ndarray]:
    """:func:`exact_vectors` of several kinds at ``layer``, in one run of the model."""
    corpus.check_model(loaded)
    info = loaded.info
    width = {"embedding": info.hidden, "heads": info.heads * info.head_dim}
    out = {kind: np.zeros((corpus.num_tokens, width[kind]), dtype=np.float32) for kind in kinds}

    class Collect:
        def __init__(self) -> None:
            self.batch: dict[str, np.ndarray] = {}

        def embedding(self, at: int, x) -> None:
            if "embedding" in out and at == layer:
                self.batch["embedding"] = x.float().cpu().numpy()

        def heads(self, at: int, x) -> None:
            if "heads" in out and at == layer:
                self.batch["heads"] = x.float().cpu().numpy().reshape(len(x), -1)

        def batch_done(self, rows: np.ndarray) -> None:
            for kind, x in self.batch.items():
                out[kind][rows] = x
            self.batch = {}

    device = next(loaded.model.parameters()).device
    tokens = embed.batch_tokens(info, device, embed.activation_bytes(info, embed.CPU_BATCH_TOKENS))
    for shard in corpus.shards:
        ids = shard.sentences().column("ids").to_pylist()
        positions = shard.tokens().column("position").to_numpy().astype(np.int64)
        start = shard.sentence_start()
        keep = [positions[start[i] : start[i + 1]] for i in range(len(ids))]
        embed.run(loaded, ids, keep, shard.first_token + start[:-1].astype(np.int64), Collect(), tokens)
    return out


def steps_apart(reference: Corpus, other: Corpus, kind: str, layer: int) -> np.ndarray:
    """How far ``other``'s stored vectors are from ``reference``'s (the same text and model, e.g.
    built in bf16 against fp32): ``|other - reference|`` of every decoded value, in steps of the
    reference's quantiser (``range / 63`` for 6-bit codes, ``/ 255`` for 8-bit ones). Memory:
    tokens x width x 4 bytes, twice."""
    levels = {"SQ6": 63, "SQ8": 255}[reference.manifest.codes[kind]]
    apart = []
    for mine, theirs in zip(reference.shards, other.shards):
        a, b = mine.index(kind, layer), theirs.index(kind, layer)
        step = a.ranges[1] / levels
        apart.append(np.abs(b.index.sa_decode(np.asarray(b.codes)) - a.index.sa_decode(np.asarray(a.codes))) / step)
    return np.concatenate(apart)


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


def keep_heads(vector: np.ndarray, heads: tuple[int, ...], n_heads: int) -> np.ndarray:
    """A copy of one head vector ``[n_heads * head_dim]`` with only ``heads`` kept."""
    out = np.zeros_like(vector)
    dim = vector.shape[0] // n_heads
    for h in heads:
        out[h * dim : (h + 1) * dim] = vector[h * dim : (h + 1) * dim]
    return out


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
