"""scripts/analyze.py: the JSON contract and clear errors, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
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


def test_measure_contract_layers_rollout_and_heads():
    result = run("--sentence", PAPER_SENTENCE, "--measure", "contrib", "--per-head", "--json")
    assert result.returncode == 0, result.stderr
    attention = json.loads(result.stdout)["attention"]
    assert attention["measure"] == "contrib" and attention["per_head_measure"] == "norm"
    for key, shape in (("layers", (6, 17, 17)), ("rollout", (6, 17, 17)), ("heads", (6, 12, 17, 17))):
        array = np.array(attention[key])
        assert array.shape == shape and (array >= 0).all()
        np.testing.assert_allclose(array.sum(-1), 1.0, atol=1e-4)


def test_batch_export_one_object_per_line_with_errors_in_place(tmp_path):
    lines = tmp_path / "sentences.txt"
    lines.write_text("The cat sat.\n   \nA dog barked loudly.\n", encoding="utf-8")
    result = run("--input", str(lines), "--jsonl", "--measure", "norm")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 3
    assert objects[0]["sentence"] == "The cat sat." and objects[0]["attention"]["measure"] == "norm"
    assert objects[1] == {"line": 2, "error": "The sentence is empty: type a sentence to analyse."}
    assert np.array(objects[2]["attention"]["rollout"]).shape[0] == 6
    missing = run("--input", str(tmp_path / "nope.txt"), "--jsonl")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    assert run("--input", str(lines)).returncode == 2  # --input needs --jsonl


def test_faithfulness_script_scores_every_measure(tmp_path):
    lines = tmp_path / "sentences.txt"
    lines.write_text("The girl ran to a local pub to escape the din of her city.\nHi\n"
                     "My brother left his keys on the kitchen table before the storm.\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "faithfulness.py"), "--model", "minilm",
                             "--input", str(lines), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["task"] == "embedding" and data["sentences"] == 3
    readings = {(r["measure"], r["aggregate"]): r for r in data["mean_spearman"]}
    assert set(readings) == {(m, a) for m in ("raw", "norm", "contrib") for a in ("rollout", "last layer")}
    # "Hi" has one word: no rank correlation, so two sentences count; each rho is a correlation.
    assert all(r["sentences"] == 2 and -1 <= r["rho"] <= 1 for r in readings.values())
    # The evidence the default rests on holds on these two: norm's rollout beats raw's.
    assert readings[("norm", "rollout")]["rho"] > readings[("raw", "rollout")]["rho"]
