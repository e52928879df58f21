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
