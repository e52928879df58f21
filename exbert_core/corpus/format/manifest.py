"""A corpus on disk: its folder layout, file names, checksums, and its manifests as typed,
validated, versioned values (light: the reader and the builder both use it; it imports neither).

Format 3::

    <corpus>/manifest.json            CorpusManifest: model, dims, codes, counts, source, shards
    <corpus>/quantiser.npz            the scalar quantiser's ranges, shared by every shard
    <corpus>/shard-0000/manifest.json ShardManifest: counts, offsets, sha256 of each file
    <corpus>/shard-0000/sentences.parquet, tokens.parquet
    <corpus>/shard-0000/layer_LL.embedding.faiss   codes [tokens, hidden], layers 0..L
    <corpus>/shard-0000/layer_LL.heads.faiss       codes [heads * tokens, head_dim], layers 1..L,
                                                   head-major: rows h*n..(h+1)*n are head h

A manifest that does not have the expected fields and types is a :class:`CorpusError` whose
message says how to rebuild the corpus from its own source.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from exbert_core.errors import CorpusError

FORMAT_VERSION = 3  # 3: shards, memory-mapped uncompressed codes, head-major head codes, every layer
MANIFEST = "manifest.json"
QUANTISER = "quantiser.npz"
SENTENCES = "sentences.parquet"
TOKENS = "tokens.parquet"
CODES = {"embedding": "SQ6", "heads": "SQ8"}  # faiss scalar quantisers, chosen by measurement


def index_file(layer: int, kind: str) -> str:
    return f"layer_{layer:02d}.{kind}.faiss"


def shard_dir(index: int) -> str:
    return f"shard-{index:04d}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def build_command(name: str, source: dict | None = None, model: str | None = None,
                  options: dict | None = None, out: Path | None = None) -> str:
    """The ``build_corpus.py`` command that builds corpus ``name`` from its own source (never a
    different text): the input and the options that chose its texts (split, text column, sample
    size), as the build recorded them, ``options`` (``max_tokens``, ``shard_tokens``) given, and
    ``out``, the folder it goes to when that is not the data dir's."""
    source = source if isinstance(source, dict) else {}

    def given(key: str, within: dict = source) -> str | None:
        value = within.get(key)
        return shlex.quote(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None

    # "path" is the --text a command-line build read; "file" its name (all an app upload has).
    origins = (("name", "--source"), ("path", "--text"), ("file", "--text"), ("input", "--input"),
               ("hf_dataset", "--hf-dataset"))
    origin = next((f"{flag} {given(key)}" for key, flag in origins if given(key)), "--text YOUR_TEXT.txt")
    for key, flag in (("config", "--hf-config"), ("split", "--split"), ("text_column", "--text-column"),
                      ("max_tokens_total", "--max-tokens-total")):
        if given(key) and not origin.startswith("--text YOUR"):
            origin += f" {flag} {given(key)}"
    model_arg = f" --model {shlex.quote(model)}" if isinstance(model, str) and model else ""
    options = options if isinstance(options, dict) else {}
    extra = "".join(f" {flag} {given(key, options)}" for key, flag in (("max_tokens", "--max-tokens"),
                                                                        ("shard_tokens", "--shard-tokens"))
                    if given(key, options))
    out_arg = f" --out {shlex.quote(str(out))}" if out else ""
    return f"python scripts/build_corpus.py {origin} --name {name}{out_arg}{model_arg}{extra}"


def rebuild_hint(name: str, source: dict | None = None, model: str | None = None) -> str:
    """How to rebuild corpus ``name`` from its own source (:func:`build_command`)."""
    return f"Rebuild it on the app's Corpora page, or: {build_command(name, source, model)}"


STARTED = "started.json"  # in a partial build: what it was started from, for the hint that resumes it


def resume_hint(partial: Path, name: str, out: Path | None = None) -> str:
    """What to say about corpus ``name`` when only its interrupted build ``partial`` is on disk:
    that the same command resumes it, quoted from what the build recorded when it started and
    ``out``, the build's folder when that is not the data dir's (without it, the command would
    start another build there)."""
    finished = sum(1 for _ in partial.glob("shard-[0-9][0-9][0-9][0-9]/" + MANIFEST))
    try:
        started = json.loads((partial / STARTED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        started = None
    said = (f"A build of corpus '{name}' was interrupted ({finished} shard(s) finished, kept in {partial}); "
            "nothing of it loads yet.")
    if not isinstance(started, dict):
        return f"{said} Run the same build again (same text, model and options) to resume it."
    command = build_command(name, started.get("source"), started.get("model"), started.get("options"), out)
    return f"{said} The same command resumes it: {command}"


_TYPES: dict[str, Any] = {"int": int, "str": str, "dict": dict, "list": list, "float": (int, float)}


def _check(cls: type, data: Any, where: str, hint: str) -> dict[str, Any]:
    """The fields of dataclass ``cls`` read from ``data``, each checked against its type."""
    if not isinstance(data, dict):
        raise CorpusError(f"{where} is not a JSON object. {hint}")
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise CorpusError(f"{where} lacks '{f.name}'. {hint}")
            continue
        value = data[f.name]
        expected = _TYPES[str(f.type)]
        ok = expected is None or (isinstance(value, expected) and not (expected is int and isinstance(value, bool)))
        if ok and expected is int and value < 0:
            ok = False
        if not ok:
            raise CorpusError(f"{where}: '{f.name}' is {value!r}, not a valid {f.type}. {hint}")
        out[f.name] = value
    return out


@dataclass(frozen=True)
class ShardEntry:
    """A shard as the corpus manifest lists it."""

    dir: str
    tokens: int
    sentences: int
    first_token: int  # global row of the shard's first token (FAISS ids are global through it)
    first_sentence: int
    manifest_sha256: str


@dataclass(frozen=True)
class CorpusManifest:
    """The corpus's own manifest (``<corpus>/manifest.json``)."""

    format_version: int
    name: str
    model: str
    model_family: str
    model_revision: str
    layers: int
    heads: int
    hidden: int
    head_dim: int
    spacy: str
    codes: dict
    tokens: int
    sentences: int
    shards: list
    files: dict
    source: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    built: str = ""
    build_seconds: float = 0.0
    tokenizer: str = ""
    # Seconds per stage of the build (parse, embed, wait, layout, sample), workers, parses reused.
    build_stages: dict = field(default_factory=dict)

    @property
    def shard_entries(self) -> list[ShardEntry]:
        return [ShardEntry(**s) for s in self.shards]

    def hint(self) -> str:
        return rebuild_hint(self.name, self.source, self.model)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, folder: Path, name: str) -> "CorpusManifest":
        """Read and validate ``folder/manifest.json`` (CorpusError naming the fix when anything
        is off: unreadable, an older format, a missing field, a wrong type, counts that disagree)."""
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CorpusError(f"Corpus '{name}': manifest.json is unreadable ({err}). {rebuild_hint(name)}") from err
        source = data.get("source") if isinstance(data, dict) else None
        model = data.get("model") if isinstance(data, dict) else None
        hint = rebuild_hint(name, source, model if isinstance(model, str) else None)
        if not isinstance(data, dict):
            raise CorpusError(f"Corpus '{name}': manifest.json is not a JSON object (it holds a "
                              f"{type(data).__name__}). {hint}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
            raise CorpusError(f"Corpus '{name}' has format {version!r}; this version reads format {FORMAT_VERSION}"
                              + (" (it was built by a newer version of exbert-streamlit: update it, or "
                                 "rebuild the corpus here)" if newer else "") + f". {hint}")
        manifest = cls(**_check(cls, data, f"Corpus '{name}': manifest.json", hint))
        where = f"Corpus '{name}': manifest.json"
        for key in ("layers", "heads", "hidden", "head_dim"):
            if getattr(manifest, key) < 1:
                raise CorpusError(f"{where}: '{key}' must be at least 1. {hint}")
        if manifest.heads * manifest.head_dim > 1 << 16 or manifest.hidden > 1 << 16 or manifest.layers > 1024:
            raise CorpusError(f"{where}: dimensions out of range. {hint}")
        if manifest.codes != CODES:
            raise CorpusError(f"{where}: codes {manifest.codes!r}, expected {CODES!r}. {hint}")
        entries = [ShardEntry(**_check(ShardEntry, s, f"{where} (shards)", hint)) for s in manifest.shards]
        if not entries:
            raise CorpusError(f"{where} lists no shard. {hint}")
        token, sentence = 0, 0
        for entry in entries:
            if (entry.first_token, entry.first_sentence) != (token, sentence) or entry.dir != shard_dir(entries.index(entry)):
                raise CorpusError(f"{where}: shard {entry.dir!r} is out of order. {hint}")
            token, sentence = token + entry.tokens, sentence + entry.sentences
        if (token, sentence) != (manifest.tokens, manifest.sentences):
            raise CorpusError(f"{where}: the shards' counts do not add up. {hint}")
        return manifest


@dataclass(frozen=True)
class ShardManifest:
    """One shard's manifest (``<corpus>/shard-NNNN/manifest.json``)."""

    format_version: int
    corpus: str
    index: int
    tokens: int
    sentences: int
    quantiser_sha256: str
    files: dict

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, folder: Path, name: str, hint: str) -> "ShardManifest":
        where = f"Corpus '{name}': {folder.name}/manifest.json"
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CorpusError(f"{where} is missing or unreadable ({err}). {hint}") from err
        manifest = cls(**_check(cls, data, where, hint))
        if manifest.format_version != FORMAT_VERSION:
            raise CorpusError(f"{where} has format {manifest.format_version}. {hint}")
        for file, entry in manifest.files.items():
            if (not isinstance(file, str) or "/" in file or not isinstance(entry, dict)
                    or not isinstance(entry.get("sha256"), str)
                    or not isinstance(entry.get("bytes"), int) or entry["bytes"] < 0):
                raise CorpusError(f"{where}: bad file entry {file!r}. {hint}")
        return manifest
