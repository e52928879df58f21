"""Nearest corpus tokens to one token of an analysed sentence, with their max-attention tokens.

The max-attention token of a match is computed exactly by re-running the model on the matched
sentences (one batch of at most k sentences): no attention is stored for the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from exbert_core.corpus import vectors
from exbert_core.corpus.store import Corpus
from exbert_core.limits import MAX_K
from exbert_core.model import forward
from exbert_core.model.analysis import Analysis, InputError, word_position
from exbert_core.model.loading import LoadedModel

ATTENTION_BATCH_TOKENS = 2048
ANNOTATIONS = ("word", "pos", "tag", "dep", "ner", "lemma")


@dataclass(frozen=True)
class CorpusToken:
    """One token of a corpus sentence with its word's annotations."""

    row: int  # row in tokens.parquet (== FAISS id)
    position: int  # model position in its sentence (specials counted)
    token: str
    word: str
    word_start: int
    word_end: int
    pos: str
    tag: str
    dep: str
    ner: str
    lemma: str


@dataclass(frozen=True)
class MaxAttention:
    """The token a match attends to most at the search layer, selected heads summed
    (special tokens excluded). ``offset`` = its position minus the match's position."""

    token: CorpusToken
    offset: int
    weight: float  # summed attention weight (the mean over heads is weight / len(heads))


@dataclass(frozen=True)
class Match:
    sentence_id: int
    sentence: str
    token: CorpusToken
    score: float  # cosine (embedding) or mean per-head cosine over the selected heads
    max_attention: MaxAttention | None
    context: tuple[CorpusToken, ...]  # the indexed tokens of the sentence, in order


@dataclass(frozen=True)
class SearchResult:
    layer: int
    kind: str
    heads: tuple[int, ...]
    k: int
    query_position: int
    matches: tuple[Match, ...]


def layer_label(layer: int, heads: Sequence[int], n_heads: int) -> str:
    """The paper's ``<layer>-[<heads>]`` label, e.g. ``3-[0,4]``; all heads as ``3-[all]``."""
    selected = sorted(set(heads))
    inside = "all" if len(selected) == n_heads else ",".join(map(str, selected))
    return f"{layer}-[{inside}]"


def query_vector(analysis: Analysis, position: int, layer: int, kind: str, heads: Sequence[int]) -> np.ndarray:
    """The search vector of token ``position`` at ``layer``: its unit embedding ``[hidden]``, or
    its selected heads' unit contexts with the others zeroed ``[heads * head_dim]``."""
    word_position(analysis.tokens, position, "searched from")
    if kind == "embedding":
        if not 0 <= layer <= analysis.layers:
            raise InputError(f"Layer {layer} is out of range for embeddings: 0-{analysis.layers}.")
        return vectors.embedding_vectors(analysis.hidden[layer, position][None])[0]
    if kind == "heads":
        if not 1 <= layer <= analysis.layers:
            raise InputError(f"Layer {layer} is out of range for head search: 1-{analysis.layers}.")
        try:
            return vectors.head_query(analysis.contexts[layer - 1, position], heads)
        except ValueError as err:
            raise InputError(str(err)) from err
    raise InputError(f"Search by 'embedding' or 'heads', not {kind!r}.")


