"""Building a corpus: layout, manifest, metadata, splitting, atomicity."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_TEXT

from exbert_core.corpus import build, store as corpus, vectors
from exbert_core.corpus.build import BuildError, BuildOptions
from exbert_core.corpus.store import CorpusError


def test_layout_and_manifest(sample_corpus_dir, minilm):
    manifest = json.loads((sample_corpus_dir / "manifest.json").read_text())
    assert manifest["model"] == "minilm" and manifest["layers"] == 6 and manifest["heads"] == 12
    assert manifest["hidden"] == 384 and manifest["head_dim"] == 32
    assert manifest["spacy"].startswith("en_core_web_sm")
    assert manifest["indexes"]["embedding"] == {"factory": "SQ6", "metric": "inner_product", "layers": [2, 3, 4, 5, 6]}
    assert manifest["indexes"]["heads"]["factory"] == "SQ8"
    files = {p.name for p in sample_corpus_dir.iterdir()} - {"manifest.json"}
    assert files == set(manifest["files"])
    assert {"sentences.parquet", "tokens.parquet", "layer_02.embedding.faiss.zst", "layer_06.heads.faiss.zst"} <= files
    for name, entry in manifest["files"].items():
        assert build.sha256(sample_corpus_dir / name) == entry["sha256"]
    tokens = pq.read_table(sample_corpus_dir / "tokens.parquet")
    sentences = pq.read_table(sample_corpus_dir / "sentences.parquet")
    assert manifest["tokens"] == tokens.num_rows and manifest["sentences"] == sentences.num_rows
    assert 20 <= sentences.num_rows <= 40


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
    real_add = vectors.add

    def interrupted_add(index, x):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        real_add(index, x)

    monkeypatch.setattr(vectors, "add", interrupted_add)
    with pytest.raises(KeyboardInterrupt):
        build.build(SAMPLE_TEXT, "cut", tmp_path, minilm, nlp=nlp)
    assert not (tmp_path / "cut").exists()
    with pytest.raises(CorpusError, match="No corpus 'cut'"):
        corpus.load(str(tmp_path / "cut"))
    partials = list(tmp_path.glob("cut.partial-*"))
    assert len(partials) == 1 and not (partials[0] / "manifest.json").exists()
    with pytest.raises(CorpusError):
        corpus.load(str(partials[0]))
    monkeypatch.setattr(vectors, "add", real_add)
    folder = build.build(SAMPLE_TEXT, "cut", tmp_path, minilm, nlp=nlp)
    assert corpus.load(str(folder)).tokens.num_rows > 0
    assert not list(tmp_path.glob("cut.partial-*"))  # the abandoned partial was cleaned up


def test_rebuild_replaces_a_corpus(minilm, nlp, tmp_path):
    build.build("One sentence only.", "swap", tmp_path, minilm, nlp=nlp)
    build.build("First sentence. Second sentence here.", "swap", tmp_path, minilm, nlp=nlp)
    assert corpus.load(str(tmp_path / "swap")).sentences.num_rows == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap"]


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twice"]
