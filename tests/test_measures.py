"""Attention measures: the decomposition they rest on, their invariants, every family, masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import PAPER_SENTENCE
from tiny_models import FAMILIES, TRAINING_TEXT, tiny

from exbert_core.model import analysis, forward, loading, measures


@pytest.fixture(scope="module")
def smollm2():
    return loading.load("smollm2")


def _hook_outputs(modules):
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outputs.append((o[0] if isinstance(o, tuple) else o).detach()))
             for m in modules]
    return outputs, hooks


def _explicit_parts(loaded, result, layer):
    """T_i(x_j) ``[n, n, D]`` written out term by term (the slow definition the fast path must match)."""
    blocks = measures.block_weights(loaded)[layer]
    att = torch.from_numpy(result.attention[layer])
    f = measures._per_head_values(blocks, torch.from_numpy(result.values[layer]))  # [H, n, D]
    residual = torch.from_numpy(result.hidden[layer])
    if blocks.norm_weight is not None:
        f, residual = measures._center_scale(f, blocks.norm_weight), measures._center_scale(residual, blocks.norm_weight)
    parts = torch.einsum("hij,hjd->ijd", att, f)
    parts = parts + torch.diag_embed(torch.ones(len(residual)))[..., None] * residual[:, None, :]
    return parts


def _check_decomposition(loaded, sentence):
    """sum_h sum_j a_hij f_h(x_j) + b_O equals the attention block's output (to 1e-4 relative)."""
    outputs, hooks = _hook_outputs(loaded.output_projections)
    try:
        result = analysis.analyze(loaded, sentence)
    finally:
        for h in hooks:
            h.remove()
    blocks = measures.block_weights(loaded)
    for layer, projection in enumerate(loaded.output_projections):
        f = measures._per_head_values(blocks[layer], torch.from_numpy(result.values[layer]))
        rebuilt = torch.einsum("hij,hjd->id", torch.from_numpy(result.attention[layer]), f)
        if getattr(projection, "bias", None) is not None:
            rebuilt = rebuilt + projection.bias.detach()
        actual = outputs[layer][0]
        assert torch.linalg.norm(rebuilt - actual) <= 1e-4 * torch.linalg.norm(actual), f"layer {layer}"
    return result


def test_decomposition_identity_minilm(minilm):
    _check_decomposition(minilm, PAPER_SENTENCE)


def test_decomposition_identity_smollm2_grouped_query(smollm2):
    assert smollm2.info.heads == 9 and measures.block_weights(smollm2).group == 3
    _check_decomposition(smollm2, PAPER_SENTENCE)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_decomposes_and_measures(family, minilm):
    loaded = tiny(family, minilm.tokenizer)
    result = _check_decomposition(loaded, TRAINING_TEXT[1])
    for measure in measures.MEASURES:
        weights = measures.compute(loaded, result, measure)
        _check_rows(weights, result.attention, causal=loaded.info.causal)


def _check_rows(weights: measures.Weights, attention: np.ndarray, causal: bool) -> None:
    for matrices in (weights.layers, weights.rollout, weights.heads_at(attention, 0)):
        assert (matrices >= 0).all()
        np.testing.assert_allclose(matrices.sum(-1), 1.0, atol=1e-4)
        if causal:  # nothing comes from a later token
            assert np.allclose(np.triu(matrices, k=1), 0.0)


def test_post_ln_parts_rebuild_the_layer_norm_output(minilm):
    """BERT's block: LN(x_i + attention_i) == sum_j T_i(x_j) / sigma_i + (the biases' share)."""
    norms = minilm.post_attention_norms
    outputs, hooks = _hook_outputs(norms)
    inputs: list[torch.Tensor] = []
    hooks += [n.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].detach())) for n in norms]
    try:
        result = analysis.analyze(minilm, PAPER_SENTENCE)
    finally:
        for h in hooks:
            h.remove()
    for layer in (0, 3, 5):
        norm = norms[layer]
        s = inputs[layer][0]
        sigma = torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + norm.eps)
        bias = minilm.output_projections[layer].bias.detach()
        biases = (bias - bias.mean()) * norm.weight.detach() / sigma + norm.bias.detach()
        rebuilt = _explicit_parts(minilm, result, layer).sum(1) / sigma + biases
        np.testing.assert_allclose(rebuilt.numpy(), outputs[layer][0].numpy(), atol=2e-4)


def test_pre_ln_parts_rebuild_the_residual_stream(smollm2):
    """Llama's block: x_i + attention_i (what enters the MLP's norm) == sum_j T_i(x_j)."""
    layers = smollm2.model.model.layers
    inputs: list[torch.Tensor] = []
    hooks = [b.post_attention_layernorm.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].detach())) for b in layers]
    try:
        result = analysis.analyze(smollm2, PAPER_SENTENCE)
    finally:
        for h in hooks:
            h.remove()
    for layer in (0, 14, 29):
        rebuilt = _explicit_parts(smollm2, result, layer).sum(1)
        actual = inputs[layer][0]
        assert torch.linalg.norm(rebuilt - actual) <= 1e-4 * torch.linalg.norm(actual)


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_fast_contributions_equal_their_definition(name, minilm, request):
    loaded = minilm if name == "minilm" else request.getfixturevalue("smollm2")
    result = analysis.analyze(loaded, PAPER_SENTENCE)
    weights = measures.compute(loaded, result, "contrib")
    for layer in (0, loaded.info.layers - 1):
        parts = _explicit_parts(loaded, result, layer)
        y = parts.sum(1, keepdim=True)
        proximity = (y.norm(dim=-1) - (y - parts).norm(dim=-1)).clamp_min(0)
        expected = proximity / proximity.sum(-1, keepdim=True)
        np.testing.assert_allclose(weights.layers[layer], expected.numpy(), atol=1e-4)


