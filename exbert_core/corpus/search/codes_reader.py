"""Reading index codes for search: the file is validated (size and header against what the manifest
says), then mapped with ``faiss.IO_FLAG_MMAP_IFC``: scanning reads the page cache, and nothing is
copied into process memory. A file truncated *after* it was mapped would fault on access, so every
scan first checks that the file still has its size (a cheap ``stat``). Layout:
:mod:`exbert_core.corpus.format.codes`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from exbert_core.corpus.format.codes import QTYPES, header


@dataclass
class MappedIndex:
    """A memory-mapped index file: ``index`` scans the page cache; ``codes`` ``[rows, code_size]``
    is a read-only view of the same mapped bytes (no copy)."""

    path: Path
    size: int
    index: faiss.IndexScalarQuantizer

    @property
    def codes(self) -> np.ndarray:
        n = self.index.ntotal * self.index.sq.code_size
        view = faiss.rev_swig_ptr(self.index.codes.data(), n) if n else np.zeros(0, np.uint8)
        view = np.asarray(view).reshape(self.index.ntotal, self.index.sq.code_size)
        view.flags.writeable = False
        return view

    @property
    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """(vmin, vdiff) per dimension: a code ``c`` decodes to ``vmin + (c + 0.5) / 255 * vdiff``
        for 8-bit codes."""
        trained = faiss.vector_to_array(self.index.sq.trained)
        d = self.index.d
        return trained[:d], trained[d:]

    def still_whole(self) -> bool:
        """Whether the file still has the size it had when mapped (a shrunk file would fault)."""
        try:
            return os.stat(self.path).st_size == self.size
        except OSError:
            return False


def open_mapped(path: Path, factory: str, dim: int, rows: int) -> MappedIndex:
    """Map ``path`` after checking that its size and header describe ``rows`` vectors of ``dim``
    dimensions in ``factory`` codes. ValueError (with the reason) for anything else, before
    faiss reads a byte of it."""
    qtype = QTYPES[factory]
    probe = faiss.IndexScalarQuantizer(dim, qtype, faiss.METRIC_INNER_PRODUCT)
    probe.is_trained = True
    faiss.copy_array_to_vector(np.zeros(2 * dim, np.float32), probe.sq.trained)
    expected = header(probe, rows)
    size = path.stat().st_size
    if size != len(expected) + rows * probe.sq.code_size:
        raise ValueError(f"{path.name} has {size} bytes, not the {len(expected) + rows * probe.sq.code_size} "
                         f"of {rows} vectors of {dim} dimensions")
    with path.open("rb") as f:
        head = f.read(len(expected))
    # Everything but the trained ranges must be identical: type, dimension, count, code size.
    ranges_at = len(expected) - 8 - 8 * dim  # the ranges (2 * dim float32) end before the codes' size
    if head[:ranges_at] != expected[:ranges_at] or head[-8:] != expected[-8:]:
        raise ValueError(f"{path.name} is not a {factory} index of {rows} vectors of {dim} dimensions")
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    return MappedIndex(path, size, index)
