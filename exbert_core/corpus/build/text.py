"""Annotated corpus sentences tokenized for the model (the second half of a build's first stage):
token ids, which tokens are special, and the spaCy word of each token; sentences longer than a
build's ``max_tokens`` are split at word boundaries. The sentences come from
:mod:`exbert_core.corpus.build.parsing`.
"""

from __future__ import annotations

from dataclasses import dataclass

from exbert_core.corpus.build.parsing import CorpusSentence
from exbert_core.errors import BuildError
from exbert_core.limits import MIN_SPLIT_TOKENS
from exbert_core.model.annotate import WordAnnotation, align
from exbert_core.model.loading import LoadedModel


@dataclass(frozen=True)
class EncodedSentence:
    """A sentence tokenized for the model. ``word_of[i]`` is the index into ``sentence.words``
    of token i's word, or None for special tokens."""

    sentence: CorpusSentence
    ids: tuple[int, ...]
    special: tuple[bool, ...]
    word_of: tuple[int | None, ...]


def check_max_tokens(loaded: LoadedModel, max_tokens: int) -> int:
    """``max_tokens`` if sentence pieces of that many model tokens make sense for ``loaded``:
    from ``MIN_SPLIT_TOKENS`` (room for the special tokens and a few words) to the model's own
    maximum. BuildError otherwise."""
    if not MIN_SPLIT_TOKENS <= max_tokens <= loaded.info.max_tokens:
        raise BuildError(
            f"max_tokens must be from {MIN_SPLIT_TOKENS} to {loaded.info.max_tokens} "
            f"({loaded.info.name} reads at most {loaded.info.max_tokens} tokens), got {max_tokens}."
        )
    return max_tokens


def encode(loaded: LoadedModel, sentence: CorpusSentence, max_tokens: int) -> list[EncodedSentence]:
    """Tokenize ``sentence``; when longer than ``max_tokens``, split it at word boundaries into
    pieces that fit (never dropped). Each piece is re-annotated relative to itself.

    Raises BuildError for a ``max_tokens`` that :func:`check_max_tokens` refuses."""
    check_max_tokens(loaded, max_tokens)
    # Under the model's lock: the fast tokenizer is shared with the app's sessions, and a call
    # that switches its truncation on or off while another reads it fails ("Already borrowed").
    # verbose=False: a too-long sentence is expected here; it is split below.
    with loaded.lock:
        enc = loaded.tokenizer(
            sentence.text, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False
        )
    if len(enc["input_ids"]) <= max_tokens or len(sentence.words) < 2:
        ids = enc["input_ids"][:max_tokens]
        special = [bool(s) for s in enc["special_tokens_mask"][:max_tokens]]
        spans = [tuple(o) for o in enc["offset_mapping"][:max_tokens]]
        return [EncodedSentence(sentence, tuple(ids), tuple(special), tuple(_word_of(sentence, spans, special)))]
    half = len(sentence.words) // 2
    return encode(loaded, _piece(sentence, 0, half), max_tokens) + encode(
        loaded, _piece(sentence, half, len(sentence.words)), max_tokens
    )


def _piece(sentence: CorpusSentence, first: int, last: int) -> CorpusSentence:
    """Words ``[first, last)`` of a sentence as a sentence of their own (offsets and heads
    shifted; heads outside the piece point to the word itself)."""
    words = sentence.words[first:last]
    base = words[0].start
    text = sentence.text[base : words[-1].end]
    shifted = tuple(
        WordAnnotation(
            index=w.index - first,
            text=w.text,
            start=w.start - base,
            end=w.end - base,
            pos=w.pos,
            tag=w.tag,
            dep=w.dep,
            head=w.head - first if first <= w.head < last else w.index - first,
            ner=w.ner,
            iob=w.iob,
            lemma=w.lemma,
            is_punct=w.is_punct,
        )
        for w in words
    )
    return CorpusSentence(text, shifted)


def _word_of(sentence: CorpusSentence, spans: list[tuple[int, int]], special: list[bool]) -> list[int | None]:
    return align(sentence.words, spans, special)