def test_norm_is_attention_times_value_norm(minilm):
    result = analysis.analyze(minilm, PAPER_SENTENCE)
    weights = measures.compute(minilm, result, "norm")
    f = measures._per_head_values(measures.block_weights(minilm)[2], torch.from_numpy(result.values[2]))
    per_head = result.attention[2] * f.norm(dim=-1).numpy()[:, None, :]
    np.testing.assert_allclose(weights.heads_at(result.attention, 2), per_head / per_head.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)
    layer = torch.einsum("hij,hjd->ijd", torch.from_numpy(result.attention[2]), f).norm(dim=-1)
    np.testing.assert_allclose(weights.layers[2], (layer / layer.sum(-1, keepdim=True)).numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_real_models_rows_sum_to_one(name, minilm, request):
    loaded = minilm if name == "minilm" else request.getfixturevalue("smollm2")
    result = analysis.analyze(loaded, PAPER_SENTENCE)
    for measure in measures.MEASURES:
        _check_rows(measures.compute(loaded, result, measure), result.attention, causal=loaded.info.causal)


def test_rollout_of_identity_attention_is_identity(minilm):
    result = analysis.analyze(minilm, PAPER_SENTENCE)
    layers, heads, n, _ = result.attention.shape
    identity = np.broadcast_to(np.eye(n, dtype=np.float32), (layers, heads, n, n)).copy()
    for measure in measures.MEASURES:
        weights = measures.compute(minilm, dataclasses.replace(result, attention=identity), measure)
        np.testing.assert_allclose(weights.rollout, np.broadcast_to(np.eye(n), (layers, n, n)), atol=1e-6)


def test_padded_batch_gives_the_sentence_its_own_weights(minilm):
    """Keys past a sentence's end get nothing, and its weights equal the unpadded sentence's."""
    short = analysis.analyze(minilm, "The cat sat.")
    long = analysis.analyze(minilm, PAPER_SENTENCE)
    ids, mask = forward.pad([[t.id for t in short.tokens], [t.id for t in long.tokens]], minilm)
    n = len(short.tokens)
    blocks = measures.block_weights(minilm)
    seen: dict[int, forward.BlockParts] = {}
    with minilm.lock:
        forward.blocks_up_to(minilm, ids, mask, 3, lambda layer, parts: seen.__setitem__(layer, parts))
    assert sorted(seen) == [1, 2, 3]
    for measure in measures.MEASURES:
        expected = measures.compute(minilm, short, measure).layers[2]
        parts = seen[3]
        batch, _ = measures.layer_weights(blocks[2], measure, parts.attention, parts.values, parts.inputs)
        assert np.allclose(batch[0, :n, n:].numpy(), 0.0)
        np.testing.assert_allclose(batch[0, :n, :n].numpy(), expected, atol=1e-4)


def test_long_input_of_512_tokens(minilm):
    result = analysis.analyze(minilm, "word " * 700)
    assert len(result.tokens) == 512
    weights = measures.compute(minilm, result, "contrib")
    assert weights.layers.shape == weights.rollout.shape == (6, 512, 512)
    _check_rows(weights, result.attention, causal=False)


def test_view_selects_heads_and_aggregates(minilm):
    result = analysis.analyze(minilm, PAPER_SENTENCE)
    weights = measures.compute(minilm, result, "contrib")
    assert weights.per_head == "norm"
    att = result.attention
    np.testing.assert_array_equal(weights.view(att, 1, range(12), 12), weights.layers[1])
    np.testing.assert_array_equal(weights.view(att, 1, [0], 12, "rollout"), weights.rollout[1])
    np.testing.assert_allclose(weights.view(att, 1, [0, 3], 12), weights.heads_at(att, 1)[[0, 3]].mean(0))
    assert not weights.view(att, 1, [], 12).any()


def test_bad_measure_is_refused(minilm):
    result = analysis.analyze(minilm, PAPER_SENTENCE)
    with pytest.raises(analysis.InputError, match="raw, norm, contrib"):
        measures.compute(minilm, result, "gradient")


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_value_norms_from_grams_equal_the_norms_of_f(name, minilm, request):
    loaded = minilm if name == "minilm" else request.getfixturevalue("smollm2")
    result = analysis.analyze(loaded, PAPER_SENTENCE)
    weights = measures.compute(loaded, result, "norm")
    np.testing.assert_allclose(measures.value_norms(loaded, torch.from_numpy(result.values)), weights.value_norms,
                               rtol=1e-4, atol=1e-5)
