"""Tiny random-weight models of each family, built from a config (no download), for mechanics."""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
)

from exbert_core.model import loading

TRAINING_TEXT = [
    "The girl ran to a local pub to escape the din of her city.",
    "Don't stop; it's 1,234 steps to the café — naïve émigrés smile 😀.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
]
FAMILIES = ("bert", "distilbert", "roberta", "gpt2", "llama")


@functools.lru_cache(maxsize=None)
def byte_level_tokenizer(mask: bool) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few sentences (GPT-2/RoBERTa/Llama style offsets)."""
    specials = ["<s>", "</s>", "<pad>", "<unk>"] + (["<mask>"] if mask else [])
    tok = Tokenizer(tok_models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT * 5, trainer)
    if mask:  # RoBERTa style: <s> ... </s>
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    extra = {"mask_token": "<mask>"} if mask else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", **extra
    )


def tiny(family: str, wordpiece_tokenizer=None) -> loading.LoadedModel:
    """A LoadedModel of ``family`` with 2-3 layers and random weights."""
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    if family in ("bert", "distilbert"):
        tokenizer = wordpiece_tokenizer
        vocab = tokenizer.vocab_size
        if family == "bert":
            model = BertForMaskedLM(BertConfig(vocab_size=vocab, **small))
        else:
            model = DistilBertForMaskedLM(DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64))
    elif family == "roberta":
        tokenizer = byte_level_tokenizer(mask=True)
        model = RobertaForMaskedLM(RobertaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **small))
    elif family == "gpt2":
        tokenizer = byte_level_tokenizer(mask=False)
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=3, n_head=4, **ids))
    elif family == "llama":
        tokenizer = byte_level_tokenizer(mask=False)
        model = LlamaForCausalLM(
            LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=2, **small)  # grouped-query attention
        )
    else:
        raise ValueError(family)
    return loading.from_parts(f"tiny-{family}", model, tokenizer)
