"""Building a corpus's shards with Ray Data, on this machine or a cluster.

The driver cuts the text into shards and trains the shared quantiser (as the one-process build
does); Ray Data then runs the shards through two actor pools: spaCy (CPU) parses a shard's
paragraphs and writes its metadata, and the model (one GPU per actor where the cluster has
GPUs) writes its codes and renames the shard into place. A worker killed mid-shard leaves only
a ``shard-NNNN.partial`` folder, which nothing loads and the next run redoes.

The corpus folder must be on storage every worker sees (one machine, or a shared file system).
``ray.init()`` without an address starts a local cluster; the project's package travels to the
workers through Ray's runtime environment.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import spacy

from exbert_core.cluster import connect
from exbert_core.corpus.build import pipeline as corpus_build
from exbert_core.corpus.format.manifest import shard_dir
from exbert_core.errors import BuildError
from exbert_core.model.loading import LoadedModel
from exbert_core.progress import Progress, Step

log = logging.getLogger(__name__)

class _ParseShard:
    """Ray Data stage 1 (an actor holds spaCy and the tokenizer): paragraphs -> shard metadata."""

    def __init__(self, model: str, partial: str, max_tokens: int) -> None:
        from exbert_core.model import annotate, loading

        self.loaded = loading.load(model)
        self.nlp = annotate.load_spacy()
        self.partial = Path(partial)
        self.options = corpus_build.BuildOptions(max_tokens=max_tokens)

    def __call__(self, batch: dict) -> dict:
        works = []
        for index, piece in zip(batch["index"], batch["piece"]):
            folder = self.partial / shard_dir(int(index))
            work = corpus_build.parse_shard(folder, json.loads(piece), self.loaded, self.nlp, self.options)
            works.append(str(work))
        return {"index": batch["index"], "work": np.array(works)}


class _EmbedShard:
    """Ray Data stage 2 (an actor holds the model): shard metadata -> codes, shard renamed into place."""

    def __init__(self, model: str, partial: str, quantiser_sha: str, max_tokens: int, device: str) -> None:
        from exbert_core.model import loading

        self.loaded = loading.load(model)
        loading.move_to_device(self.loaded, device)
        with np.load(Path(partial) / corpus_build.QUANTISER) as stored:
            self.ranges = {key: stored[key] for key in stored.files}
        self.quantiser_sha = quantiser_sha
        self.options = corpus_build.BuildOptions(max_tokens=max_tokens)

    def __call__(self, batch: dict) -> dict:
        tokens = []
        for index, work in zip(batch["index"], batch["work"]):
            folder = corpus_build.embed_shard(Path(work), int(index), self.loaded, self.ranges, self.quantiser_sha,
                                              self.options)
            tokens.append(json.loads((folder / "manifest.json").read_text())["tokens"])
        return {"index": batch["index"], "tokens": np.array(tokens)}


def engine(address: str | None = None, workers: int | None = None, device: str = "auto") -> corpus_build.ShardEngine:
    """A shard engine for :func:`exbert_core.corpus.build.pipeline.build` that runs on Ray: ``workers``
    actors per stage (default: what the cluster's CPUs allow), one GPU per model actor when the
    cluster has GPUs (``device`` auto), always (``cuda``: BuildError without one) or never (``cpu``)."""

    def build_shards(
        partial: Path, missing: dict[int, list[str]], loaded: LoadedModel, nlp: spacy.language.Language,
        ranges: dict[str, np.ndarray], quantiser_sha: str, options: corpus_build.BuildOptions, report: Progress,
    ) -> None:
        del nlp, ranges  # the actors load their own spaCy and read the ranges from the partial folder
        if not missing:
            return
        import ray

        connect(address, num_cpus=workers)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
        if device == "cuda" and not gpus:
            raise BuildError("--device cuda: the Ray cluster has no GPU. Use --device auto or cpu.")
        pool = max(1, min(workers or cpus, len(missing)))
        report(Step("embed", f"Building {len(missing)} shard(s) on Ray: {pool} worker(s) per stage"
                             + (f", {gpus} GPU(s)" if gpus else ""), 0, len(missing), "shards"))
        items = [{"index": i, "piece": json.dumps(piece)} for i, piece in missing.items()]
        model = loaded.info.name
        dataset = (
            ray.data.from_items(items)
            .map_batches(_ParseShard, batch_size=1, concurrency=pool, num_cpus=1,
                         fn_constructor_kwargs={"model": model, "partial": str(partial),
                                                "max_tokens": options.max_tokens})
            .map_batches(_EmbedShard, batch_size=1, concurrency=min(pool, gpus) if gpus else pool,
                         num_cpus=0 if gpus else 1, num_gpus=1 if gpus else 0,
                         fn_constructor_kwargs={"model": model, "partial": str(partial),
                                                "quantiser_sha": quantiser_sha, "max_tokens": options.max_tokens,
                                                "device": "cuda" if gpus else "cpu"})
        )
        done = 0
        for row in dataset.iter_rows():
            done += 1
            report(Step("embed", f"Shard {int(row['index']) + 1} done ({int(row['tokens']):,} tokens)",
                        done, len(missing), "shards"))

    return build_shards
