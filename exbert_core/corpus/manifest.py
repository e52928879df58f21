"""A corpus's files and its manifest: the format version, file names and checksums (light: the
reader and the builder both use it; it imports neither)."""

from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT_VERSION = 2  # 2: zstd-compressed index files


def index_file(layer: int, kind: str) -> str:
    return f"layer_{layer:02d}.{kind}.faiss.zst"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
