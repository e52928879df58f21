"""Loading a built corpus: manifest and checksum checks, metadata tables, lazy FAISS indices.

Stored indices are read on first use of their layer (and their checksum verified then);
layers the build did not store are recomputed from the stored token ids by running only the
first block(s) of the model, then kept in memory as 8-bit indices.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from exbert_core.corpus import names, vectors
from exbert_core.corpus.manifest import FORMAT_VERSION, index_file, sha256
from exbert_core.errors import CorpusError
from exbert_core.model import forward
from exbert_core.model.loading import LoadedModel
from exbert_core.paths import corpora_dir

log = logging.getLogger(__name__)



def rebuild_hint(manifest: dict | None, name: str) -> str:
    model = (manifest or {}).get("model", "minilm")
    return (
        f"Rebuild it on the app's Corpora page, or: python scripts/build_corpus.py --source alice "
        f"--name {name} --model {model}"
    )


@dataclass
class Corpus:
    """A loaded corpus. ``tokens`` rows are indexed tokens; row number == FAISS id."""

    path: Path
    manifest: dict
    sentences: pa.Table  # sentence_id, text, ids
    tokens: pa.Table  # see corpus_build.TOKEN_COLUMNS
    sentence_start: np.ndarray  # [sentences + 1]: first token row of each sentence
    _indices: dict[tuple[str, int], faiss.Index] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def layers(self) -> int:
        return self.manifest["layers"]

    def check_model(self, loaded: LoadedModel) -> None:
        """Raise CorpusError unless this corpus was built with ``loaded``'s model."""
        info, m = loaded.info, self.manifest
        built = (m["model"], m["layers"], m["heads"], m["hidden"])
        used = (info.name, info.layers, info.heads, info.hidden)
        if built != used:
            raise CorpusError(
                f"Corpus '{self.name}' was built with model '{m['model']}' ({m['layers']} layers, "
                f"{m['heads']} heads, hidden {m['hidden']}), not '{info.name}'. Select model "
                f"'{m['model']}', or build a corpus for '{info.name}': python scripts/build_corpus.py "
                f"--source alice --name {self.name}-{names.slug(info.name.split('/')[-1])} --model {info.name}"
            )

    def index(
        self, kind: str, layer: int, loaded: LoadedModel, progress: Callable[[str], None] | None = None
    ) -> faiss.Index:
        """The index for ``kind`` at ``layer`` (embedding: 0..L, heads: 1..L), loaded on first use."""
        if kind not in vectors.KINDS:
            raise ValueError(f"kind must be one of {vectors.KINDS}, got {kind!r}")
        low = 0 if kind == "embedding" else 1
        if not low <= layer <= self.layers:
            raise ValueError(f"layer for {kind} search must be in [{low}, {self.layers}], got {layer}")
        with self._lock:
            key = (kind, layer)
            if key not in self._indices:
                if layer in self.manifest["indexes"][kind]["layers"]:
                    self._indices[key] = self._read_index(index_file(layer, kind))
                else:
                    self.check_model(loaded)
                    if progress:
                        progress(f"Computing layer {layer} vectors of corpus '{self.name}'")
                    self._recompute(loaded)
            return self._indices[key]

    def rows_of_sentence(self, sentence_id: int) -> range:
        return range(int(self.sentence_start[sentence_id]), int(self.sentence_start[sentence_id + 1]))

    def sentence_ids(self, sentence_id: int) -> list[int]:
        return self.sentences.column("ids")[sentence_id].as_py()

    def _read_index(self, file: str) -> faiss.Index:
        path = self.path / file
        expected = self.manifest["files"].get(file, {}).get("sha256")
        if not path.is_file() or sha256(path) != expected:
            raise CorpusError(f"Corpus '{self.name}': {file} is missing or corrupted. {rebuild_hint(self.manifest, self.name)}")
        try:
            index = vectors.load(path)
        except (RuntimeError, ValueError) as err:
            raise CorpusError(f"Corpus '{self.name}': cannot read {file} ({err}). {rebuild_hint(self.manifest, self.name)}") from err
        if index.ntotal != self.tokens.num_rows:
            raise CorpusError(f"Corpus '{self.name}': {file} holds {index.ntotal} vectors for {self.tokens.num_rows} tokens. {rebuild_hint(self.manifest, self.name)}")
        return index

    def _recompute(self, loaded: LoadedModel) -> None:
        """Rebuild every layer the build did not store (0..recomputed_layers), in one pass."""
        R = self.manifest["recomputed_layers"]
        wanted = [("embedding", layer) for layer in range(R + 1)] + [("heads", layer) for layer in range(1, R + 1)]
        for key, x in self.exact_vectors(loaded, wanted).items():
            self._indices[key] = self._in_memory(x)

    def exact_vectors(self, loaded: LoadedModel, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        """Exact float32 search vectors ``[tokens, dim]`` (row order) for each (kind, layer) in
        ``wanted``, by running the model on the stored token ids, only as deep as needed.
        Memory: one ``[tokens, dim]`` float32 array per entry."""
        self.check_model(loaded)
        deepest = max(layer for _, layer in wanted)
        ids = self.sentences.column("ids").to_pylist()
        # The build indexed exactly the rows of tokens.parquet: keep those positions.
        positions = self.tokens.column("position").to_numpy().astype(np.int64)
        parts: dict[tuple[str, int], list[np.ndarray]] = {key: [] for key in wanted}
        order: list[int] = []
        for group in forward.length_batches([len(s) for s in ids], 8192):
            input_ids, mask = forward.pad([ids[i] for i in group], loaded)
            with loaded.lock:
                if deepest < self.layers:
                    hidden, contexts = forward.run_prefix(loaded, input_ids, mask, deepest)
                else:
                    out = forward.run(loaded, input_ids, mask, attentions=False)
                    hidden, contexts = out.hidden, out.contexts
            for r, i in enumerate(group):
                keep = torch.from_numpy(positions[self.sentence_start[i] : self.sentence_start[i + 1]])
                for kind, layer in wanted:
                    source = hidden[r, layer] if kind == "embedding" else contexts[r, layer - 1]
                    parts[(kind, layer)].append(source[keep].numpy())
                order.append(i)
        # Batches were grouped by length: put the vectors back in corpus (row) order.
        inverse = np.argsort(order)
        result = {}
        for (kind, layer), chunks in parts.items():
            stacked = np.concatenate([chunks[j] for j in inverse])
            result[(kind, layer)] = vectors.embedding_vectors(stacked) if kind == "embedding" else vectors.head_vectors(stacked)
        return result

    def _in_memory(self, x: np.ndarray) -> faiss.Index:
        if len(x) != self.tokens.num_rows:
            raise CorpusError(f"Corpus '{self.name}': recomputed {len(x)} vectors for {self.tokens.num_rows} tokens.")
        index = vectors.new_index(x.shape[1], vectors.IN_MEMORY_FACTORY, x)
        vectors.add(index, x)
        return index


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
    # Corpus names have no dots: "x.partial-<pid>" and "x.old" are builds in progress.
    return sorted(p.name for p in corpora_dir().iterdir() if "." not in p.name and (p / "manifest.json").is_file())


def load(name_or_dir: str) -> Corpus:
    """Load a corpus folder; raise CorpusError naming the fix when anything is off."""
    path = resolve(name_or_dir)
    name = path.name
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise CorpusError(
            f"No corpus '{name}' at {path}. Build it: python scripts/build_corpus.py --source alice --name {name}"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        manifest["name"], manifest["files"], manifest["indexes"], manifest["layers"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorpusError(f"Corpus '{name}': manifest.json is unreadable ({err}). {rebuild_hint(None, name)}") from err
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorpusError(f"Corpus '{name}' has format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}. {rebuild_hint(manifest, name)}")
    tables = {}
    for file in ("sentences.parquet", "tokens.parquet"):
        p = path / file
        if not p.is_file() or sha256(p) != manifest["files"].get(file, {}).get("sha256"):
            raise CorpusError(f"Corpus '{name}': {file} is missing or corrupted. {rebuild_hint(manifest, name)}")
        tables[file] = pq.read_table(p)
    tokens = tables["tokens.parquet"]
    sentences = tables["sentences.parquet"]
    if tokens.num_rows != manifest.get("tokens") or sentences.num_rows != manifest.get("sentences"):
        raise CorpusError(f"Corpus '{name}': counts do not match its manifest. {rebuild_hint(manifest, name)}")
    sentence_id = tokens.column("sentence_id").to_numpy()
    start = np.searchsorted(sentence_id, np.arange(sentences.num_rows + 1), side="left")
    return Corpus(path, manifest, sentences, tokens, start)
