"""Running the model over corpus sentences as they stream in, and handing each layer's unit search
vectors to a sink on the model's device: a shard's codes (quantised there, only uint8 copied
back) or the quantiser's range statistics.

Batches have a fixed shape per *width class* (a sentence's length rounded up to
:data:`WIDTH_STEP`): ``rows(width) x width`` with ``rows(width) = batch_tokens // width``. A
sentence waits in its class until the class fills a batch, so a batch's shape depends on its
sentences' own lengths only, and float results (which depend on the shapes of the products:
blocking, reduction order) are the same bit for bit whatever shares the batch. That is why a
corpus cut into shards gets the very codes of its one-shard build, and a streamed build those of
a serial one (tests/test_shards_ray.py, tests/test_build_stream.py). The classes left partly
filled at the end run filled up with one-token dummy rows.

On a CPU, ``batch_tokens`` is :data:`CPU_BATCH_TOKENS`: measured on the 2-core machine with MiniLM
on alice, 1,024-token batches embed at 7,600 tokens/s where the earlier 63 rows of any width
managed 3,600 (a partly filled class wasted up to 62 dummy rows), and products of at least ~256
token rows give the same bits on 1 thread as on 2 (a Ray actor and the driver); 8 rows of 8
tokens did not. On a GPU the batches are sized to the device's free memory, attention is fused,
and the next batch is queued while the codes of the last one are written.

Memory: one batch of ``batch_tokens`` padded tokens, one layer of it at a time
(:func:`exbert_core.model.forward.stream_layers`), plus the sentences waiting in their classes
(fewer than ``batch_tokens`` tokens each).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from exbert_core.corpus.build.codes_writer import CodePart, StagedCodes
from exbert_core.corpus.build.quantise import DeviceQuantiser, unit_rows
from exbert_core.model import forward
from exbert_core.model.loading import LoadedModel, ModelInfo

WIDTH_STEP = 8  # padded widths are multiples of this: ~4 padding tokens per sentence
CPU_BATCH_TOKENS = 1024  # see the module's docstring
# The fewest tokens per CPU batch, whatever the memory budget: a batch of any width then has at
# least 256 token rows, the size from which 1 and 2 threads gave the same bits (measured).
MIN_CPU_BATCH_TOKENS = 512
GPU_BATCH_TOKENS = (4096, 65536)  # the range a GPU's batch is sized in, from its free memory
# Bytes of activations per padded token and unit of width, measured on MiniLM and SmolLM2 (hidden
# states, attention, MLP intermediates of one block, plus the gathered vectors of one layer).
_ACTIVATION_BYTES_PER_WIDTH = 48


def activation_bytes(info: ModelInfo, tokens: int) -> int:
    """Bytes of activations of a forward batch of ``tokens`` padded tokens (float32)."""
    return tokens * _ACTIVATION_BYTES_PER_WIDTH * max(info.hidden, info.heads * info.head_dim)


def batch_tokens(info: ModelInfo, device: torch.device, budget_bytes: int) -> int:
    """Padded tokens per forward batch on ``device``: :data:`CPU_BATCH_TOKENS` on a CPU (fewer when
    ``budget_bytes`` of activations cannot hold them); on a GPU, what half of its free memory
    holds, within :data:`GPU_BATCH_TOKENS`."""
    per_token = activation_bytes(info, 1)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(np.clip(free // 2 // per_token, *GPU_BATCH_TOKENS))
    return int(np.clip(budget_bytes // per_token, MIN_CPU_BATCH_TOKENS, CPU_BATCH_TOKENS))


def padded_width(tokens: int, info: ModelInfo) -> int:
    """The width a sentence of ``tokens`` tokens is padded to in a build: the next multiple of
    :data:`WIDTH_STEP` (at most the model's maximum), so that it depends on the sentence alone."""
    return max(tokens, min(-(-tokens // WIDTH_STEP) * WIDTH_STEP, info.max_tokens))


class LayerSink(Protocol):
    """Receives the unit search vectors of a batch's indexed tokens, layer by layer, on the
    model's device, then :meth:`batch_done` with the batch's rows."""

    def embedding(self, layer: int, x: torch.Tensor) -> None:
        """``x`` ``[m, hidden]`` unit vectors, layers 0..L."""

    def heads(self, layer: int, x: torch.Tensor) -> None:
        """``x`` ``[m, heads, head_dim]`` per-head unit vectors, layers 1..L."""

    def batch_done(self, rows: np.ndarray) -> None:
        """The batch's vectors were all handed over; they are rows ``rows`` ``[m]``."""


class Batcher:
    """Sentences in, fixed-shape batches through the model, vectors to ``sink`` (see the module).
    ``step(tokens)`` after each batch, with the number of indexed tokens it covered.

    ``fixed_shapes=False`` drops the shapes' guarantee for speed: every sentence waits until
    :meth:`finish`, which runs them sorted by length, each batch padded to its longest sentence
    and no dummy rows. For work that sees the same sentences in the same order in every build
    (the quantiser's sample: its 5,000 tokens spread over 16 width classes ran as 16 batches of
    mostly dummy rows)."""

    def __init__(self, loaded: LoadedModel, sink: LayerSink, tokens_per_batch: int,
                 step: Callable[[int], None] | None = None, *, fixed_shapes: bool = True) -> None:
        self.loaded, self.sink, self.tokens_per_batch, self.step = loaded, sink, tokens_per_batch, step
        self.fixed_shapes = fixed_shapes
        self.device = next(loaded.model.parameters()).device
        self.waiting: dict[int, list[tuple[Sequence[int], np.ndarray, int]]] = {}

    def rows(self, width: int) -> int:
        """Sentences per batch of the width class ``width``."""
        return max(1, self.tokens_per_batch // width)

    def add(self, ids: Sequence[int], keep: np.ndarray, first_row: int) -> None:
        """Queue a sentence (token ids) whose positions ``keep`` are rows ``first_row`` onwards;
        its class's batch runs once it is full."""
        width = padded_width(len(ids), self.loaded.info) if self.fixed_shapes else 0
        waiting = self.waiting.setdefault(width, [])
        waiting.append((ids, keep, first_row))
        if self.fixed_shapes and len(waiting) == self.rows(width):
            self._run(width, self.waiting.pop(width), self.rows(width))

    def finish(self) -> None:
        """Run the classes left partly filled (dummy rows fill them up), or without fixed shapes
        every sentence, in batches of similar lengths."""
        if not self.fixed_shapes:
            waiting = self.waiting.pop(0, [])
            for group in forward.length_batches([len(ids) for ids, _, _ in waiting], self.tokens_per_batch):
                sentences = [waiting[i] for i in group]
                self._run(max(len(ids) for ids, _, _ in sentences), sentences, len(sentences))
        for width in sorted(self.waiting):
            self._run(width, self.waiting.pop(width), self.rows(width))

    def _run(self, width: int, group: list[tuple[Sequence[int], np.ndarray, int]], rows: int) -> None:
        info = self.loaded.info
        dummy = [group[0][0][0]]  # a one-token row: padding that keeps the batch's shape
        batch = [ids for ids, _, _ in group] + [dummy] * (rows - len(group))
        input_ids, mask = forward.pad(batch, self.loaded, width)
        flat = torch.from_numpy(np.concatenate([b * width + keep for b, (_, keep, _) in enumerate(group)]))
        rows = np.concatenate([first + np.arange(len(keep)) for _, keep, first in group])
        flat = flat.to(self.device)

        def on_hidden(layer: int, hidden: torch.Tensor) -> None:
            self.sink.embedding(layer, unit_rows(hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat)))

        def on_context(layer: int, ctx: torch.Tensor) -> None:
            x = ctx.reshape(-1, ctx.shape[-1]).index_select(0, flat).reshape(len(flat), info.heads, info.head_dim)
            self.sink.heads(layer, unit_rows(x))

        fused = forward.fused_attention(self.loaded) if self.device.type == "cuda" else contextlib.nullcontext()
        with self.loaded.lock, fused:
            forward.stream_layers(self.loaded, input_ids.to(self.device), mask.to(self.device), on_hidden, on_context)
        self.sink.batch_done(rows)
        if self.step:
            self.step(len(rows))


def run(loaded: LoadedModel, sequences: Sequence[Sequence[int]], keep: Sequence[np.ndarray], first_row: np.ndarray,
        sink: LayerSink, tokens_per_batch: int, step: Callable[[int], None] | None = None) -> None:
    """Run the model over ``sequences`` (token ids), sending the vectors of the positions
    ``keep[i]`` of sequence i as rows ``first_row[i]..`` to ``sink`` (a :class:`Batcher` over a list)."""
    batcher = Batcher(loaded, sink, tokens_per_batch, step)
    for ids, positions, first in zip(sequences, keep, first_row):
        batcher.add(ids, positions, int(first))
    batcher.finish()


class RangeStats:
    """Per-dimension minimum and maximum of every layer's vectors: the quantiser's ranges, kept on
    the model's device. Head vectors of all heads share one range per dimension (they are unit
    vectors per head)."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info
        self.low: dict[tuple[str, int], torch.Tensor] = {}
        self.high: dict[tuple[str, int], torch.Tensor] = {}

    def _update(self, key: tuple[str, int], x: torch.Tensor) -> None:
        if len(x) == 0:
            return
        low, high = x.amin(dim=0), x.amax(dim=0)
        if key in self.low:
            torch.minimum(self.low[key], low, out=self.low[key])
            torch.maximum(self.high[key], high, out=self.high[key])
        else:
            self.low[key], self.high[key] = low, high

    def embedding(self, layer: int, x: torch.Tensor) -> None:
        self._update(("embedding", layer), x)

    def heads(self, layer: int, x: torch.Tensor) -> None:
        self._update(("heads", layer), x.reshape(-1, x.shape[-1]))

    def batch_done(self, rows: np.ndarray) -> None:
        pass

    def ranges(self) -> dict[str, np.ndarray]:
        """``{"embedding_LL": [2, hidden], "heads_LL": [2, head_dim]}`` for every layer (a layer
        the sample never reached would be a bug: KeyError)."""
        out = {}
        for layer in range(self.info.layers + 1):
            for kind in ("embedding", "heads") if layer else ("embedding",):
                key = (kind, layer)
                out[f"{kind}_{layer:02d}"] = torch.stack([self.low[key], self.high[key]]).cpu().numpy()
        return out


class ShardCodes:
    """Quantises a batch's vectors on the model's device into one row of codes per token (every
    layer's, in :class:`~exbert_core.corpus.build.codes_writer.StagedCodes`' part order) and stages
    them. On a GPU the codes of a batch come back by an asynchronous copy into pinned memory, and
    are written while the next batch computes."""

    def __init__(self, staged: StagedCodes, device: torch.device) -> None:
        self.staged = staged
        self.parts: list[CodePart] = staged.parts
        self.quantisers = {(p.kind, p.layer): DeviceQuantiser(p.factory, p.ranges, device) for p in self.parts}
        self.batch: dict[tuple[str, int], torch.Tensor] = {}
        self.pending: tuple[torch.Tensor, np.ndarray, torch.cuda.Event | None] | None = None

    def embedding(self, layer: int, x: torch.Tensor) -> None:
        self.batch[("embedding", layer)] = self.quantisers[("embedding", layer)].encode(x)

    def heads(self, layer: int, x: torch.Tensor) -> None:
        m, heads, dim = x.shape
        self.batch[("heads", layer)] = self.quantisers[("heads", layer)].encode(x.reshape(m * heads, dim)).reshape(m, -1)

    def batch_done(self, rows: np.ndarray) -> None:
        codes = torch.cat([self.batch.pop((p.kind, p.layer)) for p in self.parts], dim=1)  # [m, row_bytes]
        event = None
        if codes.is_cuda:
            host = torch.empty(codes.shape, dtype=torch.uint8, pin_memory=True)
            host.copy_(codes, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            codes = host
        self.flush()  # the last batch's codes, while this one is still on its way
        self.pending = (codes, rows, event)

    def flush(self) -> None:
        """Write the codes of the batch still pending."""
        if self.pending is not None:
            codes, rows, event = self.pending
            if event is not None:
                event.synchronize()
            self.staged.write(rows, codes.numpy())
            self.pending = None
