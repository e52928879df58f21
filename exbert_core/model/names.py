"""Model names: the offline models, the default, and the canonical name of any model id (light:
no torch, no transformers, so URL parsing can use it)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "minilm"


@dataclass(frozen=True)
class OfflineModel:
    """A model whose files come from a PyPI package, so it loads without internet."""

    short_name: str
    hub_id: str
    description: str


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "minilm": OfflineModel(
        "minilm",
        "sentence-transformers/all-MiniLM-L6-v2",
        "MiniLM-L6 (BERT encoder, 6 layers x 12 heads, no LM head) - offline default",
    ),
    "smollm2": OfflineModel(
        "smollm2",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2-135M (Llama, causal, 30 layers x 9 heads, with LM head) - offline",
    ),
}


def resolve_name(name: str) -> str:
    """The canonical name: offline short names and their hub ids map to the short name."""
    name = (name or "").strip()
    if not name:
        return DEFAULT_MODEL
    lowered = name.lower()
    for offline in OFFLINE_MODELS.values():
        if lowered in (offline.short_name, offline.hub_id.lower()):
            return offline.short_name
    return name
