"""Parses kept for the next build of the same text: spaCy's sentences, words, tags, parse and
entities depend on the text and the pipeline, not on the model, so a build of a text parsed before
(with another model, a rebuild, a resumed build) reads them back instead of parsing again.

One Parquet file per parsed unit (a shard's paragraphs, or the quantiser's sample), named by a
digest of the pieces, the pipeline and the batching rules (:func:`unit_key`); one row per
sentence (its text and a list of its words), one row group per parse batch, so reading streams.
Written under a temporary name and renamed when complete: a parse cut off is never read. The
folder is kept under :data:`~exbert_core.limits.PARSE_STORE_MB`, least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from exbert_core.corpus.build.parsing import PARSE_BATCH_DOCS, CorpusSentence
from exbert_core.errors import BuildError
from exbert_core.limits import MAX_PARSE_CHARS, PARSE_BATCH_CHARS, PARSE_STORE_MB
from exbert_core.model.annotate import WordAnnotation

log = logging.getLogger(__name__)

STORE_FORMAT = 1
STALE_S = 3600  # a temporary file this old belongs to a build that was killed

_FIELDS: dict[str, pa.DataType] = {
    "index": pa.int32(), "text": pa.string(), "start": pa.int32(), "end": pa.int32(), "pos": pa.string(),
    "tag": pa.string(), "dep": pa.string(), "head": pa.int32(), "ner": pa.string(), "iob": pa.string(),
    "lemma": pa.string(), "is_punct": pa.bool_(),
}
_WORD = pa.struct(list(_FIELDS.items()))
SCHEMA = pa.schema([("text", pa.string()), ("words", pa.list_(_WORD))])


def unit_key(pieces: Sequence[str], pipeline: str) -> str:
    """The name of the parse of ``pieces`` by ``pipeline``: a digest of both, of this store's
    format and of the rules that batch a parse (they can change its results)."""
    digest = hashlib.sha256(f"{STORE_FORMAT}\0{pipeline}\0{MAX_PARSE_CHARS}\0{PARSE_BATCH_CHARS}\0"
                            f"{PARSE_BATCH_DOCS}\0".encode())
    for piece in pieces:
        digest.update(piece.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _table(sentences: Sequence[CorpusSentence]) -> pa.Table:
    """One row group: ``sentences`` as columns (words flattened, then listed per sentence)."""
    words = [w for s in sentences for w in s.words]
    offsets = [0]
    for s in sentences:
        offsets.append(offsets[-1] + len(s.words))
    struct = pa.StructArray.from_arrays([pa.array([getattr(w, f) for w in words], t) for f, t in _FIELDS.items()],
                                        fields=list(_WORD))
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)
    return pa.table({"text": pa.array([s.text for s in sentences], pa.string()), "words": lists}, schema=SCHEMA)


def _sentences(batch: pa.RecordBatch) -> list[CorpusSentence]:
    """The sentences of one row group."""
    lists = batch.column("words")
    offsets = lists.offsets.to_pylist()
    flat = lists.values
    columns = [flat.field(f).to_pylist() for f in _FIELDS]
    words = [WordAnnotation(*values) for values in zip(*columns)]
    texts = batch.column("text").to_pylist()
    return [CorpusSentence(text, tuple(words[offsets[i] : offsets[i + 1]])) for i, text in enumerate(texts)]


def _renew(path: Path) -> None:
    """Mark ``path`` as just used (a prune removes the least recently used first); a store that
    cannot be written keeps its times. FileNotFoundError when it is gone."""
    try:
        os.utime(path)
    except FileNotFoundError:
        raise
    except OSError:
        pass


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class ParseStore:
    """The parses kept in ``folder`` (created on first write)."""

    def __init__(self, folder: Path, max_bytes: int = PARSE_STORE_MB * 1_000_000) -> None:
        self.folder, self.max_bytes = folder, max_bytes

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.parquet"

    def has(self, key: str, batches: int | None = None) -> bool:
        """Whether ``key``'s parse is stored, and (``batches`` given) whole: its file opens and
        holds one row group per parse batch. A damaged file is removed, and the unit parsed again."""
        path = self.path(key)
        if not path.is_file():
            return False
        if batches is None:
            return True
        try:
            with pq.ParquetFile(path) as stored:
                if stored.num_row_groups == batches and stored.schema_arrow.equals(SCHEMA):
                    _renew(path)  # in use: the last file a prune would remove
                    return True
        except FileNotFoundError:  # removed meanwhile by another build's prune
            return False
        except (OSError, pa.ArrowException):
            pass
        log.warning("The stored parse %s is damaged: the text is parsed again.", path.name)
        _remove(path)
        return False

    def read(self, key: str) -> Iterator[list[CorpusSentence]]:
        """The stored parse of ``key``, one parse batch at a time (the file's use time is renewed)."""
        path = self.path(key)
        try:
            _renew(path)
            with pq.ParquetFile(path) as stored:
                for group in range(stored.num_row_groups):
                    yield _sentences(stored.read_row_group(group).combine_chunks().to_batches()[0]) \
                        if stored.metadata.row_group(group).num_rows else []
        except FileNotFoundError as err:
            raise BuildError(f"The stored parse {path.name} was removed while this build read it (the store keeps "
                             f"at most {PARSE_STORE_MB:,} MB). Run the build again: it resumes.") from err
        except (OSError, pa.ArrowException) as err:
            _remove(path)
            raise BuildError(f"The stored parse {path.name} is damaged ({' '.join(str(err).split())}); it was "
                             "removed. Run the build again: it resumes, and parses that text anew.") from err

    def writer(self, key: str) -> "ParseWriter":
        return ParseWriter(self, key)

    def prune(self, keep: str | None = None) -> None:
        """Remove the least recently used parses (never ``keep``) until the folder holds at most
        ``max_bytes``, and temporary files of builds that were killed."""
        now = time.time()
        files = []
        for path in self.folder.glob("*"):
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile by another build
                continue
            if path.suffix != ".parquet":
                if now - stat.st_mtime > STALE_S:
                    path.unlink(missing_ok=True)
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path.stem != keep:
                path.unlink(missing_ok=True)
                total -= size


class ParseWriter:
    """Writes one unit's parse, batch by batch; :meth:`commit` makes it readable, :meth:`discard`
    drops it (a parse cut off by an error)."""

    def __init__(self, store: ParseStore, key: str) -> None:
        self.store, self.key = store, key
        store.folder.mkdir(parents=True, exist_ok=True)
        self.temporary = store.folder / f"{key}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        self.file = pq.ParquetWriter(self.temporary, SCHEMA, compression="zstd")

    def add(self, sentences: Sequence[CorpusSentence]) -> None:
        self.file.write_table(_table(sentences))

    def commit(self) -> None:
        try:
            self.file.close()
            os.replace(self.temporary, self.store.path(self.key))
        except BaseException:  # a full disk: no temporary file left behind
            _remove(self.temporary)
            raise
        self.store.prune(keep=self.key)

    def discard(self) -> None:
        self.file.close()
        self.temporary.unlink(missing_ok=True)
