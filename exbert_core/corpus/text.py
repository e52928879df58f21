"""From raw text to annotated, model-tokenized corpus sentences (the first half of a build)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from spacy.language import Language
from spacy.tokens import Span

from exbert_core.model.annotate import WordAnnotation, align, word_annotations
from exbert_core.model.loading import LoadedModel


@dataclass(frozen=True)
class CorpusSentence:
    """One corpus sentence: its text and spaCy words (offsets relative to the sentence)."""

    text: str
    words: tuple[WordAnnotation, ...]


@dataclass(frozen=True)
class EncodedSentence:
    """A sentence tokenized for the model. ``word_of[i]`` is the index into ``sentence.words``
    of token i's word, or None for special tokens."""

    sentence: CorpusSentence
    ids: tuple[int, ...]
    special: tuple[bool, ...]
    word_of: tuple[int | None, ...]


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each folded onto one line."""
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def _relative_words(sent: Span) -> tuple[WordAnnotation, ...]:
    """Word annotations of a spaCy sentence, with offsets and head indices relative to it."""
    return tuple(word_annotations(sent.as_doc()))


def annotated_sentences(
    text: str, nlp: Language, progress: Callable[[int, int], None] | None = None, batch_size: int = 64
) -> Iterator[CorpusSentence]:
    """Split ``text`` into sentences with spaCy (batched ``nlp.pipe``) and annotate their words.

    ``progress(done, total)`` counts characters of text parsed so far.
    """
    paras = paragraphs(text)
    total = sum(len(p) for p in paras)
    done = 0
    for para, doc in zip(paras, nlp.pipe(paras, batch_size=batch_size)):
        for sent in doc.sents:
            if sent.text.strip():
                yield CorpusSentence(sent.text, _relative_words(sent))
        done += len(para)
        if progress:
            progress(done, total)


def encode(loaded: LoadedModel, sentence: CorpusSentence, max_tokens: int) -> list[EncodedSentence]:
    """Tokenize ``sentence``; when longer than ``max_tokens``, split it at word boundaries into
    pieces that fit (never dropped). Each piece is re-annotated relative to itself."""
    tokenizer = loaded.tokenizer
    # verbose=False: a too-long sentence is expected here; it is split below.
    enc = tokenizer(sentence.text, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
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
