"""Layer sweep and head atlas on the real sample corpus."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from exbert_core.corpus.search import query as search
from exbert_core.model import analysis
from exbert_core.views import head_atlas, sweep

RIVER = "The children ran to the river to escape the heat of the city."


def test_layer_sweep_equals_per_layer_searches(sample_corpus, minilm):
    result = analysis.analyze(minilm, RIVER, logit_lens=False)
    pos = next(t.position for t in result.tokens if t.text == "escape")
    calls = []
    summaries = sweep.layer_sweep(sample_corpus, minilm, result, pos, k=20, progress=lambda d, t: calls.append((d, t)))
    assert [s.layer for s in summaries] == list(range(7))
    assert calls[-1] == (7, 7)
    for s in summaries:
        assert sum(s.histograms["pos"].values()) == 20 and s.predictions is None
    one = search.search(sample_corpus, minilm, result, pos, 3, "embedding", k=20)
    assert summaries[3].histograms["pos"] == {k: v for k, v in sweep.counts([m.token for m in one.matches], "pos").items()}
    heads = sweep.layer_sweep(sample_corpus, minilm, result, pos, kind="heads", heads=[0, 1], k=5)
    assert [s.layer for s in heads] == list(range(1, 7))
    data = sweep.sweep_dict(summaries)
    assert all({"layer", "pos", "dep", "ner"} <= set(entry) for entry in data["layers"])


def test_head_atlas_counts_and_bounds(sample_corpus, minilm):
    atlas = head_atlas.compute(sample_corpus, minilm, sentences=1000)
    assert atlas.sentences == sample_corpus.sentences.num_rows  # fewer than asked: all of them
    assert "det" in atlas.accuracy and atlas.count["det"] >= head_atlas.MIN_COUNT
    for rel, acc in atlas.accuracy.items():
        assert acc.shape == (6, 12) and np.all((0 <= acc) & (acc <= 1))
        offset, base = atlas.baseline[rel]
        assert offset in head_atlas.OFFSETS and 0 <= base <= 1
    # 'det' dependents almost always sit right before their noun: offset +1 wins, and -1 from
    # the noun back to its determiner
    assert atlas.baseline["det"][0] == 1 and atlas.baseline["det"][1] > 0.6
    reverse = "det" + head_atlas.REVERSE
    assert atlas.baseline[reverse][0] == -1 and atlas.count[reverse] == atlas.count["det"]
    data = atlas.to_dict()
    assert head_atlas.HeadAtlas.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_word_attention_is_a_distribution_over_words():
    att = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3, 5)).astype(np.float32)  # [L, H, T, T]
    words = [(0, 1, "det", [1]), (1, 1, "ROOT", [2, 3])]
    word_att = head_atlas._word_attention(att, words, 5)
    assert word_att.shape == (2, 3, 2, 2)
    expected = (att[..., 2, 2] + att[..., 2, 3] + att[..., 3, 2] + att[..., 3, 3]) / 2
    np.testing.assert_allclose(word_att[..., 1, 1], expected, rtol=1e-5)


def test_head_atlas_is_cached_beside_the_corpus(sample_corpus, minilm, monkeypatch):
    first = head_atlas.cached(sample_corpus, minilm, sentences=15)
    assert (sample_corpus.path / "head_atlas_15.json").is_file()
    monkeypatch.setattr(head_atlas, "compute", lambda *a, **k: pytest.fail("recomputed"))
    assert head_atlas.cached(sample_corpus, minilm, sentences=15).to_dict() == first.to_dict()


def test_cli_contracts(sample_corpus_dir):
    def run(*args):
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)

    sweep_out = run(str(ROOT / "scripts/layer_sweep.py"), "--corpus", str(sample_corpus_dir), "--sentence", RIVER,
                    "--position", "7", "--mask", "7", "--k", "10", "--json")
    assert sweep_out.returncode == 0, sweep_out.stderr
    layers = json.loads(sweep_out.stdout)["layers"]
    assert len(layers) == 7 and sum(layers[2]["pos"].values()) == 10
    atlas_out = run(str(ROOT / "scripts/head_atlas.py"), "--corpus", str(sample_corpus_dir), "--sentences", "20", "--json")
    assert atlas_out.returncode == 0, atlas_out.stderr
    data = json.loads(atlas_out.stdout)
    assert data["relations"] and all({"offset", "accuracy"} <= set(b) for b in data["baselines"].values())


def test_head_atlas_scores_heads_by_attention_times_value(sample_corpus, minilm):
    """The norm scores equal the argmax of measures.compute's per-head weights, sentence by sentence."""
    from exbert_core.model import analysis, measures

    atlas = head_atlas.compute(sample_corpus, minilm, sentences=12)
    assert atlas.measures == ("raw", "norm") and set(atlas.accuracy_norm) == set(atlas.accuracy)
    hits, seen = np.zeros((6, 12)), 0
    for sid in head_atlas.sample_sentences(sample_corpus, 12):
        rows = sample_corpus.rows_of_sentence(sid)
        words = head_atlas._words(sample_corpus.token_rows(np.arange(rows.start, rows.stop)))
        result = analysis.analyze(minilm, sample_corpus.sentence_text(sid))
        assert [t.id for t in result.tokens] == list(sample_corpus.sentence_ids(sid))
        weights = measures.compute(minilm, result, "norm")
        per_head = np.stack([weights.heads_at(result.attention, b) for b in range(6)])
        predicted = head_atlas._word_attention(per_head, words, len(result.tokens)).argmax(-1)
        index_of = {w: k for k, (w, _, _, _) in enumerate(words)}
        for k, (word, head, dep, _) in enumerate(words):
            if dep == "det" and head != word and head in index_of:
                hits += predicted[:, :, k] == index_of[head]
                seen += 1
    assert seen == atlas.count["det"]
    np.testing.assert_allclose(atlas.accuracy_norm["det"], hits / seen)
    assert atlas.best_heads("norm")[0][0] == atlas.best_heads("raw")[0][0]  # same relations, own heads
