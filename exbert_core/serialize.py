"""Plain-JSON views of results, shared by the command line and the app's exports."""

from __future__ import annotations

from typing import Any, Sequence

from exbert_core.analysis import Analysis, Candidate
from exbert_core.annotate import WordAnnotation
from exbert_core.models import ModelInfo


def candidates(top: Sequence[Candidate]) -> list[dict[str, Any]]:
    return [{"token": c.token, "prob": round(c.prob, 6)} for c in top]


def analysis_dict(info: ModelInfo, analysis: Analysis, words: Sequence[WordAnnotation | None]) -> dict[str, Any]:
    """The ``analyze --json`` contract: model, layers, heads, tokens, predictions (+ extras)."""
    tokens = []
    for token, word in zip(analysis.tokens, words):
        tokens.append(
            {
                "position": token.position,
                "text": token.text,
                "id": token.id,
                "start": token.start,
                "end": token.end,
                "special": token.special,
                "masked": token.position in analysis.masked,
                "word": word.text if word else None,
                "pos": word.pos if word else "",
                "tag": word.tag if word else "",
                "dep": word.dep if word else "",
                "head": word.head if word else None,
                "ner": word.ner if word else "",
                "lemma": word.lemma if word else "",
            }
        )
    predictions = []
    if analysis.predictions is not None:
        predictions = [
            {"position": i, "top": candidates(top)} for i, top in enumerate(analysis.predictions)
        ]
    return {
        "model": info.name,
        "family": info.family,
        "layers": info.layers,
        "heads": info.heads,
        "causal": info.causal,
        "lm_head": info.has_lm_head,
        "sentence": analysis.sentence,
        "masked": list(analysis.masked),
        "tokens": tokens,
        "predictions": predictions,
        "warnings": list(analysis.warnings),
    }
