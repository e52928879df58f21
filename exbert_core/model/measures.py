"""What each token takes from each other token: raw attention and two value-aware measures, per
layer and rolled out across layers. One module for every model family.

Raw attention weights say how a token mixes the *value vectors* of the others, not how much of
each token reaches its output: a weight on a token whose transformed value is tiny moves almost
nothing (Kobayashi et al., EMNLP 2020, find most of the weight on [CLS], [SEP] and punctuation is
of that kind). The measures, for a sentence of ``n`` tokens, each ``[n, n]`` per layer with rows
that sum to 1 (row i: where token i's new representation comes from):

- ``raw``: the attention probabilities, averaged over heads (per head: each head's own).
- ``norm``: Kobayashi et al. 2020, ``‖α_ij f_h(x_j)‖`` with ``f_h(x) = W_O^h (W_V^h x + b_V^h)``;
  per head, and per layer as the norm of the sum over heads ``‖Σ_h α^h_ij f_h(x_j)‖``.
- ``contrib``: token-to-token contributions of the whole attention block, residual and (post-LN
  blocks) layer norm included, by ALTI's rule (Ferrando et al., EMNLP 2022): the output
  ``y_i = Σ_j T_i(x_j)`` is decomposed into one vector per input token (``T_i(x_i)`` holds the
  residual) and token j contributes ``max(0, ‖y_i‖ - ‖y_i - T_i(x_j)‖)``, normalised over j.
  ALTI measures that distance with the L1 norm; we use the Euclidean norm, which makes every term a
  dot product of ``[H, n, D]`` tensors (Gram matrices ``[n, H, H]`` and one GEMM per head) instead
  of an ``[n, n, D]`` tensor per layer: all 30 layers of a 512-token SmolLM2 sentence take about
  3 s on our 2 cores and ~280 MB (``scripts/benchmark.py --sections measures``). Chosen over
  Kobayashi et al. 2021 (the norm of ``T_i(x_j)`` alone), which ignores whether a part points along
  the output or against it; ALTI's authors report that their rule agrees better with erasure.
  In a post-LN
  block (BERT) the layer norm ``LN(s) = γ ⊙ (s - mean s) / σ + β`` is applied to each part linearly
  (``σ`` of the whole sum, the same for a whole row, so it cancels in the row's normalisation);
  biases (``b_O``, ``β``) belong to no token and are left out. In a pre-LN block (GPT-2, Llama)
  the norm sits before the values and the block output is ``x_i + attention``: the residual is the
  block input itself.

Rollout (Abnar & Zuidema, ACL 2020): ``rollout[l] = Ã_l · … · Ã_1``, what token i at layer l takes
from the *input* tokens. For ``raw`` and ``norm``, ``Ã = 0.5 A + 0.5 I`` (their rule for the
residual); for ``contrib`` the residual is already inside, so ``Ã = C`` (ALTI's aggregation).

Masked and padded keys get zero attention, hence zero weight under every measure; in a causal
model no token takes anything from a later one.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from exbert_core.errors import InputError
from exbert_core.model.loading import LoadedModel, kv_heads
from exbert_core.model.measure_names import (  # noqa: F401 (the names belong with the measures)
    AGGREGATES,
    DEFAULT_AGGREGATE,
    DEFAULT_MEASURE,
    MEASURES,
    check_aggregate,
    check_measure,
)

# Layers computed at once, by the bytes of one layer's [heads, n, max(n, hidden)] tensors.
_LAYER_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BlockWeights:
    """The weights of attention blocks that the measures read, for one block or stacked for
    several (leading dim ``[blocks]``).

    out: ``[(blocks,) heads, head_dim, hidden]`` (W_O split by head, transposed); norm_weight:
    ``[(blocks,) 1, hidden]`` (γ of the post-attention layer norm) or None for pre-LN blocks;
    group: query heads per value head.
    """

    out: torch.Tensor
    norm_weight: torch.Tensor | None
    group: int

    def __getitem__(self, blocks: int | slice) -> "BlockWeights":
        """One block (an int) or a run of them (a slice): views, no copies."""
        return BlockWeights(self.out[blocks], None if self.norm_weight is None else self.norm_weight[blocks], self.group)


_BLOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, BlockWeights]" = weakref.WeakKeyDictionary()


def block_weights(loaded: LoadedModel) -> BlockWeights:
    """Every layer's weights stacked (cached per model: a copy of W_O, ``layers x hidden²`` floats:
    3.5 MB for MiniLM, 40 MB for SmolLM2, so that a short sentence's layers run as one batch).
    InputError for a family whose value projections are not known (only ``raw`` works there)."""
    cached = _BLOCKS.get(loaded.model)
    if cached is not None:
        return cached
    info = loaded.info
    if not loaded.value_projections:
        raise InputError(f"The value-aware measures are not available for {info.name} ({info.family}); use 'raw'.")
    outs = []
    for projection in loaded.output_projections:
        weight = projection.weight.detach()
        if not isinstance(projection, torch.nn.Linear):  # GPT-2's Conv1D stores [in, out]
            weight = weight.T
        outs.append(weight.reshape(weight.shape[0], info.heads, info.head_dim).permute(1, 2, 0))
    norms = loaded.post_attention_norms
    gamma = torch.stack([n.weight.detach() for n in norms])[:, None, :] if norms else None
    found = BlockWeights(torch.stack(outs), gamma, info.heads // kv_heads(loaded.model.config))
    _BLOCKS[loaded.model] = found
    return found


def _per_head_values(block: BlockWeights, values: torch.Tensor) -> torch.Tensor:
    """``f_h(x_j) = W_O^h v_j^h`` for every head and token: ``[..., heads, n, hidden]`` from values
    ``[..., n, kv_heads * head_dim]`` (a value head serves ``group`` query heads: broadcast, not copied)."""
    heads, head_dim, hidden = block.out.shape[-3:]
    kv = heads // block.group
    v = values.reshape(*values.shape[:-1], kv, 1, head_dim).movedim(-4, -2)  # [..., kv, 1, n, Dh]
    out = block.out.reshape(*block.out.shape[:-3], kv, block.group, head_dim, hidden)
    f = v @ out  # [..., kv, group, n, D]
    return f.reshape(*f.shape[:-4], heads, f.shape[-2], hidden)


def _center_scale(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """The linear part of a post-LN layer norm without 1/σ: ``γ ⊙ (x - mean x)``."""
    return (x - x.mean(dim=-1, keepdim=True)) * gamma


def _rows_normalised(weights: torch.Tensor, fallback_identity: bool = False) -> torch.Tensor:
    """Rows scaled to sum to 1; a row of zeros stays zero (a padded query) or, with
    ``fallback_identity``, becomes the identity's row (the token keeps itself)."""
    total = weights.sum(dim=-1, keepdim=True)
    out = weights / total.clamp_min(1e-30)
    if fallback_identity:
        empty = (total <= 1e-30).squeeze(-1)
        if bool(empty.any()):
            eye = torch.eye(weights.shape[-1], dtype=weights.dtype).expand_as(weights)
            out = torch.where(empty[..., None], eye, out)
    return out


