"""Hostile and clumsy inputs, one table: each must give a clear one-line refusal (the CLI: `error:`
and exit code 2; the core: an ExbertError whose message is one line) or a correct answer, never a
traceback. The command-line cases run the scripts as users do; the core cases call the core.

Also: the README's "Limits" table is the one generated from ``exbert_core/limits.py``.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import BertConfig

from conftest import ROOT
from exbert_core import limits
from exbert_core.corpus.build import parsing, sources, text
from exbert_core.corpus.format.manifest import sha256
from exbert_core.corpus.search import query as search, store
from exbert_core.errors import BuildError, CorpusError, ExbertError, InputError, InvalidText, ModelLoadError
from exbert_core.limits import MAX_K, MAX_TEXT_BYTES, MAX_TOP_K, MAX_UPLOAD_MB
from exbert_core.model import analysis, loading

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space, non-joiner, joiner, word joiner, BOM
SURROGATE = "caf\udce9 au lait"  # the byte 0xe9 of Latin-1 "café", as Python decodes a bad argv


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_corpus_dir) -> SimpleNamespace:
    """Inputs on disk: a corpus, texts, and a model folder whose config describes 2.5B parameters."""
    tmp = tmp_path_factory.mktemp("hostile")
    zero_width = tmp / "zero-width.txt"
    zero_width.write_text(f"{ZERO_WIDTH}\n{ZERO_WIDTH * 3}\n\n{ZERO_WIDTH}\n", encoding="utf-8")
    too_large = tmp / "too-large.txt"
    too_large.write_bytes(b"word " * (MAX_TEXT_BYTES // 5) + b"!")  # one byte over the limit
    big_model = tmp / "big-model"
    BertConfig(hidden_size=2048, num_hidden_layers=48, num_attention_heads=16, intermediate_size=8192,
               architectures=["BertForMaskedLM"]).save_pretrained(big_model)
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    return SimpleNamespace(corpus=str(sample_corpus_dir), sample=str(ROOT / "tests/data/sample_corpus.txt"),
                           zero_width=str(zero_width), too_large=str(too_large), big_model=str(big_model),
                           out=str(tmp / "corpora"), folder=str(tmp), missing=str(tmp / "missing.txt"),
                           dead_address=f"127.0.0.1:{dead_port}")


S = "Alice ran to a small house."  # [CLS] alice ran to a small house . [SEP]: positions 0-8
SEARCH = ["--corpus", "{corpus}", "--sentence", S, "--layer", "2"]
SWEEP = ["--corpus", "{corpus}", "--sentence", S]
BUILD = ["--text", "{sample}", "--name", "hostile", "--out", "{out}"]

# (case, script, arguments, what the one-line error says); "{name}" is filled from `files`.
CLI_CASES = [
    ("top-k negative", "analyze.py", ["--sentence", S, "--top-k", "-5"], f"-5 is out of range: give a number from 1 to {MAX_TOP_K}"),
    ("top-k a billion", "analyze.py", ["--sentence", S, "--top-k", "1000000000"], "1,000,000,000 is out of range"),
    ("top-k not a number", "analyze.py", ["--sentence", S, "--top-k", "5x"], "'5x' is not a whole number"),
    ("mask negative", "analyze.py", ["--sentence", S, "--mask", "-1"], "-1 is out of range"),
    ("mask past the end", "analyze.py", ["--sentence", S, "--mask", "9"], "Token position 9 is out of range"),
    ("mask [CLS]", "analyze.py", ["--sentence", S, "--mask", "0"], "special token [CLS], which cannot be masked"),
    ("mask [SEP]", "analyze.py", ["--sentence", S, "--mask", "8"], "special token [SEP], which cannot be masked"),
    ("lone surrogate", "analyze.py", ["--sentence", SURROGATE], "lone surrogate"),
    ("only zero-width characters", "analyze.py", ["--sentence", ZERO_WIDTH], "The sentence is empty"),
    ("sentence too long", "analyze.py", ["--sentence", "word " * 1001], "at most 5,000 are analysed"),
    ("hub model not allowed", "analyze.py", ["--sentence", S, "--model", "someone/any-model"], "EXBERT_HUB_MODELS"),
    ("model too large", "analyze.py", ["--sentence", S, "--model", "{big_model}"], "2,485M parameters"),
    ("sweep lone surrogate", "layer_sweep.py", [*SWEEP[:3], SURROGATE, "--position", "1"], "lone surrogate"),
    ("sweep from [CLS]", "layer_sweep.py", [*SWEEP, "--position", "0"], "special token [CLS], which cannot be searched from"),
    ("sweep k 0", "layer_sweep.py", [*SWEEP, "--position", "1", "--k", "0"], f"from 1 to {MAX_K}"),
    ("sweep k too many", "layer_sweep.py", [*SWEEP, "--position", "1", "--k", "501"], "501 is out of range"),
    ("sweep position negative", "layer_sweep.py", [*SWEEP, "--position", "-3"], "-3 is out of range"),
    ("search context negative", "search.py", [*SEARCH, "--position", "1", "--context", "-5"], "-5 is out of range"),
    ("search k too many", "search.py", [*SEARCH, "--position", "1", "--k", "1000000"], "1,000,000 is out of range"),
    ("search position negative", "search.py", [*SEARCH, "--position", "-1"], "-1 is out of range"),
    ("search layer negative", "search.py", [*SEARCH[:4], "--position", "1", "--layer", "-1"], "give a number at least 0"),
    ("search layer past the model", "search.py", [*SEARCH[:4], "--position", "1", "--layer", "99"], "Layer 99 is out of range"),
    ("search from [SEP]", "search.py", [*SEARCH, "--position", "8"], "special token [SEP], which cannot be searched from"),
    ("search mask [CLS]", "search.py", [*SEARCH, "--position", "1", "--mask", "0"], "cannot be masked"),
    ("build max-tokens 0", "build_corpus.py", [*BUILD, "--max-tokens", "0"], "0 is out of range: give a number from 8 to 512"),
    ("build max-tokens 1", "build_corpus.py", [*BUILD, "--max-tokens", "1"], "1 is out of range"),
    ("build max-tokens -1", "build_corpus.py", [*BUILD, "--max-tokens", "-1"], "-1 is out of range"),
    ("build max-tokens 100000", "build_corpus.py", [*BUILD, "--max-tokens", "100000"], "100,000 is out of range"),
    ("build from zero-width text", "build_corpus.py", ["--text", "{zero_width}", "--name", "zw", "--out", "{out}"],
     "no sentences to index"),
    ("build from a text one byte too large", "build_corpus.py", ["--text", "{too_large}", "--name", "big", "--out", "{out}"],
     f"is more than the {MAX_UPLOAD_MB} MB limit"),
    ("build shard-tokens -1", "build_corpus.py", [*BUILD, "--shard-tokens", "-1"], "-1 is out of range: give a number from 1,000"),
    ("build max-tokens-total 0", "build_corpus.py", [*BUILD, "--max-tokens-total", "0"], "0 is out of range: give a number from 1,000"),
    ("build workers 0", "build_corpus.py", [*BUILD, "--engine", "ray", "--workers", "0"], "0 is out of range: give a number from 1 to"),
    ("build on a Ray address where nothing listens", "build_corpus.py", [*BUILD, "--engine", "ray", "--address", "{dead_address}"],
     "Nothing answers at the Ray address 127.0.0.1:"),
    ("build on a Ray address that is no address", "build_corpus.py", [*BUILD, "--engine", "ray", "--address", "nowhere"],
     "is not host:port or ray://host:port"),
    ("build --text naming a folder", "build_corpus.py", ["--text", "{folder}", "--name", "f", "--out", "{out}"],
     "is a directory; choose a plain text file"),
    ("build --text naming a missing file", "build_corpus.py", ["--text", "{missing}", "--name", "m", "--out", "{out}"],
     "missing.txt does not exist"),
    ("search on a Ray address where nothing listens", "search.py", [*SEARCH, "--position", "1", "--address", "{dead_address}"],
     "Nothing answers at the Ray address 127.0.0.1:"),
    ("atlas sentences 0", "head_atlas.py", ["--corpus", "{corpus}", "--sentences", "0"], "0 is out of range"),
    ("atlas sentences too many", "head_atlas.py", ["--corpus", "{corpus}", "--sentences", "100001"], "100,001 is out of range"),
]


def run_script(script: str, argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a script's ``__main__`` as `python scripts/<script> <argv>` does, in this process (the
    imports and spaCy are loaded once for the whole table); returns its exit code and stderr."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / script), *argv])
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
    return done.value.code, capsys.readouterr().err


def assert_one_line_refusal(code: int, stderr: str, script: str, message: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") or f"{script}: error: " in last, stderr
    assert message in last, stderr


@pytest.mark.parametrize("script, args, message", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_command_line_refuses_clearly(files, monkeypatch, capsys, script, args, message):
    monkeypatch.delenv("EXBERT_HUB_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, stderr = run_script(script, [a.format(**vars(files)) for a in args], monkeypatch, capsys)
    assert_one_line_refusal(code, stderr, script, message)
    assert not list(Path(files.out).glob("*/manifest.json")), "nothing is built"


@pytest.mark.parametrize("script, args, message", [
    ("analyze.py", ["--sentence", SURROGATE], "lone surrogate"),
    ("analyze.py", ["--sentence", S, "--top-k", "-5"], "-5 is out of range"),
    ("build_corpus.py", ["--text", "{zero_width}", "--name", "zw", "--out", "{out}"], "no sentences to index"),
], ids=["bytes that are not UTF-8", "argparse range", "build refused"])
def test_command_line_refuses_clearly_as_a_separate_process(files, script, args, message):
    """A few cases as users really run them: a new process whose argv holds raw bytes (0xe9)."""
    argv = [os.fsencode(a.format(**vars(files))) for a in args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *argv], capture_output=True,
                            text=True, errors="replace", timeout=300, env=env)
    assert_one_line_refusal(result.returncode, result.stderr, script, message)


def _sentence(ctx) -> analysis.Analysis:
    return analysis.analyze(ctx.minilm, S)


# (case, call, error class, what the message says); ``call`` gets the fixtures.
CORE_CASES = [
    ("zero-width sentence", lambda c: analysis.analyze(c.minilm, ZERO_WIDTH), InputError, "The sentence is empty"),
    ("lone surrogate", lambda c: analysis.analyze(c.minilm, SURROGATE), InputError, "lone surrogate"),
    ("sentence too long", lambda c: analysis.analyze(c.minilm, "a" * 5001), InputError, "5,001 characters"),
    ("top_k 0", lambda c: analysis.analyze(c.minilm, S, top_k=0), InputError, f"from 1 to {MAX_TOP_K}"),
    ("top_k a billion", lambda c: analysis.analyze(c.minilm, S, top_k=10**9), InputError, f"from 1 to {MAX_TOP_K}"),
    ("mask [CLS]", lambda c: analysis.analyze(c.minilm, S, [0]), InputError, "special token [CLS]"),
    ("mask [SEP]", lambda c: analysis.analyze(c.minilm, S, [2, 8]), InputError, "special token [SEP]"),
    ("query [CLS]", lambda c: search.query_vector(_sentence(c), 0, 2, "embedding", range(12)), InputError,
     "cannot be searched from; choose a word token (1-7)"),
    ("search from [SEP]", lambda c: search.search(c.corpus, c.minilm, _sentence(c), 8, 2), InputError, "special token [SEP]"),
    ("text of format characters", lambda c: list(parsing.annotated_sentences(f"{ZERO_WIDTH}\n\n \u200b \n", c.nlp)),
     BuildError, "no sentences to index"),
    ("max_tokens 0", lambda c: text.encode(c.minilm, c.corpus_sentence, 0), BuildError, "from 8 to 512"),
    ("max_tokens -1", lambda c: text.encode(c.minilm, c.corpus_sentence, -1), BuildError, "from 8 to 512"),
    ("max_tokens 100000", lambda c: text.encode(c.minilm, c.corpus_sentence, 100_000), BuildError, "got 100000"),
    ("upload one byte over", lambda c: sources.read_user_text(b"x" * (MAX_TEXT_BYTES + 1)), InvalidText,
     f"20.0 MB (20,000,001 bytes) is more than the {MAX_UPLOAD_MB} MB limit (20,000,000 bytes)"),
    ("hub id not allowed", lambda c: loading.load("someone/any-model"), ModelLoadError, "$EXBERT_HUB_MODELS"),
    ("model of 2.5B parameters", lambda c: loading.load(c.files.big_model), ModelLoadError,
     "has 2,485M parameters; this installation loads models of at most 400M"),
]


@pytest.fixture(scope="module")
def ctx(minilm, nlp, sample_corpus, files) -> SimpleNamespace:
    sentence = next(parsing.annotated_sentences("The queen shouted at the cat.", nlp))
    return SimpleNamespace(minilm=minilm, nlp=nlp, corpus=sample_corpus, files=files, corpus_sentence=sentence)


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CORE_CASES], ids=[c[0] for c in CORE_CASES])
def test_core_refuses_clearly(ctx, monkeypatch, call, error, message):
    monkeypatch.delenv("EXBERT_HUB_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(error) as info:
        call(ctx)
    assert isinstance(info.value, ExbertError)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_typed_special_token_text_is_plain_text(minilm):
    """A correct answer, not a refusal: "[MASK]" typed in a sentence is read as the characters
    [, mask, ] (no special id the views would not know about); masking is by position."""
    result = analysis.analyze(minilm, "Paris is the [MASK] of France [SEP] indeed.")
    texts = [t.text for t in result.tokens]
    assert texts[:9] == ["[CLS]", "paris", "is", "the", "[", "mask", "]", "of", "france"]
    assert [t.special for t in result.tokens].count(True) == 2 and result.tokens[-1].text == "[SEP]"
    assert minilm.tokenizer.mask_token_id not in [t.id for t in result.tokens]


def test_readme_limits_table_is_generated_from_limits_py():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- limits:begin -->\n(.*?)\n<!-- limits:end -->", readme, re.S)
    assert table and table.group(1) == limits.markdown_table()
    rows = limits.documented()
    names = [n for n in vars(limits) if n.isupper()]
    assert [r[0] for r in rows] == names  # every limit is in the table, in file order
    assert all(len(why) > 20 for _, _, why in rows), "each limit says why"


def _manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_and_reseal(folder: Path) -> None:
    """tokens.parquet cut in half, and its checksums updated (what a careless copy tool leaves)."""
    shard = folder / "shard-0000"
    _truncate(shard / "tokens.parquet")
    m = json.loads((shard / "manifest.json").read_text())
    m["files"]["tokens.parquet"] = {"sha256": sha256(shard / "tokens.parquet"),
                                    "bytes": (shard / "tokens.parquet").stat().st_size}
    (shard / "manifest.json").write_text(json.dumps(m))
    _manifest(folder, lambda top: {**top, "shards": [{**top["shards"][0], "manifest_sha256": sha256(shard / "manifest.json")}]})


# (case, damage, what the refusal says): each refused by the corpus's name, with its rebuild command.
DAMAGED = [
    ("truncated tokens.parquet", lambda f: _truncate(f / "shard-0000" / "tokens.parquet"),
     "shard-0000/tokens.parquet is missing or corrupted"),
    ("truncated tokens.parquet, checksums updated", _truncate_and_reseal, "shard-0000/tokens.parquet cannot be read"),
    ("format_version 99", lambda f: _manifest(f, lambda m: {**m, "format_version": 99}),
     "has format 99; this version reads format 3 (it was built by a newer version of exbert-streamlit"),
    ("shards null", lambda f: _manifest(f, lambda m: {**m, "shards": None}), "'shards' is None, not a valid list"),
    ("a list instead of an object", lambda f: _manifest(f, lambda m: [m]), "manifest.json is not a JSON object (it holds a list)"),
    ("garbage quantiser.npz", lambda f: (f / "quantiser.npz").write_bytes(b"PK\x03\x04 garbage" * 50),
     "quantiser.npz is corrupted"),
]


@pytest.mark.parametrize("damage, message", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_a_damaged_corpus_is_refused_by_name(sample_corpus_dir, tmp_path, damage, message):
    folder = tmp_path / "damaged"
    shutil.copytree(sample_corpus_dir, folder)
    damage(folder)
    with pytest.raises(CorpusError) as info:
        opened = store.load(str(folder))
        opened.shards[0].tokens()
        opened.shards[0].sentences()
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert "Corpus 'damaged'" in text or "Corpus 'sample'" in text  # the folder's name, or the one it was built as
    assert "Rebuild it on the app's Corpora page, or: python scripts/build_corpus.py --text " in text


@pytest.mark.parametrize("name, data, message", [
    ("latin1.txt", "Caf\xe9 au lait.".encode("latin-1"), "Text is not valid UTF-8: byte 0xe9 at offset 3"),
    ("utf16.txt", "Tea for two.".encode("utf-16"), "It looks like UTF-16; save it as UTF-8"),
    ("empty.txt", b"", "Text is empty or contains only whitespace"),
], ids=["Latin-1", "UTF-16", "empty"])
def test_an_upload_that_cannot_be_built_is_refused_at_once_and_build_stays_off(name, data, message):
    """The probe saw no message after such an upload and Build enabled: now the page says why as
    soon as the file is chosen, and Build is off."""
    import app_support
    from streamlit.testing.v1 import AppTest

    with app_support.app_environment():
        at = AppTest.from_file(str(app_support.APP), default_timeout=300)
        at.switch_page("app_pages/corpora.py").run()
        assert at.button(key="build_file_go").disabled  # nothing chosen yet
        at.file_uploader(key="build_upload").set_value((name, data, "text/plain")).run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any(name in e and message in e for e in errors), errors
    assert at.button(key="build_file_go").disabled
