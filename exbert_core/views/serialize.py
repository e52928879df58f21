"""Plain-JSON views of results, shared by the command line and the app's exports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from exbert_core.model.analysis import Analysis, Candidate
from exbert_core.model.annotate import WordAnnotation
from exbert_core.model.loading import ModelInfo
from exbert_core.model.measures import Weights

if TYPE_CHECKING:
    from exbert_core.corpus.search.query import CorpusToken, SearchResult


def candidates(top: Sequence[Candidate]) -> list[dict[str, Any]]:
    return [{"token": c.token, "prob": round(c.prob, 6)} for c in top]


def _rounded(array: np.ndarray) -> list:
    return np.round(array.astype(np.float64), 6).tolist()


def measure_dict(weights: Weights, attention: np.ndarray, per_head: bool = False) -> dict[str, Any]:
    """``analyze --measure`` 's ``attention`` object: ``measure``, ``layers`` ``[L][n][n]``, ``rollout``
    ``[L][n][n]`` and, with ``per_head``, ``heads`` ``[L][H][n][n]`` (under ``per_head_measure``,
    which is ``norm`` for ``contrib``); positions as in ``tokens``, rows sum to 1."""
    data: dict[str, Any] = {"measure": weights.measure, "layers": _rounded(weights.layers),
                            "rollout": _rounded(weights.rollout)}
    if per_head:
        data["per_head_measure"] = weights.per_head
        data["heads"] = [_rounded(weights.heads_at(attention, b)) for b in range(weights.layers.shape[0])]
    return data


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


def corpus_token(token: "CorpusToken") -> dict[str, Any]:
    return {
        "token": token.token,
        "position": token.position,
        "word": token.word,
        "pos": token.pos,
        "tag": token.tag,
        "dep": token.dep,
        "ner": token.ner,
        "lemma": token.lemma,
    }


def search_dict(result: "SearchResult", context: int = 3) -> dict[str, Any]:
    """The ``search --json`` contract: matches with annotations, max_attention and context,
    and the summary histograms."""
    from exbert_core.corpus.search.summary import histograms

    matches = []
    for m in result.matches:
        entry = {"sentence": m.sentence, "sentence_id": m.sentence_id, "score": round(m.score, 6), **corpus_token(m.token)}
        if m.max_attention is not None:
            entry["max_attention"] = {
                **corpus_token(m.max_attention.token),
                "offset": m.max_attention.offset,
                "weight": round(m.max_attention.weight, 6),
                "measure": m.max_attention.measure,
                "aggregate": m.max_attention.aggregate,
            }
        index = next(i for i, t in enumerate(m.context) if t.row == m.token.row)
        entry["context"] = {
            "before": [t.token for t in m.context[max(0, index - context) : index]],
            "after": [t.token for t in m.context[index + 1 : index + 1 + context]],
        }
        matches.append(entry)
    return {
        "layer": result.layer,
        "by": result.kind,
        "heads": list(result.heads),
        "k": result.k,
        "query_position": result.query_position,
        "matches": matches,
        "summary": histograms(result),
    }
