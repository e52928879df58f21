"""Does a measure say what the model uses? Leave-one-out erasure of each word token, scored against
each measure's relevance (Spearman's rank correlation per sentence, then the mean).

- A model with an LM head (causal, e.g. SmolLM2): the erasure effect of a token is the drop in
  log-probability of the model's top next token after the sentence; a measure's relevance of
  token j is the last row of its matrix (what the last token, which predicts, takes from j).
- A sentence-embedding encoder (MiniLM): the effect is ``1 - cosine`` between the mean-pooled last
  hidden states with and without the token; the relevance is the mean of the matrix's rows.

Relevance is read from every measure's rollout (all layers) and from its last layer alone, so the
report says which aggregation, if any, tracks erasure. Special tokens ([CLS], [SEP]) are never
erased and never ranked. Erasure removes the token (the sentence is one token shorter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from exbert_core.errors import InputError
from exbert_core.model import analysis as analysis_mod
from exbert_core.model import forward, measures
from exbert_core.model.loading import LoadedModel

READINGS = tuple((m, a) for m in measures.MEASURES for a in ("rollout", "last layer"))


@dataclass(frozen=True)
class SentenceScore:
    """One sentence: its word tokens, their erasure effects and each reading's Spearman rho
    (None where it is undefined: fewer than 3 words, or constant relevance)."""

    sentence: str
    words: tuple[str, ...]
    effects: tuple[float, ...]
    rho: dict[tuple[str, str], float | None]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None when either side is constant."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return mean_rank[inverse]


def task_of(loaded: LoadedModel) -> str:
    """``next-token`` for a model with an LM head that reads left to right, else ``embedding``."""
    return "next-token" if loaded.info.causal and loaded.info.has_lm_head else "embedding"


def _effects(loaded: LoadedModel, ids: list[int], words: list[int]) -> np.ndarray:
    """The erasure effect of each position in ``words`` (see the module docstring) ``[len(words)]``."""
    erased = [ids[:p] + ids[p + 1 :] for p in words]
    batch, mask = forward.pad([ids] + erased, loaded)
    with loaded.lock, torch.inference_mode():
        if task_of(loaded) == "next-token":
            logits = loaded.model(input_ids=batch, attention_mask=mask).logits
            last = mask.sum(1) - 1
            logp = torch.log_softmax(logits[torch.arange(len(batch)), last].float(), dim=-1)
            top = int(logp[0].argmax())
            return (logp[0, top] - logp[1:, top]).numpy()
        hidden = loaded.model.base_model(input_ids=batch, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return (1 - torch.nn.functional.cosine_similarity(pooled[1:], pooled[:1])).numpy()


def score_sentence(loaded: LoadedModel, sentence: str) -> SentenceScore:
    """Erasure effects and every reading's rho for one sentence (InputError for a bad sentence)."""
    result = analysis_mod.analyze(loaded, sentence)
    words = [t.position for t in result.tokens if not t.special]
    if not words:
        raise InputError("The sentence has no word token to erase.")
    effects = _effects(loaded, [t.id for t in result.tokens], words)
    rho: dict[tuple[str, str], float | None] = {}
    for measure in measures.MEASURES:
        weights = measures.compute(loaded, result, measure)
        for aggregate, matrix in (("rollout", weights.rollout[-1]), ("last layer", weights.layers[-1])):
            relevance = matrix[-1] if task_of(loaded) == "next-token" else matrix.mean(axis=0)
            rho[(measure, aggregate)] = spearman(relevance[words], effects)
    return SentenceScore(result.sentence, tuple(result.tokens[p].text for p in words),
                         tuple(float(e) for e in effects), rho)


def summarise(scores: Iterable[SentenceScore]) -> dict[tuple[str, str], tuple[float, int]]:
    """(mean rho, sentences with a defined rho) per reading."""
    scores = list(scores)
    out = {}
    for reading in READINGS:
        values = [s.rho[reading] for s in scores if s.rho.get(reading) is not None]
        out[reading] = (float(np.mean(values)) if values else float("nan"), len(values))
    return out


def score_lines(loaded: LoadedModel, lines: Iterable[str],
                on_error: Callable[[int, str], None] | None = None) -> list[SentenceScore]:
    """:func:`score_sentence` for each non-blank line; a bad line is reported to ``on_error(line
    number, message)`` and skipped, never fatal."""
    scores = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            scores.append(score_sentence(loaded, line))
        except InputError as err:
            if on_error:
                on_error(number, str(err))
    return scores
