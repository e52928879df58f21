"""Model loading: names, offline default, clear errors, every family's mechanics."""

from __future__ import annotations

import pytest
import torch

from exbert_core.model import loading


def test_names_resolve_to_offline_models():
    assert loading.resolve_name("") == "minilm"
    assert loading.resolve_name("sentence-transformers/all-MiniLM-L6-v2") == "minilm"
    assert loading.resolve_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2"
    assert loading.resolve_name("gpt2") == "gpt2"


def test_default_model_info(minilm):
    info = minilm.info
    assert (info.layers, info.heads, info.hidden, info.head_dim) == (6, 12, 384, 32)
    assert info.family == "bert" and not info.causal and not info.has_lm_head
    assert info.mask_token == "[MASK]" and info.max_tokens == 512
    assert minilm.model.config._attn_implementation == "eager"
    assert minilm.tokenizer.is_fast


def test_hub_id_of_default_gives_the_same_model(minilm):
    again = loading.load("sentence-transformers/all-MiniLM-L6-v2")
    assert again.info == minilm.info


def test_local_directory_loads():
    loaded = loading.load(str(loading.minilm_dir()))
    assert loaded.info.layers == 6 and loaded.info.name.endswith("model")


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("./no/such/dir", "No model directory"),
        ("<script>alert(1)</script>", "neither a model id"),
        ("a/b/c/d", "neither a model id"),
    ],
)
def test_bad_names_give_clear_errors(name, fragment):
    with pytest.raises(loading.ModelLoadError, match=fragment):
        loading.load(name)


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"not a model")
    with pytest.raises(loading.ModelLoadError, match="has no config.json"):
        loading.load(str(tmp_path))


def test_unknown_hub_model_offline_names_offline_models(monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=2.0: False)
    with pytest.raises(loading.ModelLoadError) as err:
        loading.load("bert-base-uncased")
    assert "minilm" in str(err.value) and "smollm2" in str(err.value)


def test_hub_reachable_honours_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading.hub_reachable() is False


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta", "gpt2", "llama"])
def test_tiny_families_assemble(family, minilm):
    from tiny_models import tiny

    loaded = tiny(family, minilm.tokenizer)
    assert len(loaded.output_projections) == loaded.info.layers
    assert loaded.info.causal == (family in ("gpt2", "llama"))
    assert loaded.info.has_lm_head
    assert (loaded.info.mask_token is None) == loaded.info.causal
    logits = loaded.lm_logits(torch.zeros(3, loaded.info.hidden))
    assert logits.shape == (3, loaded.model.get_output_embeddings().weight.shape[0])
