"""Building a corpus: layout, manifest, metadata, splitting, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_TEXT

from exbert_core.corpus.build import embed, pipeline as build
from exbert_core.corpus.build.pipeline import BuildError, BuildOptions
from exbert_core.corpus.search import store as corpus
from exbert_core.corpus.search.store import CorpusError


def test_layout_and_manifest(sample_corpus_dir, minilm):
    manifest = json.loads((sample_corpus_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 3 and manifest["model"] == "minilm"
    assert manifest["layers"] == 6 and manifest["heads"] == 12
    assert manifest["hidden"] == 384 and manifest["head_dim"] == 32
    assert manifest["spacy"].startswith("en_core_web_sm")
    assert manifest["codes"] == {"embedding": "SQ6", "heads": "SQ8"}
    assert manifest["source"] == {"file": "sample_corpus.txt"}
    assert [s["dir"] for s in manifest["shards"]] == ["shard-0000"]
    shard = sample_corpus_dir / "shard-0000"
    shard_manifest = json.loads((shard / "manifest.json").read_text())
    files = {p.name for p in shard.iterdir()} - {"manifest.json"}
    assert files == set(shard_manifest["files"])
    expected = {f"layer_{layer:02d}.embedding.faiss" for layer in range(7)} | {
        f"layer_{layer:02d}.heads.faiss" for layer in range(1, 7)} | {"sentences.parquet", "tokens.parquet"}
    assert files == expected  # every layer stored, nothing recomputed
    for name, entry in shard_manifest["files"].items():
        assert build.sha256(shard / name) == entry["sha256"] and (shard / name).stat().st_size == entry["bytes"]
    tokens = pq.read_table(shard / "tokens.parquet")
    sentences = pq.read_table(shard / "sentences.parquet")
    assert manifest["tokens"] == shard_manifest["tokens"] == tokens.num_rows
    assert manifest["sentences"] == sentences.num_rows
    assert 20 <= sentences.num_rows <= 40
    # codes: 6 bits per embedding dimension, 8 bits per head dimension, uncompressed (mapped)
    n = tokens.num_rows
    assert (shard / "layer_03.embedding.faiss").stat().st_size - n * 288 < 4000
    assert (shard / "layer_03.heads.faiss").stat().st_size - n * 384 < 1000


def test_special_tokens_are_not_indexed_and_words_align(sample_corpus, minilm):
    table = sample_corpus.tokens.to_pydict()
    assert "[CLS]" not in table["token"] and "[SEP]" not in table["token"]
    for i in range(len(table["token"])):
        sentence = sample_corpus.sentences.column("text")[table["sentence_id"][i]].as_py()
        word = sentence[table["word_start"][i] : table["word_end"][i]]
        assert word == table["word"][i]
    ids = sample_corpus.sentence_ids(0)
    assert ids[0] == minilm.tokenizer.cls_token_id and ids[-1] == minilm.tokenizer.sep_token_id
    # 'escape' in the river sentence is a verb, 'Lisbon' a place.
    rows = {t: i for i, t in enumerate(table["token"])}
    assert table["pos"][rows["escape"]] == "VERB"
    assert table["ner"][rows["lisbon"]] == "GPE"


def test_html_in_corpus_text_stays_text(sample_corpus):
    texts = sample_corpus.sentences.column("text").to_pylist()
    assert any('<script>alert("x")</script>' in t for t in texts)


def test_long_sentences_are_split_never_dropped(minilm, nlp, tmp_path):
    long = SAMPLE_TEXT.split("\n\n")[-1]
    folder = build.build(long, "long", tmp_path, minilm, options=BuildOptions(max_tokens=24), nlp=nlp)
    loaded = corpus.load(str(folder))
    pieces = loaded.sentences.column("ids").to_pylist()
    assert len(pieces) > 3 and all(len(p) <= 24 for p in pieces)
    table = loaded.tokens.to_pydict()
    words = dict.fromkeys(zip(table["sentence_id"], table["word_index"], table["word"]))
    assert "".join(w for _, _, w in words) == "".join(long.split())  # every word is indexed, once


def test_interrupted_build_leaves_nothing_loadable_and_reruns_clean(minilm, nlp, tmp_path, monkeypatch):
    calls = 0
    real_heads = embed.ShardCodes.heads

    def interrupted(self, layer, x):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        real_heads(self, layer, x)

    monkeypatch.setattr(embed.ShardCodes, "heads", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build.build(SAMPLE_TEXT, "cut", tmp_path, minilm, nlp=nlp)
    assert not (tmp_path / "cut").exists()
    with pytest.raises(CorpusError, match="No corpus 'cut'"):
        corpus.load(str(tmp_path / "cut"))
    partials = list(tmp_path.glob("cut.partial*"))
    assert len(partials) == 1 and not (partials[0] / "manifest.json").exists()
    with pytest.raises(CorpusError):
        corpus.load(str(partials[0]))
    monkeypatch.setattr(embed.ShardCodes, "heads", real_heads)
    folder = build.build(SAMPLE_TEXT, "cut", tmp_path, minilm, nlp=nlp)
    assert corpus.load(str(folder)).tokens.num_rows > 0
    assert not list(tmp_path.glob("cut.partial*"))  # the partial became the corpus


def _many_paragraphs(n: int) -> str:
    return "\n\n".join(SAMPLE_TEXT.split("\n\n")[i % len(SAMPLE_TEXT.split("\n\n"))] for i in range(n))


def test_an_interrupted_sharded_build_resumes_only_the_missing_shards(minilm, nlp, tmp_path, monkeypatch):
    text = _many_paragraphs(60)
    options = BuildOptions(shard_tokens=1000)
    real = build.build_shard
    built: list[int] = []

    def stop_after_two(folder, index, *args, **kwargs):
        if index == 2:
            raise KeyboardInterrupt
        built.append(index)
        return real(folder, index, *args, **kwargs)

    monkeypatch.setattr(build, "build_shard", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        build.build(text, "resume", tmp_path, minilm, nlp=nlp, options=options)
    assert built == [0, 1] and not (tmp_path / "resume").exists()
    kept = (tmp_path / "resume.partial" / "shard-0001" / "manifest.json").stat().st_mtime_ns

    built.clear()
    monkeypatch.setattr(build, "build_shard", lambda folder, index, *a, **k: (built.append(index), real(folder, index, *a, **k))[1])
    folder = build.build(text, "resume", tmp_path, minilm, nlp=nlp, options=options)
    assert built and 0 not in built and 1 not in built  # finished shards were kept
    assert (folder / "shard-0001" / "manifest.json").stat().st_mtime_ns == kept
    resumed = corpus.load(str(folder))
    clean = corpus.load(str(build.build(text, "clean", tmp_path, minilm, nlp=nlp, options=options)))
    assert len(resumed.shards) == len(clean.shards) >= 3
    assert resumed.tokens.to_pydict() == clean.tokens.to_pydict()
    for kind, layer in (("embedding", 2), ("heads", 3)):
        for a, b in zip(resumed.shards, clean.shards):
            assert np.array_equal(a.index(kind, layer).codes, b.index(kind, layer).codes)


def test_a_build_of_other_options_does_not_resume(minilm, nlp, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "build_shard", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        build.build(SAMPLE_TEXT, "other", tmp_path, minilm, nlp=nlp)
    plan = json.loads((tmp_path / "other.partial" / "plan.json").read_text())
    monkeypatch.undo()
    folder = build.build(SAMPLE_TEXT, "other", tmp_path, minilm, nlp=nlp, options=BuildOptions(max_tokens=32))
    assert plan["options"]["max_tokens"] == 128
    assert json.loads((folder / "manifest.json").read_text())["options"]["max_tokens"] == 32


def test_shards_share_one_quantiser_and_global_ids(minilm, nlp, tmp_path):
    text = _many_paragraphs(40)
    one = corpus.load(str(build.build(text, "one", tmp_path, minilm, nlp=nlp)))
    many = corpus.load(str(build.build(text, "many", tmp_path, minilm, nlp=nlp, options=BuildOptions(shard_tokens=1000))))
    assert len(one.shards) == 1 and len(many.shards) >= 2
    assert (one.path / "quantiser.npz").read_bytes() == (many.path / "quantiser.npz").read_bytes()
    assert one.num_tokens == many.num_tokens and one.num_sentences == many.num_sentences
    assert one.tokens.to_pydict() == many.tokens.to_pydict()  # global sentence ids, same order
    for sid in (0, many.shards[1].first_sentence, many.num_sentences - 1):
        assert one.sentence_text(sid) == many.sentence_text(sid)
        assert list(one.rows_of_sentence(sid)) == list(many.rows_of_sentence(sid))
    # What a query asks of the store, for rows in the first and the last shard, in one table.
    rows = np.array([many.num_tokens - 1, 0, many.shards[1].first_token, 1])
    assert one.matched_sentences(rows).to_pydict() == many.matched_sentences(rows).to_pydict()
    assert many.matched_sentences(rows).column("sentence_id").to_pylist()[-1] == many.num_sentences - 1


def test_rebuild_replaces_a_corpus(minilm, nlp, tmp_path):
    build.build("One sentence only.", "swap", tmp_path, minilm, nlp=nlp)
    build.build("First sentence. Second sentence here.", "swap", tmp_path, minilm, nlp=nlp)
    assert corpus.load(str(tmp_path / "swap")).sentences.num_rows == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [build.PARSES, "swap"]


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "x" * 65, "with space"])
def test_bad_corpus_names(minilm, tmp_path, name):
    with pytest.raises(BuildError, match="Corpus name"):
        build.build("Hello there.", name, tmp_path, minilm)


def test_text_without_sentences(minilm, nlp, tmp_path):
    with pytest.raises(BuildError, match="no sentences"):
        build.build("   \n\n  ", "empty", tmp_path, minilm, nlp=nlp)


def test_concurrent_builds_of_one_name_do_not_clobber_each_other(minilm, nlp, tmp_path):
    import threading

    errors: list[BaseException] = []

    def build_twice() -> None:
        try:
            build.build(SAMPLE_TEXT, "twice", tmp_path, minilm, nlp=nlp)
        except BaseException as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    threads = [threading.Thread(target=build_twice) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert corpus.load(str(tmp_path / "twice")).tokens.num_rows > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [build.PARSES, "twice"]


REPLACE_CHILD = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from exbert_core.corpus.build import pipeline as build
from exbert_core.model import loading
build.build({text!r}, "raced", Path({out!r}), loading.load("minilm"))
print("built")
"""


