"""Opening a built corpus: manifests validated, shards' metadata read on first use, index files
memory-mapped on first use.

What is where in memory:

- index codes: memory-mapped files (page cache: shared, reclaimable, not the process's own
  memory); each file's checksum is verified when it is first mapped;
- each shard's ``tokens.parquet`` and ``sentences.parquet``: read on first use (checksum
  verified) and kept in :data:`exbert_core.memory.KEPT`, so the memory budget bounds them and
  least recently used shards are dropped first (and read again when needed).

Every read error, whatever its cause, becomes a :class:`CorpusError` whose message names the
corpus and says how to rebuild it from its own source.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exbert_core import memory
from exbert_core.corpus.format import names
from exbert_core.corpus.search import codes_reader
from exbert_core.corpus.format.manifest import (
    CODES,
    MANIFEST,
    QUANTISER,
    SENTENCES,
    TOKENS,
    CorpusManifest,
    ShardEntry,
    ShardManifest,
    index_file,
    resume_hint,
    sha256,
)
from exbert_core.errors import CorpusError
from exbert_core.model.loading import LoadedModel
from exbert_core.model.selection import check_layer
from exbert_core.paths import corpora_dir

log = logging.getLogger(__name__)

_TOKEN_COLUMNS = ("sentence_id", "position", "token", "word", "word_index", "word_start", "word_end",
                  "pos", "tag", "dep", "head", "ner", "iob", "lemma", "is_punct")


@dataclass
class Shard:
    """One self-contained piece of a corpus. Rows and sentence ids inside it are local; the corpus
    adds ``first_token`` / ``first_sentence`` to make them global."""

    path: Path
    manifest: ShardManifest
    corpus: CorpusManifest
    entry: ShardEntry
    _mapped: dict[tuple[str, int], codes_reader.MappedIndex] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def first_token(self) -> int:
        return self.entry.first_token

    @property
    def first_sentence(self) -> int:
        return self.entry.first_sentence

    @property
    def rows(self) -> int:
        return self.manifest.tokens

    def _fail(self, what: str) -> CorpusError:
        return CorpusError(f"Corpus '{self.corpus.name}': {self.path.name}/{what}. {self.corpus.hint()}")

    def _checked(self, file: str) -> Path:
        path = self.path / file
        entry = self.manifest.files.get(file)
        if entry is None:
            raise self._fail(f"{file} is not listed in its manifest")
        if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            raise self._fail(f"{file} is missing or corrupted")
        return path

    def _table(self, file: str) -> pa.Table:
        def read() -> pa.Table:
            try:
                return pq.read_table(self._checked(file))
            except (pa.ArrowException, OSError, ValueError) as err:
                raise self._fail(f"{file} cannot be read ({type(err).__name__})") from err

        # Keyed by the file's checksum too: a corpus rebuilt under the same name while the app
        # runs never gets the old build's table back.
        sha = self.manifest.files.get(file, {}).get("sha256", "")
        key = ("corpus", str(self.path.parent.resolve()), self.path.name, file, sha)
        return memory.KEPT.get(key, read, lambda t: t.nbytes)

    def tokens(self) -> pa.Table:
        """One row per indexed token, row number = local row (see build.TOKEN_COLUMNS)."""
        table = self._table(TOKENS)
        if table.num_rows != self.rows or tuple(table.column_names) != _TOKEN_COLUMNS:
            raise self._fail(f"{TOKENS} does not hold the {self.rows} token rows its manifest says")
        return table

    def sentences(self) -> pa.Table:
        table = self._table(SENTENCES)
        if table.num_rows != self.manifest.sentences or table.column_names != ["sentence_id", "text", "ids"]:
            raise self._fail(f"{SENTENCES} does not hold the {self.manifest.sentences} sentences its manifest says")
        return table

    def sentence_start(self) -> np.ndarray:
        """``[sentences + 1]``: the first local token row of each local sentence."""
        sentence_id = self.tokens().column("sentence_id").to_numpy()
        return np.searchsorted(sentence_id, np.arange(self.manifest.sentences + 1), side="left")

    def sentences_of(self, local_rows: np.ndarray) -> pa.Table:
        """:meth:`Corpus.matched_sentences` for this shard's ``local_rows``, rows and ids made global."""
        tokens = self.tokens()
        start = self.sentence_start()
        local_sentences = np.unique(tokens.column("sentence_id").to_numpy()[local_rows])
        picked = np.concatenate([np.arange(start[s], start[s + 1]) for s in local_sentences] or [np.zeros(0, np.int64)])
        table = tokens.take(pa.array(picked, pa.int64()))
        sentences = self.sentences().take(table.column("sentence_id"))  # the sentence of each token row
        table = table.set_column(0, "sentence_id", pc.add(table.column("sentence_id"), self.first_sentence))
        table = table.append_column("text", sentences.column("text")).append_column("ids", sentences.column("ids"))
        return table.add_column(0, "row", pa.array(picked + self.first_token, pa.int64()))

    def index(self, kind: str, layer: int) -> codes_reader.MappedIndex:
        """The memory-mapped codes of ``kind`` at ``layer``: embedding ``[rows, hidden]``, heads
        ``[heads * rows, head_dim]`` (head-major)."""
        key = (kind, layer)
        with self._lock:
            mapped = self._mapped.get(key)
            if mapped is not None and mapped.still_whole():
                return mapped
            if mapped is not None:
                raise self._fail(f"{index_file(layer, kind)} changed on disk while in use")
            file = index_file(layer, kind)
            path = self._checked(file)
            c = self.corpus
            dim, rows = (c.hidden, self.rows) if kind == "embedding" else (c.head_dim, self.rows * c.heads)
            try:
                mapped = codes_reader.open_mapped(path, CODES[kind], dim, rows)
            except (ValueError, RuntimeError, OSError) as err:
                raise self._fail(f"{file} cannot be read ({err})") from err
            self._mapped[key] = mapped
            return mapped


