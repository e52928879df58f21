"""Index codes on disk: scalar-quantised vectors in faiss's own file format, written row by row
while a build streams, and read memory-mapped for search.

A file is a faiss ``IndexScalarQuantizer`` (inner product) whose codes fill the end of the file:
``[header][rows x code_size bytes]``. The builder writes the header once, then fills rows at any
position through a numpy memmap (dirty pages belong to the page cache, not to the process).
The reader validates size and header against what the manifest says, then maps the file with
``faiss.IO_FLAG_MMAP_IFC``: scanning reads the page cache, and nothing is copied into process
memory. A file truncated *after* it was mapped would fault on access, so every scan first checks
that the file still has its size (a cheap ``stat``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

QTYPES = {"SQ6": faiss.ScalarQuantizer.QT_6bit, "SQ8": faiss.ScalarQuantizer.QT_8bit}
_FOURCC = b"IxSQ"


def empty_index(factory: str, ranges: np.ndarray) -> faiss.IndexScalarQuantizer:
    """A trained, empty quantiser index. ``ranges`` ``[2, dim]``: per dimension (min, max)."""
    ranges = np.asarray(ranges, dtype=np.float32)
    dim = ranges.shape[1]
    vmin, vmax = ranges[0], ranges[1]
    vdiff = np.maximum(vmax - vmin, 1e-6)  # a constant dimension still needs a non-zero step
    index = faiss.IndexScalarQuantizer(dim, QTYPES[factory], faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.concatenate([vmin, vdiff]).astype(np.float32), index.sq.trained)
    index.is_trained = True
    return index


def header(index: faiss.IndexScalarQuantizer, rows: int) -> bytes:
    """The file header of ``index`` holding ``rows`` vectors (codes follow it)."""
    raw = bytearray(faiss.serialize_index(index).tobytes())
    if raw[:4] != _FOURCC or int.from_bytes(raw[-8:], "little") != 0 or index.ntotal != 0:
        raise ValueError("header() needs an empty scalar-quantiser index")
    raw[8:16] = rows.to_bytes(8, "little")  # ntotal
    raw[-8:] = (rows * index.sq.code_size).to_bytes(8, "little")  # size of the codes vector
    return bytes(raw)


class CodeWriter:
    """Fill the codes of one index file, in any row order (``write(start, vectors)``)."""

    def __init__(self, path: Path, factory: str, ranges: np.ndarray, rows: int) -> None:
        self.index = empty_index(factory, ranges)
        self.rows = rows
        head = header(self.index, rows)
        with path.open("wb") as f:
            f.write(head)
            f.flush()
            size = len(head) + rows * self.index.sq.code_size
            # Blocks reserved now: a full disk is an OSError here, never a SIGBUS later in the
            # memory-mapped writes (a sparse file from truncate() has no blocks behind its pages).
            if size > len(head):
                os.posix_fallocate(f.fileno(), len(head), size - len(head))
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
