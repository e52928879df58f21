"""Building a corpus's shards with Ray Data, on this machine or a cluster.

The driver cuts the text into shards and trains the shared quantiser (as the one-process build
does); Ray Data then streams the shards through two actor pools: spaCy actors (one CPU each) parse
a shard's paragraphs into the parse store (or find them there: a text is parsed once, whatever
the model), and model actors (one GPU each where the cluster has GPUs) tokenize the stored
sentences, write the shard's metadata and codes, and rename it into place
(:func:`~exbert_core.corpus.build.pipeline.build_shard`). The pools run at once: while the model
actors embed one shard, the spaCy actors parse the next. A worker killed mid-shard leaves only a
``shard-NNNN.partial`` folder, which nothing loads and the next run redoes.

The corpus folder (and the parse store beside it) must be on storage every worker sees (one
machine, or a shared file system). ``ray.init()`` without an address starts a local cluster; the
project's package travels to the workers through Ray's runtime environment.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from exbert_core.cluster import check_address, connect
from exbert_core.corpus.build import pipeline as corpus_build
from exbert_core.corpus.build.parse_store import ParseStore, unit_key
from exbert_core.corpus.build.parser import Parser
from exbert_core.corpus.format.manifest import shard_dir
from exbert_core.errors import BuildError, InputError
from exbert_core.model.annotate import load_spacy, pipeline_name
from exbert_core.model.loading import LoadedModel
from exbert_core.progress import Progress, Step

log = logging.getLogger(__name__)

class _ParseShard:
    """Ray Data stage 1 (an actor holds spaCy): a shard's paragraphs -> their parse, in the store."""

    def __init__(self, store: str) -> None:
        from exbert_core.model import annotate

        self.nlp = annotate.load_spacy()
        self.store = ParseStore(Path(store))

    def __call__(self, batch: dict) -> dict:
        for piece in batch["piece"]:
            paragraphs = json.loads(piece)
            with Parser(self.nlp, self.store, workers=0) as parser:
                if not parser.is_stored(paragraphs):
                    for _ in next(parser.units([paragraphs])):  # stored as it streams
                        pass
        return batch


class _EmbedShard:
    """Ray Data stage 2 (an actor holds the model): a shard's stored parse -> its metadata and
    codes, the shard renamed into place."""

    def __init__(self, model: str, partial: str, store: str, pipeline: str, quantiser_sha: str,
                 options: corpus_build.BuildOptions, device: str) -> None:
        from exbert_core.model import loading

        self.loaded = loading.load(model)
        loading.move_to_device(self.loaded, device)
        self.loaded.model.to(corpus_build.DTYPES[options.dtype])
        self.partial, self.store, self.pipeline = Path(partial), ParseStore(Path(store)), pipeline
        with np.load(self.partial / corpus_build.QUANTISER) as stored:
            self.ranges = {key: stored[key] for key in stored.files}
        self.quantiser_sha, self.options = quantiser_sha, options

    def __call__(self, batch: dict) -> dict:
        tokens = []
        for index, piece in zip(batch["index"], batch["piece"]):
            paragraphs = json.loads(piece)
            stored = self.store.read(unit_key(paragraphs, self.pipeline))  # stage 1 stored it
            folder = corpus_build.build_shard(self.partial / shard_dir(int(index)), int(index),
                                              (s for sentences in stored for s in sentences), self.loaded, self.ranges,
                                              self.quantiser_sha, self.options,
                                              expected_tokens=sum(map(len, paragraphs)) / corpus_build.CHARS_PER_TOKEN)
            tokens.append(json.loads((folder / "manifest.json").read_text())["tokens"])
        return {"index": batch["index"], "tokens": np.array(tokens)}


def engine(address: str | None = None, workers: int | None = None, device: str = "auto") -> corpus_build.ShardEngine:
    """A shard engine for :func:`exbert_core.corpus.build.pipeline.build` that runs on Ray: ``workers``
    actors per stage (default: what the cluster's CPUs allow), one GPU per model actor when the
    cluster has GPUs (``device`` auto), always (``cuda``: BuildError without one) or never (``cpu``).
    An ``address`` where nothing answers is refused now, before any work (:func:`check_address`)."""
    check_address(address)

    def build_shards(
        partial: Path, missing: dict[int, list[str]], loaded: LoadedModel, store: Path,
        ranges: dict[str, np.ndarray], quantiser_sha: str, options: corpus_build.BuildOptions, report: Progress,
    ) -> None:
        del ranges  # the model actors read them from the partial folder
        if not missing:
            return
        import ray

        connect(address, num_cpus=workers)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
        if device == "cuda" and not gpus:
            raise BuildError("--device cuda: the Ray cluster has no GPU. Use --device auto or cpu.")
        pool = max(1, min(workers or cpus, len(missing)))
        report(Step("build", f"Building {len(missing)} shard(s) on Ray: {pool} worker(s) per stage"
                             + (f", {gpus} GPU(s)" if gpus else ""), 0, len(missing), "shards"))
        items = [{"index": i, "piece": json.dumps(piece)} for i, piece in missing.items()]
        model = loaded.info.name
        dataset = (
            ray.data.from_items(items)
            .map_batches(_ParseShard, batch_size=1, concurrency=pool, num_cpus=1,
                         fn_constructor_kwargs={"store": str(store)})
            .map_batches(_EmbedShard, batch_size=1, concurrency=min(pool, gpus) if gpus else pool,
                         num_cpus=0 if gpus else 1, num_gpus=1 if gpus else 0,
                         fn_constructor_kwargs={"model": model, "partial": str(partial), "store": str(store),
                                                "pipeline": pipeline_name(load_spacy()),
                                                "quantiser_sha": quantiser_sha, "options": options,
                                                "device": "cuda" if gpus else "cpu"})
        )
        done = tokens = 0
        started = time.perf_counter()
        for row in dataset.iter_rows():
            done += 1
            tokens += int(row["tokens"])
            rate = tokens / max(time.perf_counter() - started, 1e-9)
            report(Step("build", f"Shard {int(row['index']) + 1} done ({int(row['tokens']):,} tokens) · "
                                 f"{rate:,.0f} tokens/s on Ray", done, len(missing), "shards"))
        log.info("Ray built %d shard(s), %d tokens at %.0f tokens/s", done, tokens, tokens / max(time.perf_counter() - started, 1e-9))

    return build_shards