def search(
    corpus: Corpus,
    loaded: LoadedModel,
    analysis: Analysis,
    position: int,
    layer: int,
    kind: str = "embedding",
    heads: Sequence[int] | None = None,
    k: int = 50,
    progress: Callable[[str], None] | None = None,
    *,
    with_attention: bool = True,
) -> SearchResult:
    """The k corpus tokens nearest to token ``position`` of ``analysis`` at ``layer``.

    ``with_attention=False`` skips the max-attention tokens (one model run over the matched
    sentences), for views that only need the matches' own annotations.
    """
    corpus.check_model(loaded)
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, got {k}.")
    all_heads = tuple(range(loaded.info.heads))
    heads = tuple(sorted(set(heads))) if heads else all_heads
    if any(not 0 <= h < loaded.info.heads for h in heads):
        raise InputError(f"Heads must be in 0-{loaded.info.heads - 1}, got {list(heads)}.")
    query = query_vector(analysis, position, layer, kind, heads if kind == "heads" else all_heads)
    scores, rows = vectors.search(corpus.index(kind, layer, loaded, progress), query, k)
    if kind == "heads":
        scores = scores / len(heads)  # sum of per-head cosines -> mean cosine
    tokens = _corpus_tokens(corpus, rows)
    sentence_ids = corpus.tokens.column("sentence_id").take(rows).to_pylist()
    if with_attention:
        attended = _max_attention(corpus, loaded, sentence_ids, tokens, max(layer, 1), heads)
    else:
        attended = [None] * len(tokens)
    texts = corpus.sentences.column("text")
    matches = tuple(
        Match(
            sentence_id=sid,
            sentence=texts[sid].as_py(),
            token=token,
            score=float(score),
            max_attention=att,
            context=tuple(_corpus_tokens(corpus, np.arange(*_bounds(corpus, sid)))),
        )
        for sid, token, score, att in zip(sentence_ids, tokens, scores, attended)
    )
    return SearchResult(layer, kind, heads, k, position, matches)


def _bounds(corpus: Corpus, sentence_id: int) -> tuple[int, int]:
    rows = corpus.rows_of_sentence(sentence_id)
    return rows.start, rows.stop


def _corpus_tokens(corpus: Corpus, rows: np.ndarray) -> list[CorpusToken]:
    table = corpus.tokens.take(np.asarray(rows, dtype=np.int64)).to_pydict()
    return [
        CorpusToken(
            row=int(r),
            position=table["position"][i],
            token=table["token"][i],
            word=table["word"][i],
            word_start=table["word_start"][i],
            word_end=table["word_end"][i],
            pos=table["pos"][i],
            tag=table["tag"][i],
            dep=table["dep"][i],
            ner=table["ner"][i],
            lemma=table["lemma"][i],
        )
        for i, r in enumerate(rows)
    ]


def _max_attention(
    corpus: Corpus,
    loaded: LoadedModel,
    sentence_ids: list[int],
    tokens: list[CorpusToken],
    layer: int,
    heads: tuple[int, ...],
) -> list[MaxAttention | None]:
    """Re-run the model on the distinct matched sentences (one batch) and, for each match,
    find the indexed token it attends to most at ``layer`` with ``heads`` summed."""
    if not tokens:
        return []
    unique = sorted(set(sentence_ids))
    sequences = [corpus.sentence_ids(s) for s in unique]
    summed: dict[int, np.ndarray] = {}  # sentence id -> [tokens, tokens], chosen heads summed
    # Small batches, keeping one layer: all layers of k long sentences would take GBs.
    for group in forward.length_batches([len(s) for s in sequences], ATTENTION_BATCH_TOKENS):
        with loaded.lock:
            out = forward.run_padded(loaded, [sequences[i] for i in group], attentions=True)
        layer_sum = out.attention[:, layer - 1, list(heads)].sum(dim=1)
        for row, i in enumerate(group):
            n = len(sequences[i])
            summed[unique[i]] = layer_sum[row, :n, :n].numpy().copy()
        del out, layer_sum
    result: list[MaxAttention | None] = []
    for sid, token in zip(sentence_ids, tokens):
        start, stop = _bounds(corpus, sid)
        positions = corpus.tokens.column("position").slice(start, stop - start).to_numpy()
        row = summed[sid][token.position, positions]  # indexed (non-special) tokens only
        best = int(np.argmax(row))
        target = _corpus_tokens(corpus, np.array([start + best]))[0]
        result.append(MaxAttention(target, target.position - token.position, float(row[best])))
    return result
