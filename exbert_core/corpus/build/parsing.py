"""From raw text to annotated sentences with spaCy (the model-free half of a build's first stage).

spaCy parses the text in pieces of at most ``MAX_PARSE_CHARS`` characters, in batches of at most
``PARSE_BATCH_CHARS``: its memory and time per piece grow with the piece, so they are bounded
whatever the text's layout (a file with one sentence per line and no blank line is one paragraph;
in one piece its 1.15 MB exceeded spaCy's 1,000,000-character limit, and 990,000 characters took
363 s and 3.4 GB).

The batches of a list of pieces are fixed (:func:`parse_batches`) and a batch is parsed whole
wherever it runs (:func:`parse_batch`), so a parse spread over worker processes
(:mod:`exbert_core.corpus.build.parser`) gives the very sentences and annotations of a parse in
one process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Span

from exbert_core.errors import BuildError
from exbert_core.limits import MAX_PARSE_CHARS, PARSE_BATCH_CHARS
from exbert_core.model.annotate import WordAnnotation, word_annotations
from exbert_core.model.visible import has_visible_text

PARSE_BATCH_DOCS = 64  # pieces per spaCy batch (and at most PARSE_BATCH_CHARS characters)


@dataclass(frozen=True)
class CorpusSentence:
    """One corpus sentence: its text and spaCy words (offsets relative to the sentence)."""

    text: str
    words: tuple[WordAnnotation, ...]


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


def parse_batches(pieces: Sequence[str], max_chars: int = PARSE_BATCH_CHARS,
                  max_docs: int = PARSE_BATCH_DOCS) -> list[list[str]]:
    """Consecutive pieces, at most ``max_docs`` and (unless one piece alone) ``max_chars`` per
    batch: the units spaCy parses, the same whoever parses them."""
    batches: list[list[str]] = []
    batch: list[str] = []
    size = 0
    for piece in pieces:
        if batch and (size + len(piece) > max_chars or len(batch) >= max_docs):
            batches.append(batch)
            batch, size = [], 0
        batch.append(piece)
        size += len(piece)
    if batch:
        batches.append(batch)
    return batches


def _relative_words(sent: Span) -> tuple[WordAnnotation, ...]:
    """Word annotations of a spaCy sentence, with offsets and head indices relative to it."""
    return tuple(word_annotations(sent.as_doc()))


def parse_batch(nlp: Language, batch: Sequence[str]) -> list[CorpusSentence]:
    """The sentences of one batch of pieces (spaCy's ``pipe`` over the whole batch), with their
    annotated words; sentences without a visible character are left out."""
    sentences = []
    # spaCy's vocabulary keeps every new word it sees; the zone frees them after the batch (the
    # annotations are plain strings already), so parsing a long text does not grow memory.
    with nlp.memory_zone():
        for doc in nlp.pipe(batch, batch_size=len(batch)):
            sentences += [CorpusSentence(s.text, _relative_words(s)) for s in doc.sents if has_visible_text(s.text)]
    return sentences


def annotated_sentences(
    text: str,
    nlp: Language,
    progress: Callable[[int, int], None] | None = None,
    max_chars: int = MAX_PARSE_CHARS,
) -> Iterator[CorpusSentence]:
    """Split ``text`` into sentences with spaCy in this process (:func:`parse_batch` over the
    :func:`parse_batches` of its :func:`paragraphs`) and annotate their words.

    ``progress(done, total)`` counts characters of text parsed so far. Raises BuildError when the
    text has no sentence with a visible character.
    """
    pieces = paragraphs(text, max_chars)
    total = sum(len(p) for p in pieces)
    done = found = 0
    for batch in parse_batches(pieces):
        for sentence in parse_batch(nlp, batch):
            found += 1
            yield sentence
        done += sum(len(p) for p in batch)
        if progress:
            progress(done, total)
    if not found:
        raise BuildError(
            "The text has no sentences to index: it is empty or holds only white space, control or "
            "format characters (such as zero-width spaces)."
        )

