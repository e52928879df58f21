"""The sentences of a build's texts, as a stream: read back from the parse store when the text was
parsed before, otherwise parsed by spaCy in worker processes (or in this process) while the caller
runs the model over the sentences already parsed, and stored for the next build.

A build asks for several *units* at once (the quantiser's sample, then each shard's paragraphs):
the workers parse ahead across them, at most :attr:`Parser.lookahead` batches of
``PARSE_BATCH_CHARS`` characters beyond what the caller has taken, so memory stays bounded
whatever the text's length. The workers parse the same batches as one process would
(:func:`~exbert_core.corpus.build.parsing.parse_batches`), each whole, and results come back in
order: the stream is the same sentence for sentence, annotation for annotation.

Workers are started with ``spawn`` (a fork of a process running torch's OpenMP threads can hang),
so, as with any ``spawn``, a script that builds with workers keeps its work under
``if __name__ == "__main__":`` (each worker imports the script's module). Each worker loads its own
spaCy pipeline, without torch (:mod:`exbert_core.corpus.build.parse_worker`): about 1.4 s and
150 MB each.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool

from spacy.language import Language

from exbert_core.corpus.build import parse_worker, parsing
from exbert_core.corpus.build.parse_store import ParseStore, ParseWriter, unit_key
from exbert_core.corpus.build.parsing import CorpusSentence
from exbert_core.errors import BuildError
from exbert_core.model.annotate import load_spacy, pipeline_name

log = logging.getLogger(__name__)


def default_workers(cores: int | None = None) -> int:
    """Parse processes beside the model: every core but one for the model (none on one core)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, cores - 1)


class Parser:
    """Sentences of units of paragraphs (see the module). ``workers`` parse processes (0: parse in
    this process with ``nlp``); ``store``: where parses are kept (None: nothing is kept or read).
    Use it as a context manager: leaving it stops the workers."""

    def __init__(self, nlp: Language, store: ParseStore | None, workers: int) -> None:
        self.nlp, self.store = nlp, store
        # Workers load the installed English pipeline; a caller's own pipeline is parsed here.
        self.workers = workers if workers > 0 and pipeline_name(nlp) == pipeline_name(load_spacy()) else 0
        self.lookahead = 2 * self.workers + 2
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.busy_s = 0.0  # seconds spent parsing (in workers: their own time, summed)
        self.wait_s = 0.0  # seconds the caller waited for the workers' parse
        self.stored_units = 0  # units read back from the store

    def __enter__(self) -> "Parser":
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def key(self, pieces: Sequence[str]) -> str:
        return unit_key(pieces, pipeline_name(self.nlp))

    def is_stored(self, pieces: Sequence[str], batches: int | None = None) -> bool:
        """Whether the parse of ``pieces`` (``batches`` parse batches, counted when not given) is
        stored whole."""
        if batches is None:
            batches = len(parsing.parse_batches(pieces))
        return self.store is not None and self.store.has(self.key(pieces), batches)

    def units(self, units: Sequence[Sequence[str]],
              parsed: Callable[[int], None] | None = None) -> Iterator[Iterator[CorpusSentence]]:
        """One iterator of sentences per unit (a list of paragraphs), in order; take each unit's
        sentences before the next unit's. ``parsed(characters)`` after each parse batch that was
        parsed or read back. The workers start now and parse ahead while the caller does other
        work (the quantiser's sample)."""
        batches = [parsing.parse_batches(unit) for unit in units]
        stored = [self.is_stored(unit, len(unit_batches)) for unit, unit_batches in zip(units, batches)]
        fresh = self._parse(b for unit, was in zip(batches, stored) if not was for b in unit)
        return self._stream(units, batches, stored, fresh, parsed)

    def _stream(self, units: Sequence[Sequence[str]], batches: list[list[list[str]]], stored: list[bool],
                fresh: Iterator[list[CorpusSentence]], parsed: Callable[[int], None] | None,
                ) -> Iterator[Iterator[CorpusSentence]]:
        for unit, unit_batches, was_stored in zip(units, batches, stored):
            if was_stored:
                self.stored_units += 1
                yield self._read(self.key(unit), unit_batches, parsed)
            else:
                yield self._take(self.key(unit), unit_batches, fresh, parsed)

    def _read(self, key: str, batches: list[list[str]], parsed: Callable[[int], None] | None) -> Iterator[CorpusSentence]:
        assert self.store is not None
        # One stored row group per parse batch (the key holds the batching rules): counted as the
        # model takes each, as a fresh parse is, so the bar moves through a shard read back.
        for batch, sentences in zip(batches, self.store.read(key), strict=True):
            yield from sentences
            if parsed:
                parsed(sum(len(p) for p in batch))

    def _take(self, key: str, batches: list[list[str]], fresh: Iterator[list[CorpusSentence]],
              parsed: Callable[[int], None] | None) -> Iterator[CorpusSentence]:
        """The next ``len(batches)`` parse batches of ``fresh``, stored as they pass."""
        writer: ParseWriter | None = self.store.writer(key) if self.store is not None else None
        try:
            for batch in batches:
                sentences = next(fresh)
                if writer is not None:
                    writer.add(sentences)
                yield from sentences
                if parsed:
                    parsed(sum(len(p) for p in batch))
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.commit()

    def _parse(self, batches: Iterator[list[str]]) -> Iterator[list[CorpusSentence]]:
        """The sentences of each batch, in order: parsed here when asked for, or by the workers,
        the first :attr:`lookahead` batches submitted at once."""
        if not self.workers:
            return self._parse_here(batches)
        pending: deque[concurrent.futures.Future] = deque()
        for batch in batches:
            pending.append(self._pool().submit(parse_worker.parse, batch))
            if len(pending) > self.lookahead:
                break
        return self._results(pending, batches)

    def _parse_here(self, batches: Iterator[list[str]]) -> Iterator[list[CorpusSentence]]:
        for batch in batches:
            started = time.perf_counter()
            sentences = parsing.parse_batch(self.nlp, batch)
            self.busy_s += time.perf_counter() - started
            yield sentences

    def _results(self, pending: deque[concurrent.futures.Future], batches: Iterator[list[str]],
                 ) -> Iterator[list[CorpusSentence]]:
        """The workers' results in order, one more batch submitted for each taken."""
        while pending:
            result = self._result(pending.popleft())
            for batch in batches:
                pending.append(self._pool().submit(parse_worker.parse, batch))
                break
            yield result

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self.pool is None:
            log.info("Starting %d parse worker(s)", self.workers)
            self.pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                               initializer=parse_worker.start)
        return self.pool

    def _result(self, future: concurrent.futures.Future) -> list[CorpusSentence]:
        started = time.perf_counter()
        try:
            sentences, seconds = future.result()
        except BrokenProcessPool as err:
            raise BuildError("A spaCy worker process of the build ended unexpectedly (out of memory?). "
                             "Run the same build again: it keeps the shards already built.") from err
        self.wait_s += time.perf_counter() - started
        self.busy_s += seconds
        return sentences

