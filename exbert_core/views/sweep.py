"""Layer sweep: how the neighbours of one token change across layers (the paper's Figure 4,
which its authors assembled by hand, in one call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from exbert_core.corpus.search.query import search
from exbert_core.corpus.search.store import Corpus
from exbert_core.corpus.search.summary import FEATURES, counts
from exbert_core.model.analysis import Analysis, Candidate, lens_at
from exbert_core.model.loading import LoadedModel


@dataclass(frozen=True)
class LayerSummary:
    """Histograms of the k nearest corpus tokens at one layer, and the logit-lens top
    predictions for the token there (models with an LM head)."""

    layer: int
    histograms: dict[str, dict[str, int]]  # feature ("pos", "dep", "ner") -> label -> count
    predictions: tuple[Candidate, ...] | None


def layer_sweep(
    corpus: Corpus,
    loaded: LoadedModel,
    analysis: Analysis,
    position: int,
    *,
    kind: str = "embedding",
    heads: list[int] | None = None,
    k: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> list[LayerSummary]:
    """Search at every layer (embedding: 0..L, heads: 1..L) and summarise each layer's matches."""
    first = 0 if kind == "embedding" else 1
    layers = list(range(first, loaded.info.layers + 1))
    lens = lens_at(loaded, analysis, position) if loaded.info.has_lm_head else None
    out = []
    for i, layer in enumerate(layers):
        found = search(corpus, loaded, analysis, position, layer, kind, heads, k, with_attention=False)
        tokens = [m.token for m in found.matches]
        predictions = lens[layer - 1] if lens is not None and layer >= 1 else None
        out.append(LayerSummary(layer, {f: counts(tokens, f) for f in FEATURES}, predictions))
        if progress:
            progress(i + 1, len(layers))
    return out


def sweep_dict(summaries: list[LayerSummary]) -> dict:
    """The ``layer_sweep --json`` contract: ``{"layers": [{"layer", "pos", "dep", "ner"}]}``."""
    layers = []
    for s in summaries:
        entry = {"layer": s.layer, **s.histograms}
        if s.predictions is not None:
            entry["predictions"] = [{"token": c.token, "prob": round(c.prob, 6)} for c in s.predictions]
        layers.append(entry)
    return {"layers": layers}
