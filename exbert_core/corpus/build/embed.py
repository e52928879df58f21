"""Running the model over corpus sentences and handing each layer's search vectors to a sink as
soon as the layer is computed: a shard's code files, or the range statistics of the quantiser.

Memory: one forward batch of at most ``token_budget`` padded tokens, and one layer of it at a
time (:func:`exbert_core.model.forward.stream_layers`), so a build's peak depends neither on the
corpus's length nor on the model's depth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from exbert_core.corpus.build import codes_writer
from exbert_core.corpus.format import vectors
from exbert_core.corpus.format.manifest import CODES
from exbert_core.model import forward
from exbert_core.model.loading import LoadedModel, ModelInfo

# Bytes of activations per padded token and unit of width, measured on MiniLM and SmolLM2 (hidden
# states, attention, MLP intermediates of one block, plus the gathered vectors of one layer).
_ACTIVATION_BYTES_PER_WIDTH = 48
MIN_BATCH_TOKENS, MAX_BATCH_TOKENS = 256, 8192


def batch_tokens(info: ModelInfo, activation_bytes: int) -> int:
    """Padded tokens per forward batch so that one batch's activations take about
    ``activation_bytes`` (sized in bytes: tokens x width, never a fixed token count)."""
    per_token = _ACTIVATION_BYTES_PER_WIDTH * max(info.hidden, info.heads * info.head_dim)
    return int(np.clip(activation_bytes // per_token, MIN_BATCH_TOKENS, MAX_BATCH_TOKENS))


def activation_bytes(info: ModelInfo, tokens: int) -> int:
    """Bytes of activations of a forward batch of ``tokens`` padded tokens."""
    return tokens * _ACTIVATION_BYTES_PER_WIDTH * max(info.hidden, info.heads * info.head_dim)


def rows_per_batch(info: ModelInfo, activation_bytes: int, max_tokens: int) -> int:
    """Sentences per batch: a batch of the longest sentences (``max_tokens``) fits the bytes."""
    return max(1, batch_tokens(info, activation_bytes) // max_tokens)


WIDTH_STEP = 8  # padded widths are multiples of this: ~4 padding tokens per sentence


def padded_width(tokens: int, info: ModelInfo) -> int:
    """The width a sentence of ``tokens`` tokens is padded to in a build: the next multiple of
    :data:`WIDTH_STEP` (at most the model's maximum), so that it depends on the sentence alone."""
    return max(tokens, min(-(-tokens // WIDTH_STEP) * WIDTH_STEP, info.max_tokens))


class LayerSink(Protocol):
    """Receives unit search vectors of the indexed tokens, layer by layer."""

    def embedding(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        """``x`` ``[m, hidden]`` unit vectors of rows ``rows`` ``[m]``, layers 0..L."""

    def heads(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        """``x`` ``[m, heads, head_dim]`` per-head unit vectors of rows ``rows``, layers 1..L."""


def run(
    loaded: LoadedModel,
    sequences: Sequence[Sequence[int]],
    keep: Sequence[np.ndarray],
    first_row: np.ndarray,
    sink: LayerSink,
    rows_per_batch: int,
    step: Callable[[int], None] | None = None,
    *,
    cut_invariant: bool = True,
) -> None:
    """Run the model over ``sequences`` (token ids) and send the vectors of the positions
    ``keep[i]`` of sequence i, as rows ``first_row[i]..first_row[i] + len(keep[i])``, to ``sink``.
    ``step(tokens)`` after each batch, with the number of indexed tokens it covered.

    A batch's shape depends only on its sentences' own lengths: exactly ``rows_per_batch`` rows
    (filled up with one-token dummies) of sentences of one width class, padded to that class's
    width (:func:`padded_width`). Float results depend on the shapes of the products (blocking,
    reduction order), so with the shape fixed per sentence its vectors are the same bit for bit
    whatever shares its batch: a corpus cut into shards gets the very codes of its one-shard
    build (tests/test_shards_ray.py). With the padded width of the longest batch mate they
    differed by ~3e-7, enough to move 0.1 % of codes by a step. The rows stay at what the memory
    budget allows (64 with MiniLM): with 8, the products were small enough for the kernels to
    split them differently on 1 thread (a Ray actor) than on 2, and codes differed again. On a
    CPU the build keeps eager attention; on a GPU it uses fused attention (no attention weights
    materialised), whose kernels are not promised to be batch-invariant.

    ``cut_invariant=False`` drops that guarantee for speed (no filler rows, each batch padded to
    its longest sentence): for work that always sees the same sentences in the same order, such
    as the quantiser's sample, which every build of a text draws alike."""
    info = loaded.info
    device = next(loaded.model.parameters()).device

    def one_batch(input_ids: torch.Tensor, mask: torch.Tensor, group: list[int]) -> None:
        width = input_ids.shape[1]
        flat = torch.from_numpy(np.concatenate([b * width + keep[i] for b, i in enumerate(group)]).astype(np.int64))
        rows = np.concatenate([first_row[i] + np.arange(len(keep[i])) for i in group])

        def on_hidden(layer: int, hidden: torch.Tensor) -> None:
            x = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat.to(hidden.device))
            sink.embedding(layer, rows, vectors.unit_rows(x.float().cpu().numpy()))

        def on_context(layer: int, ctx: torch.Tensor) -> None:
            x = ctx.reshape(-1, ctx.shape[-1]).index_select(0, flat.to(ctx.device))
            x = x.float().cpu().numpy().reshape(len(rows), info.heads, info.head_dim)
            sink.heads(layer, rows, vectors.unit_rows(x))

        forward.stream_layers(loaded, input_ids.to(device), mask.to(device), on_hidden, on_context)

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    dummy = [sequences[order[0]][0]] if sequences else []

    def width(i: int) -> int:
        return padded_width(len(sequences[i]), info) if cut_invariant else 0

    groups: list[list[int]] = []
    for i in order:  # batches of one width class each, at most rows_per_batch sentences
        if not groups or len(groups[-1]) == rows_per_batch or width(groups[-1][0]) != width(i):
            groups.append([])
        groups[-1].append(i)
    for group in groups:
        fill = rows_per_batch - len(group) if cut_invariant else 0
        batch = [sequences[i] for i in group] + [dummy] * fill
        input_ids, mask = forward.pad(batch, loaded, width(group[0]))
        with loaded.lock, (forward.fused_attention(loaded) if device.type == "cuda" else contextlib.nullcontext()):
            one_batch(input_ids, mask, group)
        if step:
            step(sum(len(keep[i]) for i in group))


class RangeStats:
    """Per-dimension minimum and maximum of every layer's vectors: the quantiser's ranges.
    Head vectors of all heads share one range per dimension (they are unit vectors per head)."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info
        self.low: dict[tuple[str, int], np.ndarray] = {}
        self.high: dict[tuple[str, int], np.ndarray] = {}

    def _update(self, key: tuple[str, int], x: np.ndarray) -> None:
        if len(x) == 0:
            return
        low, high = x.min(axis=0), x.max(axis=0)
        if key in self.low:
            np.minimum(self.low[key], low, out=self.low[key])
            np.maximum(self.high[key], high, out=self.high[key])
        else:
            self.low[key], self.high[key] = low.copy(), high.copy()

    def embedding(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        self._update(("embedding", layer), x)

    def heads(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        self._update(("heads", layer), x.reshape(-1, x.shape[-1]))

    def ranges(self) -> dict[str, np.ndarray]:
        """``{"embedding_LL": [2, hidden], "heads_LL": [2, head_dim]}`` for every layer (a layer
        the sample never reached would be a bug: KeyError)."""
        out = {}
        for layer in range(self.info.layers + 1):
            out[f"embedding_{layer:02d}"] = np.stack([self.low[("embedding", layer)], self.high[("embedding", layer)]])
            if layer:
                out[f"heads_{layer:02d}"] = np.stack([self.low[("heads", layer)], self.high[("heads", layer)]])
        return out


class ShardCodes:
    """Writes a shard's code files: ``layer_LL.embedding.faiss`` ``[rows, hidden]`` and
    ``layer_LL.heads.faiss`` ``[heads * rows, head_dim]`` (head-major: row ``h * rows + r``)."""

    def __init__(self, writers: dict[tuple[str, int], codes_writer.CodeWriter], rows: int, heads: int) -> None:
        self.writers, self.rows, self.n_heads = writers, rows, heads

    def embedding(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        self.writers[("embedding", layer)].write_rows(rows, x)

    def heads(self, layer: int, rows: np.ndarray, x: np.ndarray) -> None:
        head_rows = (np.arange(self.n_heads)[None, :] * self.rows + rows[:, None]).reshape(-1)
        self.writers[("heads", layer)].write_rows(head_rows, x.reshape(-1, x.shape[-1]))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def factory(kind: str) -> str:
    return CODES[kind]