@dataclass
class Corpus:
    """A loaded corpus: its manifest and its shards. Global token rows and sentence ids run over
    the shards in order."""

    path: Path
    manifest: CorpusManifest
    shards: list[Shard]
    # Ray actors that scan the shards (exbert_core.corpus.search.serve), or None: scanned in this process.
    server: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def layers(self) -> int:
        return self.manifest.layers

    @property
    def num_tokens(self) -> int:
        return self.manifest.tokens

    @property
    def num_sentences(self) -> int:
        return self.manifest.sentences

    def check_model(self, loaded: LoadedModel) -> None:
        """Raise CorpusError unless this corpus was built with ``loaded``'s model."""
        info, m = loaded.info, self.manifest
        built = (m.layers, m.heads, m.hidden)
        used = (info.layers, info.heads, info.hidden)
        if m.model != info.name:
            raise CorpusError(
                f"Corpus '{self.name}' was built with model '{m.model}', not '{info.name}'. Select model "
                f"'{m.model}', or build a corpus for '{info.name}': python scripts/build_corpus.py "
                f"--source alice --name {self.name}-{names.slug(info.name.split('/')[-1])} --model {info.name}"
            )
        if built != used:
            raise CorpusError(
                f"Corpus '{self.name}' was built with a different version of '{m.model}' ({m.layers} layers, "
                f"{m.heads} heads, hidden {m.hidden}; the model loaded now has {info.layers}, {info.heads}, "
                f"{info.hidden}). {m.hint()}"
            )

    def check_layer(self, kind: str, layer: int) -> None:
        check_layer(kind, layer, self.layers)

    def shard_of_row(self, row: int) -> tuple[Shard, int]:
        """The shard holding global token row ``row``, and the row inside it."""
        starts = [s.first_token for s in self.shards]
        i = int(np.searchsorted(starts, row, side="right")) - 1
        if not 0 <= row < self.num_tokens:
            raise IndexError(f"token row {row} outside 0..{self.num_tokens - 1}")
        return self.shards[i], row - self.shards[i].first_token

    def shard_of_sentence(self, sentence_id: int) -> tuple[Shard, int]:
        starts = [s.first_sentence for s in self.shards]
        i = int(np.searchsorted(starts, sentence_id, side="right")) - 1
        if not 0 <= sentence_id < self.num_sentences:
            raise IndexError(f"sentence {sentence_id} outside 0..{self.num_sentences - 1}")
        return self.shards[i], sentence_id - self.shards[i].first_sentence

    def token_rows(self, rows: np.ndarray) -> dict[str, list]:
        """Token metadata of global ``rows`` (in that order) as columns, ``sentence_id`` global."""
        rows = np.asarray(rows, dtype=np.int64)
        out: dict[str, list] = {c: [None] * len(rows) for c in _TOKEN_COLUMNS}
        starts = np.array([s.first_token for s in self.shards])
        which = np.searchsorted(starts, rows, side="right") - 1
        for i in np.unique(which):
            shard = self.shards[int(i)]
            picked = np.nonzero(which == i)[0]
            table = shard.tokens().take(pa.array(rows[picked] - shard.first_token)).to_pydict()
            table["sentence_id"] = [s + shard.first_sentence for s in table["sentence_id"]]
            for column, values in table.items():
                for j, v in zip(picked, values):
                    out[column][j] = v
        return out

    def matched_sentences(self, rows: np.ndarray) -> pa.Table:
        """What one query needs of the store, in one call: every indexed token of the sentences that
        hold the global token ``rows``, one table row each, in corpus order, with its global ``row``,
        the token columns (``sentence_id`` global) and its sentence's ``text`` and model token ``ids``
        (special tokens included).

        Reads each owning shard's metadata once (kept under the memory budget). Memory: one row per
        token of the matched sentences (k sentences of tens of tokens), text and ids repeated per row.
        """
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and not (0 <= rows[0] and rows[-1] < self.num_tokens):
            raise IndexError(f"token rows outside 0..{self.num_tokens - 1}")
        starts = np.array([s.first_token for s in self.shards])
        which = np.searchsorted(starts, rows, side="right") - 1
        owners = [int(i) for i in np.unique(which)] or [0]  # no rows: an empty table, same columns
        return pa.concat_tables([self.shards[i].sentences_of(rows[which == i] - self.shards[i].first_token)
                                 for i in owners])

    def rows_of_sentence(self, sentence_id: int) -> range:
        """Global token rows of sentence ``sentence_id``."""
        shard, local = self.shard_of_sentence(sentence_id)
        start = shard.sentence_start()
        return range(shard.first_token + int(start[local]), shard.first_token + int(start[local + 1]))

    def sentence_text(self, sentence_id: int) -> str:
        shard, local = self.shard_of_sentence(sentence_id)
        return shard.sentences().column("text")[local].as_py()

    def sentence_ids(self, sentence_id: int) -> list[int]:
        """The model token ids of sentence ``sentence_id`` (special tokens included)."""
        shard, local = self.shard_of_sentence(sentence_id)
        return shard.sentences().column("ids")[local].as_py()

    # Whole-corpus tables: for small corpora and tests (they load every shard's metadata).
    @property
    def tokens(self) -> pa.Table:
        parts = []
        for s in self.shards:
            t = s.tokens()
            parts.append(t.set_column(0, "sentence_id", pc.add(t.column("sentence_id"), s.first_sentence)))
        return pa.concat_tables(parts)

    @property
    def sentences(self) -> pa.Table:
        parts = []
        for s in self.shards:
            t = s.sentences()
            parts.append(t.set_column(0, "sentence_id", pc.add(t.column("sentence_id"), s.first_sentence)))
        return pa.concat_tables(parts)


