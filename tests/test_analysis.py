"""analyze(): shapes, invariants, masking, head contexts, predictions, bad input, threads."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import torch
from conftest import PAPER_SENTENCE
from tiny_models import FAMILIES, TRAINING_TEXT, tiny

from exbert_core.model import analysis, forward
from exbert_core.model.analysis import InputError


@pytest.fixture(scope="module")
def paper(minilm):
    return analysis.analyze(minilm, PAPER_SENTENCE)


def test_shapes_and_dtypes(paper):
    t = len(paper.tokens)
    assert t == 17  # [CLS] + 15 words + [SEP]
    assert paper.attention.shape == (6, 12, t, t) and paper.attention.dtype == np.float32
    assert paper.hidden.shape == (7, t, 384)
    assert paper.contexts.shape == (6, t, 12, 32)
    assert paper.predictions is None and paper.layer_predictions is None


def test_attention_rows_sum_to_one(paper):
    np.testing.assert_allclose(paper.attention.sum(-1), 1.0, atol=1e-5)


def test_tokens_carry_offsets_and_special_flags(paper):
    assert [t.position for t in paper.tokens] == list(range(len(paper.tokens)))
    assert paper.tokens[0].special and paper.tokens[-1].special
    for token in paper.tokens[1:-1]:
        assert not token.special
        assert paper.sentence[token.start : token.end].lower() == token.text.lstrip("#")


def test_masking_changes_the_masked_hidden_state(minilm, paper):
    escape = next(t.position for t in paper.tokens if t.text == "escape")
    masked = analysis.analyze(minilm, PAPER_SENTENCE, [escape])
    assert masked.tokens[escape].text == "[MASK]" and masked.masked == (escape,)
    # The embedding and every later layer differ at the masked position ...
    for layer in range(7):
        assert not np.allclose(masked.hidden[layer, escape], paper.hidden[layer, escape], atol=1e-3)
    # ... while a token before it is unchanged at the embedding layer.
    np.testing.assert_allclose(masked.hidden[0, 1], paper.hidden[0, 1], atol=1e-6)


def test_head_contexts_are_attention_weighted_values(minilm, paper):
    """contexts[l, t, h] == sum_s attention[l, h, t, s] * V_l[s, h] for the real model."""
    for layer in (0, 3, 5):
        self_attn = minilm.model.encoder.layer[layer].attention.self
        with torch.no_grad():
            values = self_attn.value(torch.from_numpy(paper.hidden[layer])).numpy()
        values = values.reshape(len(paper.tokens), 12, 32)  # [tokens, heads, head_dim]
        expected = np.einsum("hts,shd->thd", paper.attention[layer], values)
        np.testing.assert_allclose(paper.contexts[layer], expected, atol=1e-4)


def test_contexts_through_output_projection_reproduce_attention_output(minilm, paper):
    outputs = []
    hooks = [p.register_forward_hook(lambda m, i, o: outputs.append(o.detach())) for p in minilm.output_projections]
    try:
        analysis.analyze(minilm, PAPER_SENTENCE)
    finally:
        for h in hooks:
            h.remove()
    for layer, projection in enumerate(minilm.output_projections):
        flat = torch.from_numpy(paper.contexts[layer].reshape(len(paper.tokens), -1))
        with torch.no_grad():
            np.testing.assert_allclose(projection(flat).numpy(), outputs[layer][0].numpy(), atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_mechanics(family, minilm):
    loaded = tiny(family, minilm.tokenizer)
    result = analysis.analyze(loaded, TRAINING_TEXT[1], top_k=3, logit_lens=True)
    info, t = loaded.info, len(result.tokens)
    assert result.attention.shape == (info.layers, info.heads, t, t)
    assert result.hidden.shape == (info.layers + 1, t, info.hidden)
    assert result.contexts.shape == (info.layers, t, info.heads, info.head_dim)
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    if info.causal:  # no token attends to a later one
        assert np.allclose(np.triu(result.attention, k=1), 0.0)
    assert len(result.predictions) == t and all(len(p) == 3 for p in result.predictions)
    assert len(result.layer_predictions) == info.layers
    probs = [c.prob for c in result.predictions[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    # Head contexts pass through the output projection as the model's own forward does.
    ids = torch.tensor([[tok.id for tok in result.tokens]])
    out = forward.run(loaded, ids, torch.ones_like(ids))
    np.testing.assert_allclose(out.contexts[0].numpy(), result.contexts, atol=1e-5)


def test_llama_grouped_query_heads_map_to_their_kv_head(minilm):
    """With 4 query heads and 2 KV heads, head h uses value head h // 2."""
    loaded = tiny("llama", minilm.tokenizer)
    result = analysis.analyze(loaded, TRAINING_TEXT[0])
    layer = loaded.model.model.layers[0]
    with torch.no_grad():
        normed = layer.input_layernorm(torch.from_numpy(result.hidden[0]))
        values = layer.self_attn.v_proj(normed).numpy().reshape(len(result.tokens), 2, 8)
    values = np.repeat(values, 2, axis=1)  # [tokens, heads, head_dim]
    expected = np.einsum("hts,shd->thd", result.attention[0], values)
    np.testing.assert_allclose(result.contexts[0], expected, atol=1e-4)


