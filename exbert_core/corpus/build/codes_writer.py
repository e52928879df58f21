"""Writing a shard's index codes while its sentences stream in: the shard's token count is known
only when the parse of its text ends, but the files' layout (heads head-major: row ``h * n + r``)
needs it. So the codes are staged first, every layer's codes of a token in one row of a staging
file that grows as rows arrive, and laid out as the index files once ``n`` is known
(:meth:`StagedCodes.finish`, one sequential pass over the staged bytes). Layout of the index files:
:mod:`exbert_core.corpus.format.codes`.

Memory: the staging file and the index files are written through numpy memmaps, whose dirty
pages belong to the page cache, not to the process. Their blocks are reserved with
``posix_fallocate`` before they are mapped, so a full disk is an ``OSError`` there, never a
SIGBUS in a mapped write (a sparse file has no blocks behind its pages).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exbert_core.corpus.format.codes import empty_index, header
from exbert_core.corpus.format.manifest import CODES, index_file
from exbert_core.model.loading import ModelInfo

STAGING = "codes.staging"  # removed before the shard's manifest lists its files
RELAYOUT_ROWS = 65_536  # tokens per step of the layout pass (~5 MB of staged codes with MiniLM)


@dataclass(frozen=True)
class CodePart:
    """One index file's share of a staged row: ``heads`` blocks of ``code_size`` bytes (one block
    for embeddings) at byte ``offset``."""

    kind: str
    layer: int
    factory: str
    ranges: np.ndarray  # [2, dim]: the quantiser's (min, max) per dimension
    heads: int
    code_size: int
    offset: int

    @property
    def file(self) -> str:
        return index_file(self.layer, self.kind)


def shard_parts(info: ModelInfo, ranges: dict[str, np.ndarray]) -> list[CodePart]:
    """The parts of a staged row for ``info``'s model, in layer order: embeddings of layers 0..L,
    each layer's heads after its embedding (layers 1..L)."""
    parts, offset = [], 0
    for layer in range(info.layers + 1):
        for kind in ("embedding", "heads") if layer else ("embedding",):
            key = f"{kind}_{layer:02d}"
            size = empty_index(CODES[kind], ranges[key]).sq.code_size
            heads = info.heads if kind == "heads" else 1
            parts.append(CodePart(kind, layer, CODES[kind], ranges[key], heads, size, offset))
            offset += heads * size
    return parts


class _GrowingFile:
    """A file of fixed-size rows mapped for writing, grown (doubling) as rows beyond its end come."""

    def __init__(self, path: Path, row_bytes: int, rows: int) -> None:
        self.path, self.row_bytes, self.capacity = path, row_bytes, 0
        self.map: np.memmap | None = None
        path.write_bytes(b"")
        self._grow(max(rows, 1))

    def _grow(self, rows: int) -> None:
        if self.map is not None:
            self.map.flush()
            del self.map
        with self.path.open("r+b") as f:
            os.posix_fallocate(f.fileno(), 0, rows * self.row_bytes)
        self.capacity = rows
        self.map = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(rows, self.row_bytes))

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        end = int(rows.max()) + 1
        if end > self.capacity:
            self._grow(max(end, 2 * self.capacity))
        self.map[rows] = values

    def close(self) -> None:
        if self.map is not None:
            self.map.flush()
            del self.map
            self.map = None


class StagedCodes:
    """Every layer's codes of a shard's tokens, staged row by row in any order (:meth:`write`),
    then laid out as the shard's index files (:meth:`finish`). ``rows`` is a first guess of the
    token count (the staging file grows past it)."""

    def __init__(self, folder: Path, parts: list[CodePart], rows: int) -> None:
        self.folder, self.parts = folder, parts
        self.row_bytes = sum(p.heads * p.code_size for p in parts)
        self.file = _GrowingFile(folder / STAGING, self.row_bytes, rows)
        self.written = 0

    def write(self, rows: np.ndarray, codes: np.ndarray) -> None:
        """Stage ``codes`` ``[m, row_bytes]`` as the rows ``rows`` ``[m]``."""
        if len(rows):
            if rows.min() < 0:
                raise ValueError("negative row")
            self.file.write(rows, codes)
            self.written += len(rows)

    def finish(self, n: int) -> None:
        """Write every index file of the ``n`` rows staged (rows 0..n-1, each exactly once) and
        remove the staging file."""
        if self.written != n:
            raise ValueError(f"{self.written} rows staged for a shard of {n} tokens")
        staged = self.file.map
        targets = [self._index_file(p, n) for p in self.parts]
        for start in range(0, n, RELAYOUT_ROWS):
            chunk = np.asarray(staged[start : min(start + RELAYOUT_ROWS, n)])
            end = start + len(chunk)
            for part, target in zip(self.parts, targets):
                for h in range(part.heads):  # head-major: head h's rows are h*n .. h*n + n - 1
                    at = part.offset + h * part.code_size
                    target[h * n + start : h * n + end] = chunk[:, at : at + part.code_size]
        for target in targets:
            target.flush()
        del targets
        self.file.close()
        self.file.path.unlink()

    def _index_file(self, part: CodePart, n: int) -> np.memmap:
        """A new index file of ``part`` for ``n`` tokens, its codes mapped for writing."""
        rows = part.heads * n
        head = header(empty_index(part.factory, part.ranges), rows)
        path = self.folder / part.file
        with path.open("wb") as f:
            f.write(head)
            f.flush()
            if rows:
                os.posix_fallocate(f.fileno(), len(head), rows * part.code_size)
        return np.memmap(path, dtype=np.uint8, mode="r+", offset=len(head), shape=(rows, part.code_size)) if rows \
            else np.zeros((0, part.code_size), np.uint8)

    def abandon(self) -> None:
        """Unmap the staging file (the shard's partial folder goes with it)."""
        self.file.close()
