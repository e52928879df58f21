"""Analysis of one sentence: tokens, attention, hidden states, head contexts, predictions."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from exbert_core.errors import InputError
from exbert_core.limits import MAX_SENTENCE_CHARS, MAX_TOP_K
from exbert_core.model import forward
from exbert_core.model.loading import LoadedModel
from exbert_core.model.visible import has_visible_text


@dataclass(frozen=True)
class Token:
    """One model token. ``start``/``end`` are character offsets into the sentence
    (``start == end`` for special tokens); ``word`` is the tokenizer's word index."""

    position: int
    text: str
    id: int
    start: int
    end: int
    word: int | None
    special: bool


@dataclass(frozen=True)
class Candidate:
    """One predicted token and its probability."""

    token: str
    prob: float


@dataclass(frozen=True)
class Analysis:
    """Everything the views need about one sentence under one model (an immutable value).

    attention: ``[layers, heads, tokens, tokens]`` float32, rows sum to 1
    hidden: ``[layers + 1, tokens, hidden]`` float32, embedding output first
    contexts: ``[layers, tokens, heads, head_dim]`` float32, per-head attention-weighted values
    predictions: per position, the top-k from the LM head (masked LM: the token itself; causal:
        the next token), or None without an LM head
    layer_predictions: ``[layers][tokens][k]``, the logit lens (LM head on each layer's output)
    values: ``[layers, tokens, kv_heads * head_dim]`` float32, each layer's value vectors (what the
        value-aware measures of :mod:`exbert_core.model.measures` read), or None for a family
        whose value projections are not known
    """

    model: str
    sentence: str
    tokens: tuple[Token, ...]
    masked: tuple[int, ...]
    attention: np.ndarray
    hidden: np.ndarray
    contexts: np.ndarray
    predictions: tuple[tuple[Candidate, ...], ...] | None
    layer_predictions: tuple[tuple[tuple[Candidate, ...], ...], ...] | None
    warnings: tuple[str, ...] = field(default=())
    values: np.ndarray | None = None

    @property
    def layers(self) -> int:
        return self.attention.shape[0]

    @property
    def heads(self) -> int:
        return self.attention.shape[1]


