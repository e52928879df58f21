"""scripts/analyze.py: the JSON contract and clear errors, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PAPER_SENTENCE, ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "analyze.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_json_contract_and_masking():
    plain = run("--sentence", PAPER_SENTENCE, "--json")
    assert plain.returncode == 0, plain.stderr
    data = json.loads(plain.stdout)
    assert (data["model"], data["layers"], data["heads"], data["lm_head"]) == ("minilm", 6, 12, False)
    assert data["predictions"] == []
    assert [t["position"] for t in data["tokens"]] == list(range(17))
    escape = next(t for t in data["tokens"] if t["text"] == "escape")
    assert (escape["position"], escape["pos"], escape["dep"]) == (9, "VERB", "advcl")
    masked = json.loads(run("--sentence", PAPER_SENTENCE, "--mask", "9", "--json").stdout)
    assert masked["tokens"][9]["text"] == "[MASK]" and masked["masked"] == [9]


def test_table_output_names_the_lm_head_model():
    result = run("--sentence", "Hello world.")
    assert result.returncode == 0
    assert "hello" in result.stdout and "no LM head" in result.stdout


def test_errors_are_one_line_messages():
    for args, fragment in [
        (("--sentence", "   "), "empty"),
        (("--sentence", "Hi.", "--mask", "40"), "out of range"),
        (("--sentence", "Hi.", "--model", "./missing-model"), "No model directory"),
    ]:
        result = run(*args)
        assert result.returncode == 2
        assert fragment in result.stderr and "Traceback" not in result.stderr
