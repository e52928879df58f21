"""One forward pass that returns attention, hidden states and head contexts.

Head contexts are captured with forward pre-hooks on each layer's attention output projection
(no vendored modeling code): the projection's input is every head's attention-weighted value
vectors, concatenated, i.e. exBERT's head embedding before normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exbert_core.models import LoadedModel


@dataclass
class ForwardOutput:
    """Raw tensors of a padded batch.

    attention: ``[batch, layers, heads, tokens, tokens]`` (None unless asked for)
    hidden: ``[batch, layers + 1, tokens, hidden]`` (embedding output first)
    contexts: ``[batch, layers, tokens, heads, head_dim]``
    logits: ``[batch, tokens, vocab]`` from the LM head, or None
    """

    attention: torch.Tensor | None
    hidden: torch.Tensor
    contexts: torch.Tensor
    logits: torch.Tensor | None


def run(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    attentions: bool = True,
) -> ForwardOutput:
    """Run the model on ``input_ids`` ``[batch, tokens]`` under inference mode.

    The caller holds ``loaded.lock`` when the model is shared between threads.
    """
    info = loaded.info
    captured: list[torch.Tensor] = []

    def capture(_module: torch.nn.Module, args: tuple) -> None:
        captured.append(args[0].detach())

    hooks = [p.register_forward_pre_hook(capture) for p in loaded.output_projections]
    try:
        with torch.inference_mode():
            out = loaded.model(
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
    logits = out.logits if info.has_lm_head else None
    return ForwardOutput(attention=attention, hidden=hidden, contexts=contexts, logits=logits)


def run_padded(loaded: LoadedModel, sequences: list[tuple[int, ...]], *, attentions: bool = False) -> ForwardOutput:
    """Run several token-id sequences as one right-padded batch (caller holds ``loaded.lock``).

    Positions past a sequence's length hold padding and are to be ignored.
    """
    longest = max(len(s) for s in sequences)
    pad = loaded.tokenizer.pad_token_id
    pad = 0 if pad is None else pad
    ids = torch.full((len(sequences), longest), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return run(loaded, ids, mask, attentions=attentions)


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