def resolve(name_or_dir: str) -> Path:
    """A corpus folder from a name (under the data dir) or a directory path."""
    text = (name_or_dir or "").strip()
    if not text:
        raise CorpusError("No corpus given.")
    if "/" in text or text.startswith((".", "~")):
        return Path(text).expanduser().resolve()
    names.check(text)
    return corpora_dir() / text


def available() -> list[str]:
    """Names of the complete corpora in the data dir."""
    # Corpus names have no dots: "x.partial" and "x.old-..." are builds in progress.
    return sorted(p.name for p in corpora_dir().iterdir() if "." not in p.name and (p / MANIFEST).is_file())


def load(name_or_dir: str) -> Corpus:
    """Open a corpus folder; CorpusError naming the fix when anything is off. Cheap: reads the
    manifests only (metadata and codes are read on first use)."""
    path = resolve(name_or_dir)
    name = path.name
    if not (path / MANIFEST).is_file():
        partial = path.with_name(f"{name}.partial")
        if partial.is_dir():  # a build of that name was cut off: resuming it is the way, not another text
            out = None if path.parent.resolve() == corpora_dir().resolve() else path.parent
            raise CorpusError(f"No corpus '{name}' at {path} yet. {resume_hint(partial, name, out)}")
        raise CorpusError(f"No corpus '{name}' at {path}. Build it on the Corpora page, or: python "
                          f"scripts/build_corpus.py --source alice --name {name} (or --text YOUR_FILE.txt)")
    manifest = CorpusManifest.read(path, name)
    hint = manifest.hint()
    quantiser = manifest.files.get(QUANTISER)
    if not isinstance(quantiser, dict) or not (path / QUANTISER).is_file():
        raise CorpusError(f"Corpus '{name}': {QUANTISER} is missing. {hint}")
    # A few kB: checked whole, so a damaged corpus is refused by name before anything is searched.
    if (path / QUANTISER).stat().st_size != quantiser.get("bytes") or sha256(path / QUANTISER) != quantiser.get("sha256"):
        raise CorpusError(f"Corpus '{name}': {QUANTISER} is corrupted. {hint}")
    shards = []
    for entry in manifest.shard_entries:
        folder = path / entry.dir
        if not (folder / MANIFEST).is_file():
            raise CorpusError(f"Corpus '{name}': shard {entry.dir} is missing. {hint}")
        if sha256(folder / MANIFEST) != entry.manifest_sha256:
            raise CorpusError(f"Corpus '{name}': the manifest of shard {entry.dir} is corrupted. {hint}")
        shard = ShardManifest.read(folder, name, hint)
        if (shard.tokens, shard.sentences, shard.index) != (entry.tokens, entry.sentences, len(shards)):
            raise CorpusError(f"Corpus '{name}': shard {entry.dir} does not match the corpus manifest. {hint}")
        if shard.quantiser_sha256 != quantiser.get("sha256"):
            raise CorpusError(f"Corpus '{name}': shard {entry.dir} was built with another quantiser. {hint}")
        shards.append(Shard(folder, shard, manifest, entry))
    return Corpus(path, manifest, shards)
