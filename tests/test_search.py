"""Search on a real corpus with real FAISS: scores, head-subset arithmetic, max attention, summaries."""

from __future__ import annotations

import numpy as np
import pytest

from exbert_core.corpus.search import query as search, summary
from exbert_core.model import analysis, forward
from exbert_core.model.analysis import InputError
from exbert_core.views import serialize

RIVER = "The children ran to the river to escape the heat of the city."


@pytest.fixture(scope="module")
def river(minilm):
    return analysis.analyze(minilm, RIVER, logit_lens=False)


def position_of(result, text):
    return next(t.position for t in result.tokens if t.text == text)


@pytest.mark.parametrize("layer", [0, 1, 3, 6])
def test_a_corpus_sentence_finds_itself(sample_corpus, minilm, river, layer):
    """The river sentence is in the corpus: its own 'escape' is the best match (cosine ~1)."""
    found = search.search(sample_corpus, minilm, river, position_of(river, "escape"), layer, "embedding", k=5)
    best = found.matches[0]
    assert best.token.token == "escape" and best.sentence == RIVER
    assert best.score == pytest.approx(1.0, abs=0.02)
    assert [m.score for m in found.matches] == sorted((m.score for m in found.matches), reverse=True)


def exact_head_cosines(minilm, sentence_ids, position, layer, query_contexts, heads):
    """Per-head cosines between the query contexts and a corpus token's exact contexts."""
    out = forward.run_padded(minilm, [sentence_ids])
    ctx = out.contexts[0, layer - 1, position].numpy()  # [heads, head_dim]
    cos = [
        float(np.dot(query_contexts[h], ctx[h]) / (np.linalg.norm(query_contexts[h]) * np.linalg.norm(ctx[h])))
        for h in heads
    ]
    return cos


@pytest.mark.parametrize("heads", [(3,), (0, 7), tuple(range(12))])
def test_head_subset_score_is_the_mean_of_per_head_cosines(sample_corpus, minilm, river, heads):
    layer, pos = 2, position_of(river, "escape")
    found = search.search(sample_corpus, minilm, river, pos, layer, "heads", heads, k=10)
    assert found.heads == heads
    for match in found.matches[:5]:
        ids = sample_corpus.sentence_ids(match.sentence_id)
        cos = exact_head_cosines(minilm, ids, match.token.position, layer, river.contexts[layer - 1, pos], heads)
        # one head: the score is that head's cosine (up to 8-bit quantisation)
        assert match.score == pytest.approx(np.mean(cos), abs=0.02)


def test_one_head_ranking_matches_exact_cosines(sample_corpus, minilm, river):
    """Brute force over every corpus token: the top matches are the exact top by that head."""
    layer, head, pos = 3, 5, position_of(river, "heat")
    found = search.search(sample_corpus, minilm, river, pos, layer, "heads", [head], k=10)
    ids = sample_corpus.sentences.column("ids").to_pylist()
    out = forward.run_padded(minilm, [tuple(s) for s in ids])
    exact = []
    positions = sample_corpus.tokens.column("position").to_numpy()
    sentence_of = sample_corpus.tokens.column("sentence_id").to_numpy()
    q = river.contexts[layer - 1, pos, head]
    for row in range(sample_corpus.tokens.num_rows):
        c = out.contexts[sentence_of[row], layer - 1, positions[row], head].numpy()
        exact.append(np.dot(q, c) / (np.linalg.norm(q) * np.linalg.norm(c)))
    top = set(np.argsort(exact)[::-1][:10])
    assert len(top & {m.token.row for m in found.matches}) >= 9


def test_max_attention_is_exact_and_in_the_same_sentence(sample_corpus, minilm, river):
    layer, heads = 4, (1, 2)
    found = search.search(sample_corpus, minilm, river, position_of(river, "river"), layer, "heads", heads, k=8,
                          measure="raw")
    for match in found.matches:
        att = match.max_attention
        assert att.offset == att.token.position - match.token.position
        assert att.token.row in sample_corpus.rows_of_sentence(match.sentence_id)
        # recompute with analyze() on the sentence text: same argmax over non-special tokens
        again = analysis.analyze(minilm, match.sentence, logit_lens=False)
        row = again.attention[layer - 1, list(heads)].sum(0)[match.token.position]
        row = np.where([t.special for t in again.tokens], -1, row)
        assert int(np.argmax(row)) == att.token.position
        assert att.weight == pytest.approx(float(row.max()) / len(heads), abs=1e-4)  # the heads' mean


