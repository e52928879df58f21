"""Loading a corpus: checks against corruption and model mismatch, lazy and recomputed layers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tiny_models import tiny

from exbert_core.corpus import build, store as corpus, vectors
from exbert_core.corpus.store import CorpusError


@pytest.fixture()
def copy_of_sample(sample_corpus_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(sample_corpus_dir, target)
    return target


def test_missing_corpus_names_the_build_command(tmp_path):
    with pytest.raises(CorpusError, match="build_corpus.py --source alice"):
        corpus.load(str(tmp_path / "nothing"))


def test_corrupted_index_gives_a_clear_error(copy_of_sample, minilm):
    path = copy_of_sample / "layer_03.heads.faiss.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded = corpus.load(str(copy_of_sample))  # metadata is fine
    with pytest.raises(CorpusError, match="layer_03.heads.faiss.zst is missing or corrupted.*Rebuild"):
        loaded.index("heads", 3, minilm)
    loaded.index("heads", 4, minilm)  # other layers still work


def test_truncated_index_with_matching_checksum_is_caught(copy_of_sample, minilm):
    """A file replaced wholesale (checksum updated) but unreadable must not crash faiss."""
    path = copy_of_sample / "layer_02.embedding.faiss.zst"
    path.write_bytes(path.read_bytes()[:1000])
    manifest = json.loads((copy_of_sample / "manifest.json").read_text())
    manifest["files"][path.name]["sha256"] = build.sha256(path)
    (copy_of_sample / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="cannot read|holds"):
        corpus.load(str(copy_of_sample)).index("embedding", 2, minilm)


@pytest.mark.parametrize("damage", ["manifest", "tokens", "missing_tokens"])
def test_damaged_metadata(copy_of_sample, damage):
    if damage == "manifest":
        (copy_of_sample / "manifest.json").write_text("{not json")
    elif damage == "tokens":
        (copy_of_sample / "tokens.parquet").write_bytes(b"garbage")
    else:
        (copy_of_sample / "tokens.parquet").unlink()
    with pytest.raises(CorpusError, match="Rebuild"):
        corpus.load(str(copy_of_sample))


def test_mismatched_model_names_both_models(sample_corpus, minilm):
    other = tiny("bert", minilm.tokenizer)
    with pytest.raises(CorpusError, match="built with model 'minilm'.*not 'tiny-bert'"):
        sample_corpus.check_model(other)


def test_layer_and_kind_bounds(sample_corpus, minilm):
    with pytest.raises(ValueError):
        sample_corpus.index("heads", 0, minilm)
    with pytest.raises(ValueError):
        sample_corpus.index("embedding", 7, minilm)
    with pytest.raises(ValueError):
        sample_corpus.index("attention", 2, minilm)


def test_recomputed_layers_match_a_build_that_stores_them(sample_corpus, minilm, nlp, tmp_path):
    """Layers 0-1 are rebuilt at load time from token ids; they must equal stored vectors."""
    from conftest import SAMPLE_TEXT

    stored = corpus.load(
        str(build.build(SAMPLE_TEXT, "all", tmp_path, minilm, nlp=nlp, options=build.BuildOptions(recompute_layers=0)))
    )
    assert 1 in stored.manifest["indexes"]["heads"]["layers"]
    for kind, layer in (("embedding", 1), ("heads", 1)):
        a = sample_corpus.index(kind, layer, minilm)
        b = stored.index(kind, layer, minilm)
        assert a.ntotal == b.ntotal == sample_corpus.tokens.num_rows
        xa = a.reconstruct_n(0, a.ntotal)
        xb = b.reconstruct_n(0, b.ntotal)
        # both are quantised (8 and 6/8 bits) versions of the same unit vectors
        cos = np.sum(xa * xb, axis=1) / (np.linalg.norm(xa, axis=1) * np.linalg.norm(xb, axis=1))
        assert cos.min() > 0.99
    x0 = sample_corpus.index("embedding", 0, minilm).reconstruct_n(0, 5)
    assert np.allclose(np.linalg.norm(x0, axis=1), 1.0, atol=0.02)


def test_available_lists_complete_corpora_only(tmp_path, monkeypatch, sample_corpus_dir):
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    shutil.copytree(sample_corpus_dir, tmp_path / "corpora" / "good")
    shutil.copytree(sample_corpus_dir, tmp_path / "corpora" / "half.partial-123")
    (tmp_path / "corpora" / "empty").mkdir()
    assert corpus.available() == ["good"]
    assert corpus.load("good").name == "sample"
    with pytest.raises(CorpusError, match="use letters"):
        corpus.load("bad name!")


def test_vectors_module_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        vectors.add(vectors.new_index(4, "SQ8", np.eye(4, dtype=np.float32)), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="subset"):
        vectors.head_query(np.ones((3, 2), np.float32), [])
    q = vectors.head_query(np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]), [0, 2])
    assert np.allclose(q, [0.6, 0.8, 0, 0, 0, 1])


def test_six_bit_index_round_trips_through_disk_as_eight_bit(tmp_path):
    rng = np.random.default_rng(1)
    x = vectors.unit_rows(rng.normal(size=(3000, 48)))
    six = vectors.new_index(48, "SQ6", x)
    vectors.add(six, x)
    vectors.save(six, tmp_path / "six.faiss.zst")
    assert (tmp_path / "six.faiss.zst").stat().st_size < 3000 * 48 * 6 / 8 + 2000
    loaded = vectors.load(tmp_path / "six.faiss.zst")
    assert loaded.ntotal == 3000 and loaded.sq.qtype == faiss_qt8()
    before, after = six.reconstruct_n(0, 3000), loaded.reconstruct_n(0, 3000)
    step = (before.max(0) - before.min(0)) / 63
    assert np.all(np.abs(before - after) <= step / 2 + 1e-6)  # 8-bit rounding of 6-bit centres
    q = x[:20]
    same = [len(set(a) & set(b)) / 10 for a, b in zip(six.search(q, 10)[1], loaded.search(q, 10)[1])]
    assert np.mean(same) > 0.9
    with pytest.raises(ValueError, match="not an exbert index"):
        (tmp_path / "bad").write_bytes(b"junk")
        vectors.load(tmp_path / "bad")


def faiss_qt8():
    import faiss

    return faiss.ScalarQuantizer.QT_8bit
