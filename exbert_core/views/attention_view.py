"""What an attention chart shows under the chosen measure: the one place that turns an analysis,
its measure and the page's layer and heads into the arrays the charts and the "attends most to"
lines draw, and the plain sentence that names them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exbert_core.model.measure_names import LABELS
from exbert_core.model.measures import Weights
from exbert_core.model.selection import block_index
from exbert_core.views.explain import heads_words


@dataclass(frozen=True)
class ShownAttention:
    """per_head: ``[heads, n, n]`` each head's weights under ``per_head_measure`` (the small maps);
    matrix: ``[n, n]`` what the curves and the heat map draw, rows summing to 1."""

    measure: str
    aggregate: str
    per_head_measure: str
    per_head: np.ndarray
    matrix: np.ndarray


def shown(weights: Weights, attention: np.ndarray, layer: int, heads: Sequence[int], n_heads: int,
          aggregate: str) -> ShownAttention:
    """The arrays of paper layer ``layer`` (1..L) for ``heads``, from ``weights`` (the analysis's
    measure) and the analysis's ``attention`` ``[layers, heads, n, n]``."""
    block = block_index(layer)
    return ShownAttention(weights.measure, aggregate, weights.per_head, weights.heads_at(attention, block),
                          weights.view(attention, block, heads, n_heads, aggregate))


def every_head(weights: Weights, attention: np.ndarray) -> np.ndarray:
    """``[layers, heads, n, n]``: every head of every layer under ``weights.per_head`` (the model
    view; the same size as the attention itself)."""
    if weights.value_norms is None:
        return attention
    return np.stack([weights.heads_at(attention, b) for b in range(attention.shape[0])])


def measure_words(measure: str) -> str:
    """``attention × value`` etc., lower case, for inside a sentence."""
    return LABELS[measure].lower() if measure != "raw" else "raw attention"


def describe(view: ShownAttention, layer: int, heads: Sequence[int], n_heads: int, *, causal: bool) -> str:
    """One plain sentence (Markdown, no user text) naming what the chart's numbers are: the
    measure, the layers, the heads, and where the measure is not the one chosen."""
    if view.aggregate == "rollout":
        where = (f"rolled out over layers 1 to {layer}, every head"
                 + (" (the head selection does not apply)" if len(heads) != n_heads else ""))
    elif len(heads) == n_heads:
        where = f"for layer {layer} as a whole"
    else:
        where = f"averaged over {heads_words(layer, list(heads), n_heads)}"
    measure = view.measure if view.aggregate == "rollout" or len(heads) == n_heads else view.per_head_measure
    text = f"Numbers: **{measure_words(measure)}**, {where}."
    if measure != view.measure:
        text += (f" ({measure_words(view.measure).capitalize()} is measured for a whole layer; for single heads "
                 f"this shows {measure_words(measure)}.)")
    if view.aggregate == "rollout" and causal:
        text += (" On left-to-right models, rollout did not track what the model uses in our tests "
                 "(see *How to read this page*): read it with care.")
    return text