def layer_weights(
    block: BlockWeights, measure: str, attention: torch.Tensor, values: torch.Tensor, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One block's measure: (per-layer weights ``[..., n, n]``, per-head value norms ``[..., heads, n]``
    or None for ``raw``), from attention ``[..., heads, n, n]``, values ``[..., n, kv * head_dim]``
    and block inputs ``[..., n, hidden]`` (leading dims: sentences of a batch). Memory: a few
    ``[..., heads, n, max(n, hidden)]`` float32 tensors."""
    attention = attention.float()
    if measure == "raw":
        return attention.mean(dim=-3), None
    f = _per_head_values(block, values.float())  # [..., H, n, D]
    value_norms = f.norm(dim=-1)  # [..., H, n]
    if measure == "norm":
        squared = _quadratic(attention, f)
        return _rows_normalised(squared.clamp_min(0).sqrt(), fallback_identity=True), value_norms
    residual = inputs.float()
    if block.norm_weight is not None:
        gamma = block.norm_weight  # [(blocks,) 1, D]
        f, residual = _center_scale(f, gamma.unsqueeze(-3)), _center_scale(residual, gamma)
    # y_i = sum_j T_i(x_j); T_i(x_j) = sum_h a_hij f_hj (+ the residual when j == i)
    y = (attention @ f).sum(dim=-3) + residual  # [..., n, D]
    part_sq = _quadratic(attention, f)  # ‖T_ij‖² without the residual
    dot = (attention * (y[..., None, :, :] @ f.transpose(-1, -2))).sum(dim=-3)  # <y_i, T_ij> without it
    # The residual joins T_ii: ‖a + r‖² = ‖a‖² + 2<a, r> + ‖r‖², <y, a + r> = <y, a> + <y, r>.
    own = torch.diagonal(attention, dim1=-2, dim2=-1)  # [..., H, n]: a_hii
    attended_dot_res = (own[..., None] * f * residual[..., None, :, :]).sum(dim=(-3, -1))  # [..., n]
    eye = torch.eye(attention.shape[-1], dtype=torch.bool)
    part_sq = part_sq + torch.where(eye, (2 * attended_dot_res + (residual * residual).sum(-1))[..., :, None], 0.0)
    dot = dot + torch.where(eye, (y * residual).sum(-1)[..., :, None], 0.0)
    y_sq = (y * y).sum(-1)[..., :, None]
    distance = (y_sq - 2 * dot + part_sq).clamp_min(0).sqrt()
    proximity = (y_sq.sqrt() - distance).clamp_min(0)
    keys = attention.sum(dim=-3) > 0  # keys the token can see: no weight on masked or future ones
    proximity = torch.where(keys | eye, proximity, 0.0)
    return _rows_normalised(proximity, fallback_identity=True), value_norms


def _quadratic(attention: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``‖Σ_h a_hij f_hj‖²`` for every (i, j) ``[..., n, n]``, through the Gram matrix of each token's
    head outputs ``[..., n, H, H]`` (no ``[n, n, D]`` tensor)."""
    by_token = f.movedim(-3, -2)  # [..., n, H, D]
    gram = by_token @ by_token.transpose(-1, -2)  # [..., n, H, H]
    a = attention.movedim(-3, -1)  # [..., n_i, n_j, H]
    mixed = (a.transpose(-3, -2) @ gram).transpose(-3, -2)  # [..., n_i, n_j, H]: sum_h a_hij G_j[h, k]
    return (mixed * a).sum(-1)


