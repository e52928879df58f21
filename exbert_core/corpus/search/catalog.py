"""What corpora are on disk, read from their manifests only (cheap: no Parquet, no index).

Used by the app to list corpora, to say which fit the current model and to key caches by a
stamp that changes when a corpus is rebuilt. Loading and checking a corpus stays in
:mod:`exbert_core.corpus.search.store`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from exbert_core.corpus.format.names import default_corpus_name, slug  # noqa: F401 (the app's names)
from exbert_core.corpus.search import store as corpus_mod
from exbert_core.paths import corpora_dir

log = logging.getLogger(__name__)
BUILD_ID_CHARS = 8


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

    @property
    def build_id(self) -> str:
        """A short checksum of what was built (model, format, the quantiser's sha256 and every
        shard's manifest sha256, which covers its files; not the build time): a link records it,
        so a page can tell when the corpus changed since."""
        content = {key: self.manifest.get(key) for key in ("model", "format_version", "files", "shards")}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:BUILD_ID_CHARS]

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
            bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
            built=str(manifest.get("built", "")),
            source=str(source.get("name") or source.get("file") or ""),
            stamp=stat.st_mtime_ns,
            manifest=manifest,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if manifest_path.exists():
            log.warning("Unreadable manifest %s: %s", manifest_path, err)
        return None
