"""Model names: the offline models, the default, and the canonical name of any model id (light:
no torch, no transformers, so URL parsing can use it)."""

from __future__ import annotations

import os
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


HUB_MODELS_ENV = "EXBERT_HUB_MODELS"
# Hub models allowed when the operator has not set $EXBERT_HUB_MODELS: the ones the app suggests.
DEFAULT_HUB_MODELS = ("bert-base-uncased", "distilbert-base-uncased", "roberta-base", "gpt2")


def allowed_hub_models() -> tuple[str, ...] | None:
    """The hub ids this installation may download: ``$EXBERT_HUB_MODELS`` as a comma-separated
    list (``*``: any hub id; empty: none), else :data:`DEFAULT_HUB_MODELS`. None means any.

    An operator's setting, not a visitor's: a link can name any id, and every download costs the
    server disk, bandwidth and memory. The offline models and local folders are not hub models."""
    setting = os.environ.get(HUB_MODELS_ENV)
    if setting is None:
        return DEFAULT_HUB_MODELS
    ids = tuple(part.strip() for part in setting.split(",") if part.strip())
    return None if "*" in ids else ids


def hub_model_allowed(name: str) -> bool:
    """Whether hub id ``name`` is in :func:`allowed_hub_models` (exactly as written there)."""
    allowed = allowed_hub_models()
    return allowed is None or name in allowed