def test_a_causal_models_max_attention_runs_only_what_the_token_sees(nlp, tmp_path, monkeypatch):
    """For a causal model the pass stops each sentence at its last matched token; the answer is
    the full sentence's (a random-weight GPT-2: mechanics, not meaning)."""
    from conftest import SAMPLE_TEXT
    from tiny_models import tiny

    from exbert_core.corpus.build import pipeline as build
    from exbert_core.corpus.search import store

    gpt2 = tiny("gpt2")
    corpus = store.load(str(build.build(SAMPLE_TEXT, "causal", tmp_path, gpt2, nlp=nlp)))
    query = analysis.analyze(gpt2, RIVER, logit_lens=False)
    layer, heads = 2, (0, 3)
    run: list[int] = []
    real = forward.in_batches

    def counted(loaded, sequences, *args, **kwargs):
        run.extend(len(seq) for seq in sequences)
        return real(loaded, sequences, *args, **kwargs)

    monkeypatch.setattr(forward, "in_batches", counted)
    found = search.search(corpus, gpt2, query, 5, layer, "heads", heads, k=20, measure="raw")
    assert len(found.matches) == 20
    seen = {m.sentence_id: max(n.token.position for n in found.matches if n.sentence_id == m.sentence_id) + 1
            for m in found.matches}
    assert sorted(run) == sorted(seen.values())  # each sentence up to its last matched token
    for match in found.matches:
        again = analysis.analyze(gpt2, match.sentence, logit_lens=False)
        row = again.attention[layer - 1, list(heads)].sum(0)[match.token.position]
        row = np.where([t.special for t in again.tokens], -1, row)
        assert match.max_attention.token.position <= match.token.position  # it sees nothing later
        assert float(row[match.max_attention.token.position]) == pytest.approx(float(row.max()), abs=1e-5)


def test_summary_counts_sum_to_k_and_match_the_matches(sample_corpus, minilm, river):
    found = search.search(sample_corpus, minilm, river, position_of(river, "escape"), 2, "embedding", k=25)
    assert len(found.matches) == 25
    hist = summary.histograms(found)
    for side in ("matched", "max_attention"):
        for feature in ("pos", "dep", "ner"):
            assert sum(hist[side][feature].values()) == 25
    assert sum(hist["max_attention"]["offset"].values()) == 25
    assert hist["matched"]["pos"] == summary.counts([m.token for m in found.matches], "pos")
    offsets = sorted(m.max_attention.offset for m in found.matches)
    assert [int(o) for o, n in hist["max_attention"]["offset"].items() for _ in range(n)] == offsets


def test_json_contract(sample_corpus, minilm, river):
    found = search.search(sample_corpus, minilm, river, position_of(river, "escape"), 2, "heads", [0, 1], k=20)
    data = serialize.search_dict(found, context=2)
    assert len(data["matches"]) == 20
    for m in data["matches"]:
        assert {"sentence", "token", "position", "score", "pos", "dep", "ner", "max_attention", "context"} <= set(m)
        assert m["max_attention"]["offset"] == m["max_attention"]["position"] - m["position"]
        assert len(m["context"]["before"]) <= 2 and len(m["context"]["after"]) <= 2


def test_masked_query_differs_from_unmasked(sample_corpus, minilm, river):
    pos = position_of(river, "escape")
    masked = analysis.analyze(minilm, RIVER, [pos], logit_lens=False)
    plain = search.search(sample_corpus, minilm, river, pos, 3, "embedding", k=5)
    hidden = search.search(sample_corpus, minilm, masked, pos, 3, "embedding", k=5)
    assert plain.matches[0].token.token == "escape"
    assert hidden.matches[0].score < plain.matches[0].score


def test_k_larger_than_corpus_returns_what_there_is(sample_corpus, minilm, river):
    found = search.search(sample_corpus, minilm, river, 1, 2, "embedding", k=500)
    assert len(found.matches) == sample_corpus.tokens.num_rows


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(position=99, layer=2, kind="embedding"), "out of range"),
        (dict(position=1, layer=7, kind="embedding"), "out of range"),
        (dict(position=1, layer=0, kind="heads"), "out of range"),
        (dict(position=1, layer=2, kind="heads", heads=[12]), "Heads must be"),
        (dict(position=1, layer=2, kind="attention"), "Search by"),
        (dict(position=1, layer=2, kind="embedding", k=0), "k must be"),
    ],
)
def test_bad_queries(sample_corpus, minilm, river, kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        search.search(sample_corpus, minilm, river, **kwargs)


def test_layer_label():
    assert search.layer_label(3, [4, 0], 12) == "3-[0,4]"
    assert search.layer_label(3, range(12), 12) == "3-[all]"


@pytest.mark.parametrize("measure,aggregate,heads", [("norm", "layer", (1, 2)), ("contrib", "layer", None),
                                                     ("contrib", "rollout", None), ("raw", "rollout", (0,))])
def test_max_attention_follows_the_measure(sample_corpus, minilm, river, measure, aggregate, heads):
    """The max-attention token under a measure is the argmax of that measure's row for the match,
    as measures.compute gives it on the matched sentence alone (the batch changes nothing)."""
    from exbert_core.model import measures

    layer = 3
    found = search.search(sample_corpus, minilm, river, position_of(river, "river"), layer, "heads", heads, k=8,
                          measure=measure, aggregate=aggregate)
    chosen = list(heads or range(12))
    for match in found.matches:
        att = match.max_attention
        assert (att.measure, att.aggregate) == (measure, aggregate)
        again = analysis.analyze(minilm, match.sentence, logit_lens=False)
        row = measures.compute(minilm, again, measure).view(again.attention, layer - 1, chosen, 12, aggregate)
        row = row[match.token.position]
        row = np.where([t.special for t in again.tokens], -1, row)
        assert int(np.argmax(row)) == att.token.position
        assert att.weight == pytest.approx(float(row.max()), abs=1e-4)
