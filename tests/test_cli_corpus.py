"""build_corpus.py and search.py as a user runs them: --text, --json contract, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PAPER_SENTENCE, ROOT


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True, timeout=600
    )


def test_build_from_a_text_file_then_search(tmp_path):
    built = run("build_corpus.py", "--text", str(ROOT / "tests/data/sample_corpus.txt"), "--name", "mine", "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert "bytes/token" in built.stdout and "tokens" in built.stdout
    found = run(
        "search.py", "--corpus", str(tmp_path / "mine"), "--sentence", PAPER_SENTENCE,
        "--position", "9", "--layer", "2", "--by", "heads", "--heads", "0,1", "--k", "20", "--json",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert len(data["matches"]) == 20 and data["heads"] == [0, 1]
    assert sum(data["summary"]["matched"]["pos"].values()) == 20
    table = run("search.py", "--corpus", str(tmp_path / "mine"), "--sentence", PAPER_SENTENCE, "--position", "9", "--layer", "0", "--k", "5")
    assert table.returncode == 0 and "[escape]" in table.stdout


def test_a_capped_build_of_a_folder_holds_the_cap_in_the_corpus_tokens(tmp_path):
    """The probe's case end to end: four files of about 6,000 tokens, --max-tokens-total 2000. The
    corpus indexes the cap's tokens, less at most one sentence (the estimate from characters gave
    1,838; before that the first file alone gave 6,129)."""
    folder = tmp_path / "books"
    folder.mkdir()
    paragraph = "The Queen looked at the cat for a long time. It smiled back and said nothing at all.\n\n"
    for i in range(4):
        (folder / f"book{i}.txt").write_text(f"Book {i} begins here.\n\n" + paragraph * 300)
    built = run("build_corpus.py", "--input", str(folder), "--max-tokens-total", "2000", "--name", "capped",
                "--out", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    manifest = json.loads((tmp_path / "out" / "capped" / "manifest.json").read_text())
    assert 2000 - 20 <= manifest["tokens"] <= 2000, manifest["tokens"]
    assert manifest["source"]["max_tokens_total"] == 2000


def test_clear_errors(tmp_path):
    missing = run("search.py", "--corpus", str(tmp_path / "none"), "--sentence", "Hi.", "--position", "1", "--layer", "1")
    assert missing.returncode == 2 and "build_corpus.py" in missing.stderr and "Traceback" not in missing.stderr
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\xff" * 100)
    bad = run("build_corpus.py", "--text", str(binary), "--name", "bad", "--out", str(tmp_path))
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
