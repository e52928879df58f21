"""Model loading: names, offline default, clear errors, every family's mechanics."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, LlamaConfig

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


def _no_network(*args, **kwargs):
    raise AssertionError("the hub must not be contacted")


@pytest.mark.parametrize("setting, name, allowed", [
    (None, "bert-base-uncased", True),  # unset: the models the app suggests
    (None, "someone/any-model", False),
    ("", "bert-base-uncased", False),  # empty: no hub model
    ("gpt2, someone/any-model", "someone/any-model", True),
    ("gpt2", "GPT2", False),  # exactly as the operator wrote it
    ("*", "someone/any-model", True),
])
def test_hub_models_need_the_operators_allow_list(monkeypatch, setting, name, allowed):
    if setting is None:
        monkeypatch.delenv("EXBERT_HUB_MODELS", raising=False)
    else:
        monkeypatch.setenv("EXBERT_HUB_MODELS", setting)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=2.0: False)
    if not allowed:
        monkeypatch.setattr(loading, "_load_config", _no_network)
    with pytest.raises(loading.ModelLoadError) as err:
        loading.load(name)
    message = str(err.value)
    if allowed:  # past the allow-list: offline, the hub cannot be reached
        assert "model hub could not be reached" in message
    else:
        assert f"Could not load '{name}': this installation does not enable it" in message
        assert "$EXBERT_HUB_MODELS" in message and "minilm, smollm2 always work" in message


def test_offline_models_and_folders_need_no_allow_list(monkeypatch):
    monkeypatch.setenv("EXBERT_HUB_MODELS", "")
    assert loading.load("sentence-transformers/all-MiniLM-L6-v2").info.name == "minilm"
    assert loading.load(str(loading.minilm_dir())).info.layers == 6


def test_parameter_count_from_the_config_alone_is_exact(minilm):
    """Counted on PyTorch's meta device: the same number as the loaded weights, tied ones once."""
    assert loading.parameter_count(minilm.model.config) == sum(p.numel() for p in minilm.model.parameters())
    llama = LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8, vocab_size=128256, architectures=["LlamaForCausalLM"])
    assert loading.parameter_count(llama) == 70_553_706_496  # Llama-3-70B's published count


def _big_bert(path):
    BertConfig(hidden_size=1024, num_hidden_layers=36, num_attention_heads=16, intermediate_size=4096,
               architectures=["BertForMaskedLM"]).save_pretrained(path)
    return path


def test_a_model_folder_over_the_size_limit_is_refused_before_its_weights(tmp_path, monkeypatch):
    folder = _big_bert(tmp_path / "big")  # a config only: reading weights would fail differently
    monkeypatch.setattr(loading, "_load_weights", _no_network)
    with pytest.raises(loading.ModelLoadError, match=r"'.*big' has 486M parameters; this installation loads "
                                                     r"models of at most 400M \(1\.9 GB of float32"):
        loading.load(str(folder))


def test_a_hub_model_over_the_size_limit_is_refused_before_downloading_weights(tmp_path, monkeypatch):
    """The hub path for real with the hub's answer replaced: its config.json describes 486M
    parameters, and the weights are never asked for."""
    monkeypatch.setenv("EXBERT_HUB_MODELS", "*")
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=2.0: True)
    config = BertConfig.from_pretrained(_big_bert(tmp_path / "big"))
    asked = []
    monkeypatch.setattr(loading.AutoConfig, "from_pretrained",
                        lambda source, **kwargs: asked.append((source, kwargs)) or config)
    monkeypatch.setattr(loading, "_load_weights", _no_network)
    with pytest.raises(loading.ModelLoadError, match="'someone/huge-bert' has 486M parameters"):
        loading.load("someone/huge-bert")
    assert asked == [("someone/huge-bert", {"local_files_only": False})]
