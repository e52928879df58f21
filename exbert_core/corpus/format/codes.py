"""Index codes on disk: scalar-quantised vectors in faiss's own file format (the layout the build
writes and the search maps).

A file is a faiss ``IndexScalarQuantizer`` (inner product) whose codes fill the end of the file:
``[header][rows x code_size bytes]``. The header is the serialised empty index with its row count
and codes' size filled in; the codes of row ``r`` are bytes ``r * code_size`` onwards after it.
Writing: :mod:`exbert_core.corpus.build.codes_writer`; reading (memory-mapped):
:mod:`exbert_core.corpus.search.codes_reader`.
"""

from __future__ import annotations

import faiss
import numpy as np

QTYPES = {"SQ6": faiss.ScalarQuantizer.QT_6bit, "SQ8": faiss.ScalarQuantizer.QT_8bit}
_FOURCC = b"IxSQ"


def vdiff_of(ranges: np.ndarray) -> np.ndarray:
    """The quantiser's step range per dimension, ``[dim]`` float32, from ``ranges`` ``[2, dim]``
    (min, max): a constant dimension still needs a non-zero step."""
    ranges = np.asarray(ranges, dtype=np.float32)
    return np.maximum(ranges[1] - ranges[0], np.float32(1e-6)).astype(np.float32)


def empty_index(factory: str, ranges: np.ndarray) -> faiss.IndexScalarQuantizer:
    """A trained, empty quantiser index. ``ranges`` ``[2, dim]``: per dimension (min, max)."""
    ranges = np.asarray(ranges, dtype=np.float32)
    dim = ranges.shape[1]
    index = faiss.IndexScalarQuantizer(dim, QTYPES[factory], faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.concatenate([ranges[0], vdiff_of(ranges)]).astype(np.float32), index.sq.trained)
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
