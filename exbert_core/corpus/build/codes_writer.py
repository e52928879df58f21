"""Writing index codes while a build streams: rows filled at any position through a numpy memmap
(dirty pages belong to the page cache, not to the process). Layout: :mod:`exbert_core.corpus.format.codes`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exbert_core.corpus.format.codes import empty_index, header


class CodeWriter:
    """Fill the codes of one index file, in any row order (``write(start, vectors)``)."""

    def __init__(self, path: Path, factory: str, ranges: np.ndarray, rows: int) -> None:
        self.index = empty_index(factory, ranges)
        self.rows = rows
        head = header(self.index, rows)
        with path.open("wb") as f:
            f.write(head)
            f.truncate(len(head) + rows * self.index.sq.code_size)
        self._codes = np.memmap(path, dtype=np.uint8, mode="r+", offset=len(head),
                                shape=(rows, self.index.sq.code_size)) if rows else None

    def write(self, start: int, vectors: np.ndarray) -> None:
        """Encode ``vectors`` ``[n, dim]`` (float32) into rows ``start..start+n``."""
        if len(vectors) == 0:
            return
        if start < 0 or start + len(vectors) > self.rows:
            raise ValueError(f"rows {start}..{start + len(vectors)} outside 0..{self.rows}")
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self._codes[start : start + len(x)] = self.index.sa_encode(x)

    def write_rows(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Encode ``vectors`` ``[n, dim]`` into the rows ``rows`` ``[n]`` (any order)."""
        if len(vectors) == 0:
            return
        if rows.min() < 0 or rows.max() >= self.rows:
            raise ValueError(f"rows outside 0..{self.rows}")
        self._codes[rows] = self.index.sa_encode(np.ascontiguousarray(vectors, dtype=np.float32))

    def close(self) -> None:
        if self._codes is not None:
            self._codes.flush()
            del self._codes
            self._codes = None
