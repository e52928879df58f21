"""Nearest corpus tokens to one token of an analysed sentence, with their max-attention tokens.

Every shard is scanned (see :mod:`exbert_core.corpus.search.scan`) and the top-k merged exactly. The
max-attention token of a match is computed exactly by re-running the model on the matched
sentences, only up to the search layer: no attention is stored for the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from exbert_core.corpus.format import vectors
from exbert_core.corpus.search import scan
from exbert_core.corpus.search.store import Corpus, Shard
from exbert_core.limits import MAX_K
from exbert_core.model import forward, measures
from exbert_core.model.analysis import Analysis, InputError, word_position
from exbert_core.model.loading import LoadedModel
from exbert_core.model.selection import Heads, block_index, check_layer

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
    """The token a match takes most from at the search layer (layer 1 for an embedding search at
    layer 0, which has no attention) under ``measure`` (special tokens excluded), as the attention
    view shows it: the chosen heads' mean, the whole layer's measure when every head is chosen,
    or the rollout up to that layer. ``offset`` = its position minus the match's position."""

    token: CorpusToken
    offset: int
    weight: float  # its share of the match's row (rows sum to 1 over the sentence's tokens)
    measure: str = "raw"
    aggregate: str = "layer"


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
    return Heads.of(heads).label(layer, n_heads)


def query_vector(analysis: Analysis, position: int, layer: int, kind: str, heads: Sequence[int]) -> np.ndarray:
    """The search vector of token ``position`` at ``layer``: its unit embedding ``[hidden]``, or
    its selected heads' unit contexts with the others zeroed ``[heads, head_dim]``."""
    word_position(analysis.tokens, position, "searched from")
    check_layer(kind, layer, analysis.layers)
    if kind == "embedding":
        return vectors.embedding_vectors(analysis.hidden[layer, position][None])[0]
    try:
        query = vectors.head_query(analysis.contexts[block_index(layer), position], heads)
    except ValueError as err:
        raise InputError(str(err)) from err
    return query.reshape(analysis.heads, -1)


def search(
    corpus: Corpus,
    loaded: LoadedModel,
    analysis: Analysis,
    position: int,
    layer: int,
    kind: str = "embedding",
    heads: Sequence[int] | Heads | None = None,
    k: int = 50,
    progress: Callable[[str], None] | None = None,
    *,
    with_attention: bool = True,
    measure: str = measures.DEFAULT_MEASURE,
    aggregate: str = measures.DEFAULT_AGGREGATE,
) -> SearchResult:
    """The k corpus tokens nearest to token ``position`` of ``analysis`` at ``layer``.

    ``heads``: None (or ``Heads.all()``) for every head. A head search needs at least one head;
    an embedding search with no head selected has no max-attention tokens (there is no attention
    to sum). ``with_attention=False`` skips the max-attention pass (one model run over the
    matched sentences, up to ``layer``), for views that only need the matches' own annotations.
    ``measure`` and ``aggregate`` choose what "attends most to" means (see
    :mod:`exbert_core.model.measures`); the matches themselves do not depend on them.
    """
    corpus.check_model(loaded)
    measures.check_measure(measure)
    measures.check_aggregate(aggregate)
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, got {k}.")
    selection = heads if isinstance(heads, Heads) else Heads.of(heads)
    chosen = selection.require(loaded.info.heads) if kind == "heads" else selection.resolve(loaded.info.heads)
    query = query_vector(analysis, position, layer, kind, chosen if kind == "heads" else range(loaded.info.heads))
    if progress and any((kind, layer) not in s._mapped for s in corpus.shards):
        progress(f"Opening layer {layer} of corpus '{corpus.name}'")
    scores, rows = top_k_rows(corpus, kind, layer, query, chosen, k)
    if kind == "heads":
        scores = scores / len(chosen)  # sum of per-head cosines -> mean cosine
    meta = corpus.token_rows(rows)
    tokens = _corpus_tokens(meta, rows)
    sentence_ids = meta["sentence_id"]
    if with_attention and chosen:
        attended = _max_attention(corpus, loaded, sentence_ids, tokens, max(layer, 1), chosen, measure, aggregate)
    else:
        attended = [None] * len(tokens)
    matches = []
    for sid, token, score, att in zip(sentence_ids, tokens, scores, attended):
        bounds = corpus.rows_of_sentence(sid)
        context = _corpus_tokens(corpus.token_rows(np.arange(bounds.start, bounds.stop)), np.arange(bounds.start, bounds.stop))
        matches.append(Match(sentence_id=sid, sentence=corpus.sentence_text(sid), token=token, score=float(score),
                             max_attention=att, context=tuple(context)))
    return SearchResult(layer, kind, tuple(chosen), k, position, tuple(matches))


