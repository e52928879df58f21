"""Opening a corpus: manifests validated by type, damaged or swapped files refused with the
"rebuild" message (never a crash, never a silently wrong answer), memory-mapped codes, model checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLE_TEXT
from tiny_models import tiny

from exbert_core import paths
from exbert_core.corpus import evaluation
from exbert_core.corpus.build import codes_writer
from exbert_core.corpus.format import codes, manifest as corpus_manifest, vectors
from exbert_core.corpus.format.manifest import sha256
from exbert_core.corpus.search import codes_reader, store as corpus
from exbert_core.errors import CorpusError, InputError

SHARD = "shard-0000"


@pytest.fixture()
def copy_of_sample(sample_corpus_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(sample_corpus_dir, target)
    return target


def reseal(folder, file):
    """Update the checksums of ``file`` in its shard's manifest and of that manifest in the
    corpus manifest: what a careless tool (or an attacker) would do after changing a file."""
    shard = folder / SHARD
    m = json.loads((shard / "manifest.json").read_text())
    path = shard / file
    m["files"][file] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    (shard / "manifest.json").write_text(json.dumps(m))
    top = json.loads((folder / "manifest.json").read_text())
    top["shards"][0]["manifest_sha256"] = sha256(shard / "manifest.json")
    (folder / "manifest.json").write_text(json.dumps(top))


def test_missing_corpus_names_the_build_command(tmp_path):
    with pytest.raises(CorpusError, match="build_corpus.py --source alice"):
        corpus.load(str(tmp_path / "nothing"))


def test_an_interrupted_build_is_named_with_the_command_that_resumes_it(minilm, nlp, tmp_path, monkeypatch, capsys):
    """The probe's case: a build of several shards killed after two. The hint says it was
    interrupted and quotes the command it was started with (its own text, shard size and --out
    folder), not another source (that such a command resumes the build: test_corpus_build,
    test_shards_ray). Without --out the quoted command would start a new build in the data dir."""
    import runpy

    from exbert_core.corpus.build import pipeline as build

    text = "\n\n".join([SAMPLE_TEXT] * 6)  # about 2,400 tokens: 3 shards of 1,000 tokens
    options = build.BuildOptions(shard_tokens=1000)
    real = build.build_shard

    def killed_at_two(folder, index, *args, **kwargs):
        if index == 2:
            raise KeyboardInterrupt  # as kill -9 leaves it: shards 0 and 1 done, 2 cut off
        return real(folder, index, *args, **kwargs)

    monkeypatch.setattr(build, "build_shard", killed_at_two)
    with pytest.raises(KeyboardInterrupt):
        build.build(text, "killme", tmp_path, minilm, nlp=nlp, options=options, source={"file": "my notes.txt"})
    monkeypatch.undo()
    with pytest.raises(CorpusError) as err:
        corpus.load(str(tmp_path / "killme"))
    message = str(err.value)
    assert "A build of corpus 'killme' was interrupted (2 shard(s) finished" in message and "--source" not in message
    assert message.endswith("The same command resumes it: python scripts/build_corpus.py --text 'my notes.txt' "
                            f"--name killme --out {tmp_path} --model minilm --shard-tokens 1000")
    monkeypatch.setattr(sys, "argv", ["search.py", "--corpus", str(tmp_path / "killme"), "--sentence", "Hi.",
                                      "--position", "1", "--layer", "1"])
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts/search.py"), run_name="__main__")
    assert done.value.code == 2 and capsys.readouterr().err.strip() == f"error: {message}"
    data = tmp_path / "data"  # the same build in the data dir's own folder: the command needs no --out
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(data))
    shutil.move(tmp_path / "killme.partial", paths.corpora_dir() / "killme.partial")
    with pytest.raises(CorpusError, match="resumes it: python scripts/build_corpus.py --text 'my notes.txt' "
                                          "--name killme --model minilm --shard-tokens 1000$"):
        corpus.load("killme")


def test_corrupted_index_gives_a_clear_error(copy_of_sample, minilm):
    path = copy_of_sample / SHARD / "layer_03.heads.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded = corpus.load(str(copy_of_sample))  # manifests and metadata are fine
    with pytest.raises(CorpusError, match="layer_03.heads.faiss is missing or corrupted.*Rebuild"):
        loaded.shards[0].index("heads", 3)
    loaded.shards[0].index("heads", 4)  # other layers still work


@pytest.mark.parametrize("damage", ["truncated", "huge header", "swapped kinds", "other layer"])
def test_damaged_index_with_matching_checksum_is_caught(copy_of_sample, damage):
    """A file replaced wholesale (checksums updated) must be refused before faiss reads it."""
    shard = copy_of_sample / SHARD
    target = shard / "layer_02.embedding.faiss"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    elif damage == "huge header":
        data = bytearray(target.read_bytes())
        data[8:16] = (1 << 60).to_bytes(8, "little")  # ntotal
        target.write_bytes(bytes(data))
    elif damage == "swapped kinds":
        target.write_bytes((shard / "layer_02.heads.faiss").read_bytes())
    else:
        target.write_bytes((shard / "layer_03.embedding.faiss").read_bytes())  # fine: same shape
    reseal(copy_of_sample, target.name)
    opened = corpus.load(str(copy_of_sample))
    if damage == "other layer":  # same type and shape: loads (its checksum is the only guard)
        assert opened.shards[0].index("embedding", 2).index.ntotal == opened.num_tokens
        return
    with pytest.raises(CorpusError, match="layer_02.embedding.faiss cannot be read.*Rebuild"):
        opened.shards[0].index("embedding", 2)


def test_a_file_truncated_while_mapped_is_an_error_not_a_crash(sample_corpus_dir, tmp_path):
    """Reading a mapped file that shrank would raise SIGBUS: run it in a child process, which
    must exit normally with the clear error."""
    folder = tmp_path / "live"
    shutil.copytree(sample_corpus_dir, folder)
    script = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from exbert_core.corpus.search import scan, store
from exbert_core.errors import CorpusError
c = store.load({str(folder)!r})
mapped = c.shards[0].index("embedding", 2)
q = np.zeros(mapped.index.d, np.float32); q[0] = 1
scan.top_k(mapped, "embedding", mapped.index.ntotal, q, (), 5)
path = c.shards[0].path / "layer_02.embedding.faiss"
with open(path, "r+b") as f:
    f.truncate(200)
try:
    c.shards[0].index("embedding", 2)
except CorpusError as err:
    print("refused:", err)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "changed on disk" in done.stdout


@pytest.mark.parametrize("field, value", [
    ("layers", -1), ("layers", "x"), ("heads", 0), ("codes", {"embedding": 5}), ("model", 7),
    ("shards", []), ("tokens", 3), ("format_version", 2), ("shards", [{"dir": "../x"}]),
])
def test_manifest_is_validated_by_type(copy_of_sample, field, value):
    path = copy_of_sample / "manifest.json"
    m = json.loads(path.read_text())
    m[field] = value
    path.write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="Rebuild"):
        corpus.load(str(copy_of_sample))


def test_the_rebuild_hint_names_the_corpus_own_source(copy_of_sample):
    (copy_of_sample / SHARD / "tokens.parquet").write_bytes(b"garbage")
    opened = corpus.load(str(copy_of_sample))
    with pytest.raises(CorpusError) as err:
        opened.shards[0].tokens()
    assert "--text sample_corpus.txt" in str(err.value) and "--source alice" not in str(err.value)
    assert corpus_manifest.rebuild_hint("x", {"name": "brown"}, "smollm2").endswith("--source brown --name x --model smollm2")
    sampled = {"hf_dataset": "wikitext", "config": "wikitext-103-raw-v1", "split": "validation",
               "text_column": "text", "max_tokens_total": 5000}
    assert corpus_manifest.rebuild_hint("w", sampled, "minilm").endswith(
        "--hf-dataset wikitext --hf-config wikitext-103-raw-v1 --split validation --text-column text "
        "--max-tokens-total 5000 --name w --model minilm")


@pytest.mark.parametrize("damage", ["manifest", "tokens", "missing_tokens", "truncated_tokens", "shard_manifest"])
def test_damaged_metadata(copy_of_sample, damage):
    shard = copy_of_sample / SHARD
    if damage == "manifest":
        (copy_of_sample / "manifest.json").write_text("{not json")
    elif damage == "tokens":
        (shard / "tokens.parquet").write_bytes(b"garbage")
    elif damage == "missing_tokens":
        (shard / "tokens.parquet").unlink()
    elif damage == "truncated_tokens":  # a truncated Parquet whose checksum was updated
        data = (shard / "tokens.parquet").read_bytes()
        (shard / "tokens.parquet").write_bytes(data[: len(data) // 2])
        reseal(copy_of_sample, "tokens.parquet")
    else:
        (shard / "manifest.json").write_text("[]")
    with pytest.raises(CorpusError, match="Rebuild"):
        corpus.load(str(copy_of_sample)).shards[0].tokens()


def test_an_old_format_corpus_asks_for_a_rebuild(copy_of_sample):
    m = json.loads((copy_of_sample / "manifest.json").read_text())
    (copy_of_sample / "manifest.json").write_text(json.dumps({**m, "format_version": 2}))
    with pytest.raises(CorpusError, match="has format 2; this version reads format 3.*Rebuild"):
        corpus.load(str(copy_of_sample))


def test_mismatched_model_names_both_models(sample_corpus, minilm):
    other = tiny("bert", minilm.tokenizer)
    with pytest.raises(CorpusError, match="built with model 'minilm', not 'tiny-bert'"):
        sample_corpus.check_model(other)


def test_same_name_other_dimensions_says_so(sample_corpus, minilm):
    other = tiny("bert", minilm.tokenizer)
    other.info = type(other.info)(**{**other.info.__dict__, "name": "minilm"})
    with pytest.raises(CorpusError, match="different version of 'minilm'.*Rebuild"):
        sample_corpus.check_model(other)


def test_layer_and_kind_bounds(sample_corpus):
    with pytest.raises(InputError):
        sample_corpus.check_layer("heads", 0)
    with pytest.raises(InputError):
        sample_corpus.check_layer("embedding", 7)
    with pytest.raises(InputError):
        sample_corpus.check_layer("attention", 2)
    sample_corpus.check_layer("embedding", 0)


@pytest.mark.parametrize("kind, layer", [("embedding", 0), ("embedding", 1), ("heads", 1), ("embedding", 6), ("heads", 6)])
def test_every_layer_is_stored_and_decodes_to_the_exact_vectors(sample_corpus, minilm, kind, layer):
    """Layers 0..L (embeddings) and 1..L (heads) are all on disk; decoded codes are the exact unit
    vectors up to quantisation."""
    exact = evaluation.exact_vectors(sample_corpus, minilm, kind, layer)
    mapped = sample_corpus.shards[0].index(kind, layer)
    n = sample_corpus.num_tokens
    decoded = mapped.index.reconstruct_n(0, mapped.index.ntotal)
    if kind == "heads":  # head-major rows -> token rows
        decoded = decoded.reshape(12, n, 32).transpose(1, 0, 2).reshape(n, 384)
        cos = np.einsum("nhd,nhd->nh", decoded.reshape(n, 12, 32), exact.reshape(n, 12, 32))
        cos /= np.linalg.norm(decoded.reshape(n, 12, 32), axis=-1)
    else:
        cos = np.sum(decoded * exact, axis=1) / np.linalg.norm(decoded, axis=1)
    assert cos.min() > 0.98 and np.median(cos) > 0.995


def test_codes_are_memory_mapped_not_copied(sample_corpus):
    mapped = sample_corpus.shards[0].index("embedding", 3)
    assert not mapped.index.codes.is_owned  # faiss reads the mapped file
    assert not mapped.codes.flags.writeable and mapped.codes.shape == (sample_corpus.num_tokens, 288)


def test_available_lists_complete_corpora_only(tmp_path, monkeypatch, sample_corpus_dir):
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    shutil.copytree(sample_corpus_dir, tmp_path / "corpora" / "good")
    shutil.copytree(sample_corpus_dir, tmp_path / "corpora" / "half.partial")
    (tmp_path / "corpora" / "empty").mkdir()
    assert corpus.available() == ["good"]
    assert corpus.load("good").name == "sample"
    with pytest.raises(CorpusError, match="use letters"):
        corpus.load("bad name!")


def test_vectors_module_builds_head_queries():
    with pytest.raises(ValueError, match="subset"):
        vectors.head_query(np.ones((3, 2), np.float32), [])
    q = vectors.head_query(np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]), [0, 2])
    assert np.allclose(q, [0.6, 0.8, 0, 0, 0, 1])


@pytest.mark.parametrize("factory, dim", [("SQ6", 48), ("SQ8", 32)])
def test_code_files_round_trip_and_refuse_other_shapes(tmp_path, factory, dim):
    rng = np.random.default_rng(1)
    x = vectors.unit_rows(rng.normal(size=(3000, dim)))
    ranges = np.stack([x.min(0), x.max(0)])
    reference = codes.empty_index(factory, ranges)
    part = codes_writer.CodePart("embedding", 0, factory, ranges, 1, reference.sq.code_size, 0)
    writer = codes_writer.StagedCodes(tmp_path, [part], 100)
    order = rng.permutation(3000)
    writer.write(order[:1000], reference.sa_encode(x[order[:1000]]))
    writer.write(order[:0], reference.sa_encode(x[:0]))
    writer.write(order[1000:], reference.sa_encode(x[order[1000:]]))
    writer.finish(3000)
    mapped = codes_reader.open_mapped(tmp_path / part.file, factory, dim, 3000)
    reference.add(x)
    assert np.array_equal(mapped.index.search(x[:20], 10)[1], reference.search(x[:20], 10)[1])
    with pytest.raises(ValueError, match="bytes"):
        codes_reader.open_mapped(tmp_path / part.file, factory, dim, 2999)
    with pytest.raises(ValueError):
        codes_reader.open_mapped(tmp_path / part.file, "SQ8" if factory == "SQ6" else "SQ6", dim, 3000)


def test_parquet_metadata_is_read_once_and_kept_in_the_budget(copy_of_sample):
    from exbert_core import memory

    opened = corpus.load(str(copy_of_sample))
    first = opened.shards[0].tokens()
    assert opened.shards[0].tokens() is first  # kept
    assert any(str(copy_of_sample.resolve()) in str(k) for k in memory.KEPT.keys())
    assert first.num_rows == pq.read_metadata(copy_of_sample / SHARD / "tokens.parquet").num_rows
