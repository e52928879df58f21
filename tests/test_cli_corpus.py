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


def test_clear_errors(tmp_path):
    missing = run("search.py", "--corpus", str(tmp_path / "none"), "--sentence", "Hi.", "--position", "1", "--layer", "1")
    assert missing.returncode == 2 and "build_corpus.py" in missing.stderr and "Traceback" not in missing.stderr
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\xff" * 100)
    bad = run("build_corpus.py", "--text", str(binary), "--name", "bad", "--out", str(tmp_path))
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