def test_last_logit_lens_layer_equals_model_predictions(minilm):
    for family in ("bert", "llama"):
        loaded = tiny(family, minilm.tokenizer)
        result = analysis.analyze(loaded, TRAINING_TEXT[0], top_k=3, logit_lens=True)
        assert result.layer_predictions[-1] == result.predictions
        # one position on demand equals the full lens at that position
        for position in (0, 4):
            one = analysis.lens_at(loaded, result, position, 3)
            full = [layer[position] for layer in result.layer_predictions]
            assert [[c.token for c in top] for top in one] == [[c.token for c in top] for top in full]
            np.testing.assert_allclose([[c.prob for c in t] for t in one], [[c.prob for c in t] for t in full], rtol=1e-4)


def test_lens_needs_an_lm_head(minilm):
    result = analysis.analyze(minilm, "Hello there.")
    assert result.layer_predictions is None
    with pytest.raises(InputError, match="no LM head"):
        analysis.lens_at(minilm, result, 1)


@pytest.mark.parametrize("sentence", ["", "   ", "\n\t", "\u200b"])
def test_empty_sentences_are_rejected(minilm, sentence):
    with pytest.raises(InputError, match="empty"):
        analysis.analyze(minilm, sentence)


@pytest.mark.parametrize("masks", [[17], [-1], [100]])
def test_mask_out_of_range(minilm, masks):
    with pytest.raises(InputError, match="out of range"):
        analysis.analyze(minilm, PAPER_SENTENCE, masks)


def test_causal_model_without_mask_token_says_so(minilm):
    with pytest.raises(InputError, match="no mask token"):
        analysis.analyze(tiny("gpt2", minilm.tokenizer), TRAINING_TEXT[0], [1])


def test_long_sentence_is_truncated_with_a_warning(minilm):
    """Our own warning says the input was cut; transformers' "Token indices sequence length is
    longer than ... will result in indexing errors" (about a length we handle) never shows."""
    heard: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: heard.append(record.getMessage())
    logger = logging.getLogger("transformers")
    minilm.tokenizer.deprecation_warnings.clear()  # it warns once per tokenizer: as on a fresh server
    logger.addHandler(handler)
    try:
        result = analysis.analyze(minilm, "word " * 600)
    finally:
        logger.removeHandler(handler)
    assert len(result.tokens) == 512 and result.tokens[-1].special
    assert result.warnings and "512" in result.warnings[0]
    assert not [m for m in heard if "sequence length is longer" in m], heard


@pytest.mark.parametrize(
    "sentence",
    ["<b>bold</b> & <script>alert('x')</script>", "שלום עולם, مرحبا بالعالم", "naïve café 😀 ∑"],
)
def test_unicode_html_and_rtl_text(minilm, sentence):
    result = analysis.analyze(minilm, sentence)
    assert result.sentence == sentence
    assert all(0 <= t.start <= t.end <= len(sentence) for t in result.tokens)


def test_concurrent_sessions_share_one_model(minilm):
    """The fast tokenizer is not thread-safe ("Already borrowed"); the model lock serialises it."""
    sentences = [f"Sentence number {i} with some {'long ' * (i % 7)}words." for i in range(24)]
    errors: list[BaseException] = []
    results: dict[int, int] = {}

    def work(i: int) -> None:
        try:
            results[i] = len(analysis.analyze(minilm, sentences[i]).tokens)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sentences))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(results) == len(sentences)
