"""From raw text to annotated, model-tokenized corpus sentences (the first half of a build).

spaCy parses the text in pieces of at most ``MAX_PARSE_CHARS`` characters, in batches of at most
``PARSE_BATCH_CHARS``: its memory and time per piece grow with the piece, so they are bounded
whatever the text's layout (a file with one sentence per line and no blank line is one paragraph;
in one piece its 1.15 MB exceeded spaCy's 1,000,000-character limit, and 990,000 characters took
363 s and 3.4 GB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Span

from exbert_core.errors import BuildError
from exbert_core.limits import MAX_PARSE_CHARS, MIN_SPLIT_TOKENS, PARSE_BATCH_CHARS
from exbert_core.model.analysis import has_visible_text
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


# Where a long paragraph may be cut, best first: after a line that ends a sentence, after a
# sentence end inside a line, at any line end, at any space (failing all: at the limit).
_SENTENCE_END = r"[.!?\u2026][\"'\u201d\u2019)\]]*"
_CUTS = (
    re.compile(_SENTENCE_END + r"[ \t]*\n\s*"),
    re.compile(_SENTENCE_END + r"\s+"),
    re.compile(r"\n\s*"),
    re.compile(r"\s+"),
)


def paragraphs(text: str, max_chars: int = MAX_PARSE_CHARS) -> list[str]:
    """Blank-line separated paragraphs, each folded onto one line; a paragraph longer than
    ``max_chars`` becomes several pieces, cut at the best boundary of :data:`_CUTS` within reach.
    Paragraphs without visible characters (only white space, control or format characters such as
    zero-width spaces) are dropped."""
    pieces = []
    for block in text.split("\n\n"):
        lines = "\n".join(" ".join(line.split()) for line in block.split("\n") if line.strip())
        for piece in _cut(lines, max_chars):
            folded = " ".join(piece.split())
            if has_visible_text(folded):
                pieces.append(folded)
    return pieces


def _cut(text: str, max_chars: int) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``max_chars`` characters."""
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        for pattern in _CUTS:
            last = None
            for last in pattern.finditer(text, start, end):
                pass
            if last is not None:
                end = last.end()
                break
        yield text[start:end]
        start = end
    yield text[start:]


def _batches(pieces: Iterable[str], max_chars: int, max_docs: int) -> Iterator[list[str]]:
    """Consecutive pieces, at most ``max_docs`` and (unless one piece alone) ``max_chars`` per batch."""
    batch: list[str] = []
    size = 0
    for piece in pieces:
        if batch and (size + len(piece) > max_chars or len(batch) >= max_docs):
            yield batch
            batch, size = [], 0
        batch.append(piece)
        size += len(piece)
    if batch:
        yield batch


def _relative_words(sent: Span) -> tuple[WordAnnotation, ...]:
    """Word annotations of a spaCy sentence, with offsets and head indices relative to it."""
    return tuple(word_annotations(sent.as_doc()))


def annotated_sentences(
    text: str,
    nlp: Language,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 64,
    max_chars: int = MAX_PARSE_CHARS,
) -> Iterator[CorpusSentence]:
    """Split ``text`` into sentences with spaCy (``nlp.pipe`` over :func:`paragraphs`, at most
    ``batch_size`` pieces and ``PARSE_BATCH_CHARS`` characters per batch) and annotate their words.

    ``progress(done, total)`` counts characters of text parsed so far. Raises BuildError when the
    text has no sentence with a visible character.
    """
    pieces = paragraphs(text, max_chars)
    total = sum(len(p) for p in pieces)
    done = found = 0
    for batch in _batches(pieces, PARSE_BATCH_CHARS, batch_size):
        for piece, doc in zip(batch, nlp.pipe(batch, batch_size=len(batch))):
            for sent in doc.sents:
                if has_visible_text(sent.text):
                    found += 1
                    yield CorpusSentence(sent.text, _relative_words(sent))
            done += len(piece)
            if progress:
                progress(done, total)
    if not found:
        raise BuildError(
            "The text has no sentences to index: it is empty or holds only white space, control or "
            "format characters (such as zero-width spaces)."
        )


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
