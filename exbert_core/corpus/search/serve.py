"""Searching a corpus through Ray actors: each actor holds a group of shards memory-mapped and
scans them; a query fans out to every actor and the top-k is merged exactly.

Used when a cluster address is given (``search.py --address``, ``EXBERT_RAY_ADDRESS`` for the app).
Metadata of the matches (and the max-attention pass) stay with the caller, which reads the owning
shard's files: the corpus folder must be on storage that the actors and the caller both see.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exbert_core.corpus.search import scan
from exbert_core.corpus.search.store import Corpus
from exbert_core.errors import CorpusError

log = logging.getLogger(__name__)

ADDRESS_ENV = "EXBERT_RAY_ADDRESS"


class _ShardServer:
    """A Ray actor: the shards ``indices`` of corpus ``path``, mapped on first use."""

    def __init__(self, path: str, indices: list[int]) -> None:
        from exbert_core.corpus.search import store

        corpus = store.load(path)
        self.shards = [corpus.shards[i] for i in indices]

    def top_k(self, kind: str, layer: int, query: np.ndarray, heads: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
        from exbert_core.corpus.search.query import scan_shards

        return scan_shards(self.shards, kind, layer, query, heads, k)


@dataclass
class ServedShards:
    """The actors serving one corpus; ``top_k`` has the signature search.top_k_rows expects."""

    corpus_name: str
    actors: list[Any] = field(default_factory=list)

    def top_k(self, kind: str, layer: int, query: np.ndarray, heads: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
        import ray

        try:
            parts = ray.get([actor.top_k.remote(kind, layer, query, heads, k) for actor in self.actors])
        except ray.exceptions.RayError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, CorpusError):
                raise cause from err
            raise CorpusError(f"Corpus '{self.corpus_name}': a search actor failed ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}).") from err
        return scan.merge(parts, k)


def serve(corpus: Corpus, address: str | None = None, actors: int | None = None) -> Corpus:
    """``corpus`` with its scans served by Ray actors (``actors`` groups of shards; default: one per
    shard up to the cluster's CPUs). Connects to ``address`` or starts a local cluster."""
    import ray

    from exbert_core import cluster

    cluster.connect(address)
    count = max(1, min(actors or int(ray.cluster_resources().get("CPU", 1)), len(corpus.shards)))
    groups = [list(g) for g in np.array_split(np.arange(len(corpus.shards)), count) if len(g)]
    remote = ray.remote(num_cpus=0)(_ShardServer)
    handles = [remote.remote(str(corpus.path), [int(i) for i in g]) for g in groups]
    corpus.server = ServedShards(corpus.name, handles)
    return corpus


def address_from_env() -> str | None:
    """The cluster address the app searches through (``EXBERT_RAY_ADDRESS``), or None."""
    return os.environ.get(ADDRESS_ENV) or None