def clean_sentence(sentence: str) -> str:
    """Normalise to NFC and strip surrounding white space; reject empty or invisible input, lone
    surrogates (bytes that were not UTF-8, e.g. in a command-line argument) and input longer than
    ``MAX_SENTENCE_CHARS``."""
    if not isinstance(sentence, str):
        raise InputError("The sentence must be text.")
    if len(sentence) > MAX_SENTENCE_CHARS:
        raise InputError(
            f"The sentence has {len(sentence):,} characters; at most {MAX_SENTENCE_CHARS:,} are analysed. "
            "Use a shorter excerpt."
        )
    bad = next((i for i, ch in enumerate(sentence) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        raise InputError(
            f"The sentence has an invalid character at position {bad} (a lone surrogate: "
            "bytes that are not UTF-8). Type or pass the sentence as UTF-8 text."
        )
    text = unicodedata.normalize("NFC", sentence).strip()
    if not has_visible_text(text):
        raise InputError("The sentence is empty: type a sentence to analyse.")
    return text


def word_position(tokens: Sequence[Token], position: int, purpose: str) -> int:
    """``position`` if it is a word token of ``tokens``, else InputError: out of range, or a
    special token ([CLS], [SEP], <s>...), which the model adds and no one typed. The one contract
    of the app and the command line for what may be masked or searched from; ``purpose`` ends the
    message ("masked", "searched from")."""
    n = len(tokens)
    if not 0 <= position < n:
        raise InputError(f"Token position {position} is out of range: the sentence has {n} tokens (0-{n - 1}).")
    if tokens[position].special:
        words = [t.position for t in tokens if not t.special]
        choice = f"a word token ({words[0]}-{words[-1]})" if words else "a sentence with words"
        raise InputError(
            f"Token {position} is the special token {tokens[position].text}, which cannot be {purpose}; choose {choice}."
        )
    return position


def tokenize(loaded: LoadedModel, sentence: str) -> tuple[list[Token], bool]:
    """Tokenize with character offsets, truncating to the model's maximum.

    Returns the tokens and whether the sentence was truncated.
    """
    tokenizer = loaded.tokenizer
    enc = tokenizer(
        sentence,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=False,
        truncation=True,
        max_length=loaded.info.max_tokens,
    )
    # verbose=False: a sentence over the model's maximum is expected here (cut above, and said so),
    # so the tokenizer's "will result in indexing errors" warning would only mislead.
    full_length = len(tokenizer(sentence, truncation=False, verbose=False)["input_ids"])
    ids = enc["input_ids"]
    texts = tokenizer.convert_ids_to_tokens(ids)
    words = enc.word_ids()
    tokens = [
        Token(
            position=i,
            text=texts[i],
            id=int(ids[i]),
            start=int(enc["offset_mapping"][i][0]),
            end=int(enc["offset_mapping"][i][1]),
            word=words[i],
            special=bool(enc["special_tokens_mask"][i]),
        )
        for i in range(len(ids))
    ]
    return tokens, full_length > len(ids)


def analyze(
    loaded: LoadedModel,
    sentence: str,
    masks: tuple[int, ...] | list[int] = (),
    *,
    top_k: int = 5,
    logit_lens: bool = False,
) -> Analysis:
    """Analyse ``sentence`` with the tokens at ``masks`` (positions, specials counted) masked.

    ``logit_lens=True`` also fills ``layer_predictions`` for every position; that costs the LM
    head once per layer and token (SmolLM2: ~7x the forward pass), so views that show one
    token use :func:`lens_at` instead.

    Raises InputError for an empty sentence, a mask position out of range or on a special token,
    masking on a model whose tokenizer has no mask token, or ``top_k`` outside 1..MAX_TOP_K.
    """
    sentence = clean_sentence(sentence)
    _check_top_k(top_k)
    info = loaded.info
    warnings: list[str] = []
    with loaded.lock:  # the fast tokenizer and the model are shared across sessions
        tokens, truncated = tokenize(loaded, sentence)
        if truncated:
            warnings.append(
                f"The sentence is longer than {info.max_tokens} tokens; only the first "
                f"{info.max_tokens} were analysed."
            )
        masked = _validated_masks(loaded, masks, tokens)
        ids = torch.tensor([[t.id for t in tokens]])
        for position in masked:
            ids[0, position] = loaded.tokenizer.mask_token_id
        out = forward.run(loaded, ids, torch.ones_like(ids))
        predictions = layer_predictions = None
        if info.has_lm_head:
            predictions = _top_k(loaded, out.logits[0], top_k)
            if logit_lens:
                lens = _lens_logits(loaded, out.hidden[0, 1:])  # [layers, tokens, vocab]
                layer_predictions = tuple(_top_k(loaded, layer, top_k) for layer in lens)
    if masked:
        mask_text = loaded.tokenizer.mask_token
        tokens = [
            Token(t.position, mask_text, loaded.tokenizer.mask_token_id, t.start, t.end, t.word, t.special)
            if t.position in masked
            else t
            for t in tokens
        ]
    return Analysis(
        model=info.name,
        sentence=sentence,
        tokens=tuple(tokens),
        masked=masked,
        attention=out.attention[0].float().numpy().copy(),
        hidden=out.hidden[0].float().numpy().copy(),
        contexts=out.contexts[0].float().numpy().copy(),
        predictions=predictions,
        layer_predictions=layer_predictions,
        warnings=tuple(warnings),
        values=None if out.values is None else out.values[0].float().numpy().copy(),
    )


def lens_at(loaded: LoadedModel, analysis: Analysis, position: int, top_k: int = 5) -> tuple[tuple[Candidate, ...], ...]:
    """The logit lens for one token: the top-k of the LM head applied to its hidden state after
    each layer, ``[layers][k]`` (the last layer equals the model's own prediction).

    Raises InputError for a model without an LM head or a position out of range.
    """
    info = loaded.info
    if not info.has_lm_head:
        raise InputError(f"{info.name} has no LM head, so it has no logit lens; 'smollm2' has one.")
    if not 0 <= position < len(analysis.tokens):
        raise InputError(f"Token position {position} is out of range: the sentence has {len(analysis.tokens)} tokens.")
    _check_top_k(top_k)
    hidden = torch.from_numpy(analysis.hidden[1:, position])  # [layers, hidden]
    with loaded.lock, torch.inference_mode():
        return _top_k(loaded, _lens_logits(loaded, hidden), top_k)


def _lens_logits(loaded: LoadedModel, hidden: torch.Tensor) -> torch.Tensor:
    """LM-head logits of each layer's output ``[layers, ..., hidden]`` -> ``[layers, ..., vocab]``.
    The last layer's state is already normalised by the model: no second final norm there."""
    return torch.cat([loaded.lm_logits(hidden[:-1]), loaded.lm_logits(hidden[-1:], final=True)])


def _validated_masks(loaded: LoadedModel, masks: Iterable[int], tokens: Sequence[Token]) -> tuple[int, ...]:
    masked = tuple(sorted({int(m) for m in masks}))
    if not masked:
        return masked
    if loaded.tokenizer.mask_token_id is None:
        raise InputError(
            f"{loaded.info.name} has no mask token (it is a causal model that reads left to right), "
            "so tokens cannot be masked. Use a masked language model such as minilm or bert-base-uncased."
        )
    for position in masked:
        word_position(tokens, position, "masked")
    return masked


def _check_top_k(top_k: int) -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"The number of predictions per token must be from 1 to {MAX_TOP_K}, got {top_k}.")


def _top_k(loaded: LoadedModel, logits: torch.Tensor, k: int) -> tuple[tuple[Candidate, ...], ...]:
    """Top-k candidates per position from logits ``[tokens, vocab]``."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, k=min(k, probs.shape[-1]), dim=-1)
    ids = top.indices.tolist()
    texts = loaded.tokenizer.batch_decode([[i] for row in ids for i in row])
    values = top.values.tolist()
    return tuple(
        tuple(Candidate(texts[r * len(row) + j], float(values[r][j])) for j in range(len(row)))
        for r, row in enumerate(ids)
    )
