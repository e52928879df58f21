"""What corpora are on disk, read from their manifests only (cheap: no Parquet, no index).

Used by the app to list corpora, to say which fit the current model and to key caches by a
stamp that changes when a corpus is rebuilt. Loading and checking a corpus stays in
:mod:`exbert_core.corpus`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from exbert_core import corpus as corpus_mod
from exbert_core.app_state import DEFAULT_CORPUS
from exbert_core.models import DEFAULT_MODEL
from exbert_core.paths import corpora_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusEntry:
    """One built corpus as its manifest describes it. ``stamp`` changes on every rebuild."""

    name: str
    path: Path
    model: str
    sentences: int
    tokens: int
    bytes: int
    built: str
    source: str
    stamp: int
    manifest: dict

    def fits(self, model: str) -> bool:
        return self.model == model


def entries() -> list[CorpusEntry]:
    """Every complete corpus in the data dir, by name. Unreadable manifests are skipped (loading
    that corpus gives the precise error)."""
    out = []
    for name in corpus_mod.available():
        entry = entry_of(name)
        if entry is not None:
            out.append(entry)
    return out


def entry_of(name: str) -> CorpusEntry | None:
    """The corpus ``name`` in the data dir, or None when it is not built (or unreadable)."""
    path = corpora_dir() / name
    manifest_path = path / "manifest.json"
    try:
        stat = manifest_path.stat()
        manifest = json.loads(manifest_path.read_text())
        source = manifest.get("source") or {}
        return CorpusEntry(
            name=name,
            path=path,
            model=str(manifest["model"]),
            sentences=int(manifest.get("sentences", 0)),
            tokens=int(manifest.get("tokens", 0)),
            bytes=sum(int(f.get("bytes", 0)) for f in manifest.get("files", {}).values()),
            built=str(manifest.get("built", "")),
            source=str(source.get("name") or source.get("file") or ""),
            stamp=stat.st_mtime_ns,
            manifest=manifest,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if manifest_path.exists():
            log.warning("Unreadable manifest %s: %s", manifest_path, err)
        return None


def default_corpus_name(model: str, source: str = DEFAULT_CORPUS) -> str:
    """The name the app gives the corpus of ``source`` built with ``model``: the source's name for
    the default model (``alice``), ``<source>-<model>`` for others (``alice-smollm2``,
    ``alice-bert-base-uncased``)."""
    base = slug(source) or DEFAULT_CORPUS
    if model == DEFAULT_MODEL:
        return base[:64]
    return f"{base}-{slug(model.split('/')[-1])}"[:64]


def slug(text: str) -> str:
    """Letters, digits and '-' only, lower case (a corpus name from a file or model name)."""
    out = "".join(c if c.isalnum() and c.isascii() else "-" for c in text).strip("-").lower()
    while "--" in out:
        out = out.replace("--", "-")
    return out