_GRAMS: "weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor]" = weakref.WeakKeyDictionary()


def value_norms(loaded: LoadedModel, values: torch.Tensor) -> np.ndarray:
    """``‖f_h(x_j)‖`` ``[..., layers, heads, n]`` from every layer's values ``[..., layers, n, kv *
    head_dim]``, as ``sqrt(v^T W_O^hT W_O^h v)``: no ``hidden``-wide tensor per head and token
    (the per-head Gram matrices ``[layers, heads, head_dim, head_dim]`` are cached per model),
    one layer at a time."""
    grams = _GRAMS.get(loaded.model)
    if grams is None:
        out = block_weights(loaded).out  # [L, H, Dh, D]
        grams = _GRAMS[loaded.model] = out @ out.transpose(-1, -2)
    heads, head_dim = grams.shape[1], grams.shape[2]
    group = block_weights(loaded).group
    layers = []
    with torch.inference_mode():
        for layer in range(values.shape[-3]):
            v = values[..., layer, :, :].float()
            v = v.reshape(*v.shape[:-1], heads // group, head_dim).repeat_interleave(group, dim=-2).movedim(-2, -3)
            layers.append(((v @ grams[layer]) * v).sum(-1).clamp_min(0).sqrt())  # [..., H, n]
        return torch.stack(layers, dim=-3).numpy()


def head_weights(attention: np.ndarray, value_norms: np.ndarray | None) -> np.ndarray:
    """Per-head weights ``[..., heads, n, n]``: raw attention, or ``‖α_ij f_h(x_j)‖`` with rows
    normalised (``value_norms`` ``[..., heads, n]``)."""
    if value_norms is None:
        return attention
    scaled = attention * value_norms[..., None, :]
    return scaled / np.maximum(scaled.sum(-1, keepdims=True), 1e-30)


def rollout_step(previous: torch.Tensor | None, weights: torch.Tensor, measure: str) -> torch.Tensor:
    """``Ã_l · rollout[l-1]`` for ``weights`` ``[..., n, n]`` (see the module docstring)."""
    if measure != "contrib":
        eye = torch.eye(weights.shape[-1], dtype=weights.dtype)
        weights = 0.5 * weights + 0.5 * eye
    return weights if previous is None else weights @ previous


@dataclass(frozen=True)
class Weights:
    """One measure over every layer of one sentence (an immutable value; float32).

    layers: ``[layers, n, n]``; rollout: ``[layers, n, n]``; value_norms: ``[layers, heads, n]``
    (``‖f_h(x_j)‖``, None for ``raw``). Per-head weights are derived on request from the analysis's
    attention ``[layers, heads, n, n]`` (:meth:`heads_at`), so a measure keeps ``2 L n²`` floats,
    not ``L H n²``.
    ``per_head``: the measure per-head views show (``norm`` for ``contrib``, which is per layer).
    """

    measure: str
    layers: np.ndarray
    rollout: np.ndarray
    value_norms: np.ndarray | None

    @property
    def per_head(self) -> str:
        return "norm" if self.measure == "contrib" else self.measure

    def heads_at(self, attention: np.ndarray, block: int) -> np.ndarray:
        """Per-head weights of block ``block`` (0-based) ``[heads, n, n]`` under :attr:`per_head`,
        from the analysis's ``attention``."""
        norms = None if self.value_norms is None else self.value_norms[block]
        return head_weights(attention[block], norms)

    def view(self, attention: np.ndarray, block: int, heads: Sequence[int], n_heads: int,
             aggregate: str = "layer") -> np.ndarray:
        """The ``[n, n]`` weights a view shows for block ``block`` and the chosen heads: rollout (every
        head, every layer up to this one), the layer's measure when every head is chosen, else the
        mean of the chosen heads' :attr:`per_head` weights. Zeros when no head is chosen."""
        if aggregate == "rollout":
            return self.rollout[block]
        chosen = list(heads)
        if len(chosen) == n_heads:
            return self.layers[block]
        if not chosen:
            return np.zeros(self.layers.shape[1:], dtype=np.float32)
        return self.heads_at(attention, block)[chosen].mean(axis=0)


def compute(loaded: LoadedModel, analysis, measure: str) -> Weights:
    """``measure`` for every layer of ``analysis`` (an :class:`~exbert_core.model.analysis.Analysis`
    of ``loaded``'s model). Reads only weights (no lock needed). Layers run in batches of at most
    ``_LAYER_CHUNK_BYTES`` of ``[heads, n, max(n, hidden)]`` tensors, so a 512-token input stays
    within a few hundred MB."""
    check_measure(measure)
    attention = analysis.attention
    n_layers, n_heads, n = attention.shape[:3]
    if measure != "raw" and analysis.values is None:
        raise InputError(f"The value-aware measures are not available for {loaded.info.name}; use 'raw'.")
    blocks = block_weights(loaded) if measure != "raw" else None
    per_layer = n_heads * n * max(n, analysis.hidden.shape[-1]) * 4
    chunk = max(1, _LAYER_CHUNK_BYTES // per_layer)
    layers, norms = [], []
    with torch.inference_mode():
        for first in range(0, n_layers, chunk):
            part = slice(first, min(first + chunk, n_layers))
            weights, value_norms = layer_weights(
                None if blocks is None else blocks[part], measure, torch.from_numpy(attention[part]),
                None if analysis.values is None else torch.from_numpy(analysis.values[part]),
                torch.from_numpy(analysis.hidden[part]))
            layers.append(weights)
            if value_norms is not None:
                norms.append(value_norms)
        per_layer_weights = torch.cat(layers)
        rolled, previous = [], None
        for weights in per_layer_weights:
            previous = rollout_step(previous, weights, measure)
            rolled.append(previous)
    return Weights(
        measure=measure,
        layers=per_layer_weights.numpy(),
        rollout=torch.stack(rolled).numpy(),
        value_norms=torch.cat(norms).numpy() if norms else None,
    )