def test_two_processes_building_one_name_at_once_both_finish(tmp_path):
    """The file lock serialises them: no 'Directory not empty', and the result loads."""
    import subprocess
    import sys

    from conftest import ROOT

    code = REPLACE_CHILD.format(root=str(ROOT), text=SAMPLE_TEXT, out=str(tmp_path))
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = [c.communicate(timeout=600) for c in children]
    assert [c.returncode for c in children] == [0, 0], [o[1][-2000:] for o in outputs]
    assert all("built" in o[0] for o in outputs)
    assert corpus.load(str(tmp_path / "raced")).num_tokens > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [build.PARSES, "raced"]


def test_abandoned_partial_builds_of_other_names_are_cleaned(minilm, nlp, tmp_path):
    import os
    import time

    old, fresh = tmp_path / "gone.partial", tmp_path / "recent.partial"
    for folder in (old, fresh):
        (folder / "shard-0000.partial").mkdir(parents=True)
    day_ago = time.time() - build.PARTIAL_TTL_S - 60
    os.utime(old, (day_ago, day_ago))
    build.build("One sentence here.", "other", tmp_path, minilm, nlp=nlp)
    assert not old.exists() and fresh.exists()  # a recent one may still be running elsewhere


def test_the_estimate_tells_tokens_disk_and_memory_and_refuses_what_does_not_fit(sample_corpus, minilm, monkeypatch, tmp_path):
    from exbert_core.corpus.build import estimate

    guess = estimate.estimate(minilm.info, len(SAMPLE_TEXT), tmp_path)
    actual_bytes = sum(p.stat().st_size for p in sample_corpus.path.rglob("*") if p.is_file())
    assert 0.5 < guess.tokens / sample_corpus.num_tokens < 2
    assert 0.5 < guess.disk_bytes / actual_bytes < 2
    assert guess.problem is None and "tokens" in guess.summary() and "MB on disk" in guess.summary()
    # Before any build with the model here: the estimate of the build's own process (torch, spaCy,
    # one parse and its batches; the weights are memory-mapped), said to be an estimate.
    assert guess.memory_bytes == estimate.child_peak_bytes(minilm.info) and not guess.memory_measured
    assert 400e6 < guess.memory_bytes < 1.5e9 and "estimated before the first build" in guess.summary()
    measured = estimate.estimate(minilm.info, len(SAMPLE_TEXT), tmp_path, peak_bytes=612_000_000,
                                 memory_problem="No room.")
    assert measured.memory_bytes == 612_000_000 and "612 MB of memory" in measured.summary()
    assert measured.problem == "No room."
    monkeypatch.setenv("EXBERT_MEMORY_BUDGET", "2GB")
    huge = estimate.estimate(minilm.info, 10**15, tmp_path)
    assert "on disk" in huge.problem
