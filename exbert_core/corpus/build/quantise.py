"""Search vectors made unit length and scalar-quantised in torch, on the device the model runs on,
so that a GPU build copies only uint8 codes back (a fifth of the float32 bytes or less).

The codes are faiss's, bit for bit (tests/test_quantise.py compares them with
``IndexScalarQuantizer.sa_encode`` of the same vectors): per dimension ``u = (x - vmin) / vdiff``
clamped to [0, 1], then ``int(255 * u)`` in float32 for SQ8, or ``int(63.0 * u)`` in double for
SQ6 with four 6-bit values packed into three bytes (faiss's ``Codec8bit`` / ``Codec6bit``, on a
little-endian machine). The same kernels run on CPU tensors, which is how the tests check them
without a GPU; a CPU build calls faiss's own encoder instead, 4x faster there (0.8 against 3.2 ms
for 1,000 SQ6 vectors of 384 dimensions on one core).
"""

from __future__ import annotations

import numpy as np
import torch

from exbert_core.corpus.format.codes import empty_index, vdiff_of


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` ``[..., d]`` scaled to unit length in float32 (zero rows stay zero), on x's
    device: the search vectors of :mod:`exbert_core.corpus.format.vectors`."""
    x = x.float()
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class DeviceQuantiser:
    """faiss's non-uniform scalar quantiser (``SQ6`` or ``SQ8``) of one index file, with its
    trained ranges held on ``device``."""

    def __init__(self, factory: str, ranges: np.ndarray, device: torch.device | str = "cpu") -> None:
        if factory not in ("SQ6", "SQ8"):
            raise ValueError(f"no device quantiser for {factory}")
        ranges = np.asarray(ranges, dtype=np.float32)
        self.index = empty_index(factory, ranges)
        self.factory = factory
        self.dim = ranges.shape[1]
        self.vmin = torch.from_numpy(ranges[0].copy()).to(device)
        self.vdiff = torch.from_numpy(vdiff_of(ranges)).to(device)
        self.code_size = self.dim if factory == "SQ8" else (self.dim * 6 + 7) // 8

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``[n, code_size]`` uint8 of the float32 vectors ``x`` ``[n, dim]``, on x's device."""
        if x.device.type == "cpu":
            return torch.from_numpy(self.index.sa_encode(np.ascontiguousarray(x.float().numpy())))
        return self.encode_on_device(x)

    def encode_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` with torch's kernels (a GPU's), whatever x's device."""
        u = ((x.float() - self.vmin) / self.vdiff).clamp_(0.0, 1.0)
        if self.factory == "SQ8":
            return (u * 255).to(torch.int32).to(torch.uint8)
        bits = (u.double() * 63.0).to(torch.int32)
        bits = torch.nn.functional.pad(bits, (0, -self.dim % 4)).reshape(len(bits), -1, 4)
        # Four 6-bit values in the low 3 bytes of an int32 (little-endian, as faiss packs them).
        packed = bits[..., 0] | (bits[..., 1] << 6) | (bits[..., 2] << 12) | (bits[..., 3] << 18)
        return packed.view(torch.uint8).reshape(len(bits), -1, 4)[..., :3].reshape(len(bits), -1)[:, : self.code_size]
