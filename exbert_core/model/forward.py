"""One forward pass that returns attention, hidden states and head contexts.

Head contexts are captured with forward pre-hooks on each layer's attention output projection
(no vendored modeling code): the projection's input is every head's attention-weighted value
vectors, concatenated, i.e. exBERT's head embedding before normalisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from exbert_core.model.loading import LoadedModel


@dataclass
class ForwardOutput:
    """Raw tensors of a padded batch.

    attention: ``[batch, layers, heads, tokens, tokens]`` (None unless asked for)
    hidden: ``[batch, layers + 1, tokens, hidden]`` (embedding output first)
    contexts: ``[batch, layers, tokens, heads, head_dim]``
    logits: ``[batch, tokens, vocab]`` from the LM head, or None
    values: ``[batch, layers, tokens, kv_heads * head_dim]``, each layer's value vectors (bias
        included), or None for a family whose value projections are not known
    """

    attention: torch.Tensor | None
    hidden: torch.Tensor
    contexts: torch.Tensor
    logits: torch.Tensor | None
    values: torch.Tensor | None = None


def run(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    attentions: bool = True,
    logits: bool = True,
) -> ForwardOutput:
    """Run the model on ``input_ids`` ``[batch, tokens]`` under inference mode.

    ``logits=False`` runs the base model only (no LM head: for SmolLM2 a batch of 4,096 tokens
    would hold 0.8 GB of logits). The caller holds ``loaded.lock`` when the model is shared
    between threads.
    """
    info = loaded.info
    captured: list[torch.Tensor] = []

    values: list[torch.Tensor] = []

    def capture(_module: torch.nn.Module, args: tuple) -> None:
        captured.append(args[0].detach())

    hooks = [p.register_forward_pre_hook(capture) for p in loaded.output_projections]
    if attentions:  # the value-aware measures need them beside the weights
        hooks += [v.module.register_forward_hook(_take_values(v, values)) for v in loaded.value_projections]
    try:
        with torch.inference_mode():
            out = (loaded.model if logits else loaded.model.base_model)(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_attentions=attentions,
                output_hidden_states=True,
                return_dict=True,
            )
    finally:
        for hook in hooks:
            hook.remove()
    if len(captured) != info.layers:
        raise RuntimeError(f"captured {len(captured)} head contexts for {info.layers} layers")
    batch, tokens = input_ids.shape
    # Each capture is [batch, tokens, heads * head_dim] -> stack to [batch, layers, tokens, heads, head_dim].
    contexts = torch.stack(captured, dim=1).reshape(batch, info.layers, tokens, info.heads, info.head_dim)
    hidden = torch.stack(out.hidden_states, dim=1)
    attention = torch.stack(out.attentions, dim=1) if attentions else None
    lm_logits = out.logits if logits and info.has_lm_head else None
    value_stack = torch.stack(values, dim=1) if values else None
    return ForwardOutput(attention=attention, hidden=hidden, contexts=contexts, logits=lm_logits, values=value_stack)


def _take_values(source, into: list[torch.Tensor]) -> Callable:
    """A forward hook appending the value features of ``source`` (a ValueProjection) to ``into``."""
    def hook(_m: torch.nn.Module, _args: tuple, output: torch.Tensor) -> None:
        into.append(output[..., source.start : source.stop].detach())
    return hook


def run_padded(loaded: LoadedModel, sequences: list[tuple[int, ...]], *, attentions: bool = False) -> ForwardOutput:
    """Run several token-id sequences as one right-padded batch (caller holds ``loaded.lock``).

    Positions past a sequence's length hold padding and are to be ignored.
    """
    ids, mask = pad(sequences, loaded)
    return run(loaded, ids, mask, attentions=attentions)


def pad(sequences: Sequence[Sequence[int]], loaded: LoadedModel, width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id sequences to the longest (or ``width``, if longer): (input_ids
    ``[batch, tokens]``, attention_mask, same shape)."""
    longest = max(width, *(len(s) for s in sequences))
    pad_id = loaded.tokenizer.pad_token_id
    ids = torch.full((len(sequences), longest), 0 if pad_id is None else pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


T = TypeVar("T")


def in_batches(
    loaded: LoadedModel,
    sequences: Sequence[Sequence[int]],
    token_budget: int,
    run_batch: Callable[[torch.Tensor, torch.Tensor], T],
) -> Iterator[tuple[list[int], T]]:
    """Run ``run_batch(input_ids, attention_mask)`` on right-padded batches of ``sequences`` grouped
    by length (each batch at most ``token_budget`` padded tokens), holding the model's lock while
    it runs. Yields (indices into ``sequences``, the batch's result), batches in length order.

    The batching loop of searches (max attention), the head atlas and exact vectors, so memory
    per batch is bounded by ``token_budget``. Builds batch in :func:`exbert_core.corpus.build.embed.run`
    instead: fixed batch shapes per sentence, so that codes do not depend on batch mates.
    """
    for group in length_batches([len(s) for s in sequences], token_budget):
        input_ids, mask = pad([sequences[i] for i in group], loaded)
        with loaded.lock:
            result = run_batch(input_ids, mask)
        yield group, result


def length_batches(lengths: list[int], token_budget: int = 4096) -> list[list[int]]:
    """Group sequence indices by similar length so a padded batch holds at most ``token_budget``
    tokens (sorting keeps padding, and so wasted compute, small)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > token_budget:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the needed layers have run."""


def blocks(loaded: LoadedModel) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (the ModuleList holding the output projections)."""
    first = loaded.output_projections[0]
    for module in loaded.model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == loaded.info.layers:
            if any(m is first for m in module[0].modules()):
                return module
    raise RuntimeError(f"cannot find the transformer blocks of {loaded.info.name}")


def run_prefix(
    loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run only the embeddings and the first ``layers`` blocks (cheap recomputation).

    Returns hidden ``[batch, layers + 1, tokens, hidden]`` (inputs of blocks 0..layers, which
    equal the full pass's hidden states 0..layers) and contexts ``[batch, layers, tokens, heads,
    head_dim]``. Requires ``layers < info.layers`` (the last hidden state may be normalised).
    """
    info = loaded.info
    if not 0 <= layers < info.layers:
        raise ValueError(f"layers must be in [0, {info.layers - 1}]")
    inputs: list[torch.Tensor] = []
    contexts: list[torch.Tensor] = []

    def take_input(_m: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        inputs.append((args[0] if args else kwargs["hidden_states"]).detach())
        if len(inputs) == layers + 1:
            raise _StopForward

    def take_context(_m: torch.nn.Module, args: tuple) -> None:
        contexts.append(args[0].detach())

    block_list = blocks(loaded)
    hooks = [block_list[i].register_forward_pre_hook(take_input, with_kwargs=True) for i in range(layers + 1)]
    hooks += [loaded.output_projections[i].register_forward_pre_hook(take_context) for i in range(layers)]
    try:
        with torch.inference_mode():
            loaded.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    except _StopForward:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    batch, tokens = input_ids.shape
    hidden = torch.stack(inputs, dim=1)
    if layers == 0:
        ctx = hidden.new_zeros((batch, 0, tokens, info.heads, info.head_dim))
    else:
        ctx = torch.stack(contexts, dim=1).reshape(batch, layers, tokens, info.heads, info.head_dim)
    return hidden, ctx


def all_attention(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Every layer's attention ``[batch, layers, heads, tokens, tokens]``, without hidden states or
    the LM head (caller holds ``loaded.lock``)."""
    with torch.inference_mode():
        out = loaded.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                      output_attentions=True, return_dict=True)
    return torch.stack(out.attentions, dim=1)


def attention_modules(loaded: LoadedModel) -> list[torch.nn.Module]:
    """One self-attention module per block, in order: the modules whose output holds the attention
    weights ``[batch, heads, tokens, tokens]`` (transformers' own output-recording table says which
    class that is, and at which index of the output tuple)."""
    target = getattr(loaded.model, "_can_record_outputs", {}).get("attentions")
    cls = getattr(target, "target_class", target)
    suffix = getattr(target, "layer_name", None) or ""
    found = []
    for block in blocks(loaded):
        matches = [m for n, m in block.named_modules() if cls is not None and isinstance(m, cls)
                   and (not suffix or ("." + n).endswith(suffix))]
        if len(matches) != 1:
            raise RuntimeError(f"cannot find the attention module of each block of {loaded.info.name}")
        found.append(matches[0])
    return found


def attention_at(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
    """The attention weights of paper layer ``layer`` (1..L) ``[batch, heads, tokens, tokens]``,
    running only blocks 1..layer: the forward stops once that block's attention is known, so a
    search at layer 3 of a 30-layer model costs 3 blocks (caller holds ``loaded.lock``)."""
    if not 1 <= layer <= loaded.info.layers:
        raise ValueError(f"layer must be in [1, {loaded.info.layers}]")
    target = getattr(loaded.model, "_can_record_outputs", {}).get("attentions")
    index = getattr(target, "index", 1)
    captured: list[torch.Tensor] = []

    def take(_m: torch.nn.Module, _args: tuple, output: tuple) -> None:
        captured.append(output[index].detach())
        raise _StopForward

    _run_until_stopped(loaded, input_ids, attention_mask, [attention_modules(loaded)[layer - 1].register_forward_hook(take)])
    if not captured or captured[0] is None:
        raise RuntimeError(f"{loaded.info.name} returned no attention weights (it needs eager attention)")
    return captured[0]


@contextlib.contextmanager
def fused_attention(loaded: LoadedModel) -> Iterator[None]:
    """Run the model with PyTorch's fused attention (no attention weights materialised, flash
    kernels on a GPU) inside the block, then back to eager attention, which the attention view
    needs. Hold ``loaded.lock`` around it: the switch is seen by every user of the model."""
    model = loaded.model
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation("sdpa")
    except (ValueError, ImportError, AttributeError):  # a family without SDPA support stays eager
        yield
        return
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def stream_layers(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    on_hidden: Callable[[int, torch.Tensor], None],
    on_context: Callable[[int, torch.Tensor], None],
) -> None:
    """One forward pass that hands over each layer's states as soon as they exist, so memory holds
    one layer at a time whatever the model's depth (the caller holds ``loaded.lock``).

    ``on_hidden(layer, hidden [batch, tokens, hidden])`` for layers 0..L (equal to the full pass's
    hidden states: block inputs, and the base model's final output for L);
    ``on_context(layer, contexts [batch, tokens, heads * head_dim])`` for layers 1..L.
    The LM head is not run, and no attention weights are kept.
    """
    layers = loaded.info.layers

    def block_input(index: int) -> Callable:
        def hook(_m: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            on_hidden(index, (args[0] if args else kwargs["hidden_states"]).detach())
        return hook

    def context(index: int) -> Callable:
        def hook(_m: torch.nn.Module, args: tuple) -> None:
            on_context(index + 1, args[0].detach())
        return hook

    block_list = blocks(loaded)
    hooks = [block_list[i].register_forward_pre_hook(block_input(i), with_kwargs=True) for i in range(layers)]
    hooks += [p.register_forward_pre_hook(context(i)) for i, p in enumerate(loaded.output_projections)]
    try:
        with torch.inference_mode():
            out = loaded.model.base_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    finally:
        for hook in hooks:
            hook.remove()
    on_hidden(layers, out.last_hidden_state.detach())


@dataclass
class BlockParts:
    """What a value-aware measure needs of one block of a padded batch.

    attention: ``[batch, heads, tokens, tokens]``; values: ``[batch, tokens, kv_heads * head_dim]``;
    inputs: ``[batch, tokens, hidden]``, the residual stream entering the block.
    """

    attention: torch.Tensor
    values: torch.Tensor
    inputs: torch.Tensor


def blocks_up_to(
    loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int,
    on_block: Callable[[int, BlockParts], None],
) -> None:
    """Run blocks 1..``layer`` (paper layers) and call ``on_block(layer, parts)`` for each as soon as
    its attention is known, then stop: memory holds one block's parts at a time, and a search at
    layer 3 of a 30-layer model costs 3 blocks (caller holds ``loaded.lock``). Needs the family's
    value projections (``loaded.value_projections``)."""
    if not 1 <= layer <= loaded.info.layers:
        raise ValueError(f"layer must be in [1, {loaded.info.layers}]")
    if not loaded.value_projections:
        raise ValueError(f"the value vectors of {loaded.info.name} ({loaded.info.family}) cannot be read")
    target = getattr(loaded.model, "_can_record_outputs", {}).get("attentions")
    index = getattr(target, "index", 1)
    inputs: dict[int, torch.Tensor] = {}
    values: dict[int, list[torch.Tensor]] = {}

    def block_input(i: int) -> Callable:
        def hook(_m: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            inputs[i] = (args[0] if args else kwargs["hidden_states"]).detach()
        return hook

    def attention_done(i: int) -> Callable:
        def hook(_m: torch.nn.Module, _args: tuple, output: tuple) -> None:
            weights = output[index]
            if weights is None:
                raise RuntimeError(f"{loaded.info.name} returned no attention weights (it needs eager attention)")
            on_block(i + 1, BlockParts(weights.detach(), values.pop(i)[0], inputs.pop(i)))
            if i + 1 == layer:
                raise _StopForward
        return hook

    block_list, modules = blocks(loaded), attention_modules(loaded)
    hooks = []
    for i in range(layer):
        values[i] = []
        hooks.append(block_list[i].register_forward_pre_hook(block_input(i), with_kwargs=True))
        hooks.append(loaded.value_projections[i].module.register_forward_hook(_take_values(loaded.value_projections[i], values[i])))
        hooks.append(modules[i].register_forward_hook(attention_done(i)))
    _run_until_stopped(loaded, input_ids, attention_mask, hooks)


def _run_until_stopped(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       hooks: list) -> None:
    """Run the base model (no LM head) with ``hooks`` registered until one of them raises
    :class:`_StopForward` (or to the end), then remove them."""
    try:
        with torch.inference_mode():
            loaded.model.base_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    except _StopForward:
        pass
    finally:
        for hook in hooks:
            hook.remove()