def top_k_rows(corpus: Corpus, kind: str, layer: int, query: np.ndarray, heads: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k (scores, global token rows) over every shard: the shards' scans run in
    parallel on this machine, or on the Ray actors serving them when the corpus is served
    (:mod:`exbert_core.corpus.search.serve`)."""
    if corpus.server is not None:
        return corpus.server.top_k(kind, layer, query, tuple(heads), k)
    return scan_shards(corpus.shards, kind, layer, query, heads, k)


def scan_shards(shards: Sequence[Shard], kind: str, layer: int, query: np.ndarray, heads: Sequence[int],
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k (scores, global token rows) of ``shards``, scanned in parallel threads."""
    work, offsets = [], []
    for shard in shards:
        shard_jobs = scan.jobs(shard.index(kind, layer), kind, shard.rows, query, heads, k)
        work += shard_jobs
        offsets += [shard.first_token] * len(shard_jobs)
    parts = scan.run(work)
    return scan.merge([(s, ids + offset) for (s, ids), offset in zip(parts, offsets)], k)


def _corpus_tokens(meta: dict[str, list], rows: np.ndarray) -> list[CorpusToken]:
    return [
        CorpusToken(
            row=int(r),
            position=meta["position"][i],
            token=meta["token"][i],
            word=meta["word"][i],
            word_start=meta["word_start"][i],
            word_end=meta["word_end"][i],
            pos=meta["pos"][i],
            tag=meta["tag"][i],
            dep=meta["dep"][i],
            ner=meta["ner"][i],
            lemma=meta["lemma"][i],
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
    measure: str = "raw",
    aggregate: str = "layer",
) -> list[MaxAttention | None]:
    """Re-run the model on the distinct matched sentences, only up to ``layer``, and for each match
    find the indexed token it takes most from at ``layer`` under ``measure`` (see
    :class:`MaxAttention`)."""
    if not tokens:
        return []
    unique = sorted(set(sentence_ids))
    sequences = [corpus.sentence_ids(s) for s in unique]
    if loaded.info.causal:
        # A causal model's token attends only to itself and what precedes it: the rest of its
        # sentence changes nothing and would cost model time (half of it, on average).
        last: dict[int, int] = {}
        for sid, token in zip(sentence_ids, tokens):
            last[sid] = max(last.get(sid, 0), token.position)
        sequences = [seq[: last[sid] + 1] for sid, seq in zip(unique, sequences)]
    summed: dict[int, np.ndarray] = {}  # sentence id -> [tokens run, tokens run], as the view shows it
    selected = list(heads)

    def layer_attention(input_ids, mask):
        if measure == "raw" and aggregate == "layer":  # the attention weights alone: no values needed
            return forward.attention_at(loaded, input_ids, mask, layer)[:, selected].mean(dim=1)  # [batch, T, T]
        return batch_view(loaded, input_ids, mask, layer, selected, measure, aggregate)

    for group, attention in forward.in_batches(loaded, sequences, ATTENTION_BATCH_TOKENS, layer_attention):
        for row, i in enumerate(group):
            n = len(sequences[i])
            summed[unique[i]] = attention[row, :n, :n].numpy().copy()
    result: list[MaxAttention | None] = []
    for sid, token in zip(sentence_ids, tokens):
        bounds = corpus.rows_of_sentence(sid)
        rows = np.arange(bounds.start, bounds.stop)
        positions = np.asarray(corpus.token_rows(rows)["position"])
        run = positions < len(summed[sid])  # every position, or those a causal token can see
        rows, positions = rows[run], positions[run]
        weights = summed[sid][token.position, positions]  # indexed (non-special) tokens only
        best = int(np.argmax(weights))
        target = _corpus_tokens(corpus.token_rows(rows[best : best + 1]), rows[best : best + 1])[0]
        result.append(MaxAttention(target, target.position - token.position, float(weights[best]), measure, aggregate))
    return result


def batch_view(loaded: LoadedModel, input_ids, mask, layer: int, heads: list[int], measure: str,
               aggregate: str):
    """``[batch, T, T]`` weights at ``layer`` of a padded batch as the attention view shows them
    (:meth:`exbert_core.model.measures.Weights.view`), computed block by block while the model runs
    (memory: one block's ``[batch, heads, T, max(T, hidden)]`` at a time)."""
    blocks = measures.block_weights(loaded) if measure != "raw" else None
    n_heads = loaded.info.heads
    state: dict[str, object] = {"rollout": None, "view": None}

    def on_block(index: int, parts: forward.BlockParts) -> None:
        block = None if blocks is None else blocks[index - 1]
        weights, value_norms = measures.layer_weights(block, measure, parts.attention, parts.values, parts.inputs)
        if aggregate == "rollout":
            state["rollout"] = measures.rollout_step(state["rollout"], weights, measure)
            state["view"] = state["rollout"]
        elif index == layer:
            if len(heads) == n_heads:
                state["view"] = weights
            else:
                attention = parts.attention.float()
                per_head = attention if value_norms is None else torch.from_numpy(
                    measures.head_weights(attention.numpy(), value_norms.numpy()))
                state["view"] = per_head[:, heads].mean(dim=1)

    forward.blocks_up_to(loaded, input_ids, mask, layer, on_block)
    return state["view"]
