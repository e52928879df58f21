"""A sample of an input: at most ``--max-tokens-total`` of the model's tokens, cut at a sentence and
spread over the input's files.

Counted with the model's own fast tokenizer (no special tokens: the corpus indexes every token but
those), so the cap holds to one sentence whatever the text's characters per token: a character
estimate missed it by 8 % on English prose and by far more on other scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from transformers import PreTrainedTokenizerBase

from exbert_core.corpus.build.pipeline import CHARS_PER_TOKEN

MIN_SHARE_TOKENS = 200  # a sample takes at least this much of each file it draws from
MIN_PIECE_TOKENS = 8  # less of a text than this is no sentence: the sample stops instead
F = TypeVar("F")  # a file: a local path, or a path on the hub
_SENTENCE_ENDS = (". ", "? ", "! ", ".\n", "?\n", "!\n")


class TokenMeter:
    """Text measured in one model's tokens. Only a window of a long text is tokenized (about twice
    the characters the tokens usually take, widened until it holds them), so measuring the start of
    a 100 MB text costs what its start costs."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if not tokenizer.is_fast:
            raise ValueError("counting a sample needs a fast tokenizer (character offsets)")
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        """The tokens of ``text``."""
        return len(self._offsets(text))

    def prefix_chars(self, text: str, tokens: int) -> int:
        """The length of ``text``'s longest start that holds at most ``tokens`` tokens (``len(text)``
        when all of it does)."""
        window = int(tokens * CHARS_PER_TOKEN * 2) + 64
        while True:
            if window >= len(text):
                offsets = self._offsets(text)
                return len(text) if len(offsets) <= tokens else offsets[tokens][0]
            # The window ends before a space, so its last word is whole and every token in it is
            # the token the whole text has there.
            cut = text.rfind(" ", 0, window)
            offsets = self._offsets(text[:cut if cut > 0 else window])
            if len(offsets) > tokens:
                return offsets[tokens][0]
            window *= 2

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        # verbose=False: no "longer than the model's maximum" warning; nothing here runs the model.
        encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                  return_attention_mask=False, verbose=False)
        return encoded["offset_mapping"]


def sample_text(text: str, max_tokens: int | None, meter: TokenMeter | None) -> str:
    """The first ``max_tokens`` tokens of one text at most, cut at the last end of a paragraph, a
    line or a sentence before that, else at a space: the sample ends within one sentence of the cap.
    ``text`` itself when it fits or when there is no cap."""
    if max_tokens is None:
        return text
    budget = _meter(meter).prefix_chars(text, max_tokens)
    if budget >= len(text):
        return text
    line = text.rfind("\n", 0, budget)
    sentence = max(text.rfind(end, 0, budget) + 1 for end in _SENTENCE_ENDS)  # keeps its mark
    cut = max(line, sentence)
    if cut <= 0:
        cut = text.rfind(" ", 0, budget)
    return text[:cut].rstrip() if cut > 0 else text[:budget]


def spread_files(files: int, tokens: int) -> list[int]:
    """Which of ``files`` files (their indices) a sample of ``tokens`` tokens draws from: all of
    them, or, when each would give less than :data:`MIN_SHARE_TOKENS`, files evenly spaced over the
    list (so a sample of a folder of 1,000 chapters is not the first chapters alone)."""
    count = max(1, min(files, tokens // MIN_SHARE_TOKENS))
    return [i * files // count for i in range(count)]


@dataclass(frozen=True)
class _Place(Generic[F]):
    """Where the next sample text of a file starts: after its first ``texts`` texts and ``chars``
    characters of the next one."""

    file: F
    texts: int = 0
    chars: int = 0


def up_to(files: list[F], read: Callable[[F], Iterator[str]], max_tokens_total: int | None,
          meter: TokenMeter | None) -> Iterator[str]:
    """The texts of ``files`` (``read(file)`` gives one file's texts) until ``max_tokens_total``
    tokens were given, spread over the files: :func:`spread_files` picks the files to draw from,
    each gives at most its share of what is left (a text that crosses the share is cut at a
    paragraph or sentence, :func:`sample_text`), and what a short file leaves goes to the files
    after it. When the files drawn from held less than the cap, the sample goes on in the files not
    yet read, spread again, so that a folder of short files fills the cap too; when every file was
    read and the last ones were short, it goes on in the files whose share ran out, from where it
    ended. The sample ends within one sentence of the cap (or at the input's end), and no file is
    read past the end of what it gave."""
    if max_tokens_total is None:
        for file in files:
            yield from read(file)
        return
    meter = _meter(meter)
    left = max_tokens_total
    unread: list[_Place[F]] = [_Place(file) for file in files]
    cut: list[_Place[F]] = []  # files whose share ran out before their end
    while left >= MIN_PIECE_TOKENS and (unread or cut):
        pool = unread if unread else cut
        chosen = spread_files(len(pool), left)
        stopped_now: list[_Place[F]] = []
        for done, index in enumerate(chosen):
            share = left // (len(chosen) - done)
            given, stopped = yield from _draw(pool[index], read, share, meter)
            left -= given
            if stopped is not None:
                stopped_now.append(stopped)
            if left < MIN_PIECE_TOKENS:
                return
        drawn = set(chosen)
        rest = [place for index, place in enumerate(pool) if index not in drawn]
        if pool is unread:
            unread, cut = rest, cut + stopped_now
        else:
            cut = rest + stopped_now


def _draw(place: _Place[F], read: Callable[[F], Iterator[str]], share: int,
          meter: TokenMeter) -> Generator[str, None, tuple[int, _Place[F] | None]]:
    """Gives ``place``'s file's texts from ``place`` on, up to ``share`` tokens. Returns the tokens
    given and where the file's next text starts when the share ran out first (None at its end): a
    text cut at a sentence stops the file there, though the cut left part of the share (that part
    goes to the next files, and the rest of the text waits for a top-up)."""
    given = 0
    for number, text in enumerate(read(place.file)):
        if number < place.texts:
            continue
        rest = text[place.chars:] if number == place.texts else text
        start = len(text) - len(rest)
        stripped = rest.lstrip()  # a cut leaves a space or line break
        if not stripped:
            continue
        start += len(rest) - len(stripped)
        piece = sample_text(stripped, max(1, share - given), meter)
        yield piece
        given += meter.count(piece)
        end = start + len(piece)
        if end < len(text.rstrip()):
            return given, _Place(place.file, number, end)
        if share - given < MIN_PIECE_TOKENS:
            return given, _Place(place.file, number + 1)
    return given, None


def _meter(meter: TokenMeter | None) -> TokenMeter:
    if meter is None:
        raise ValueError("a sample of --max-tokens-total tokens is counted with the model's tokenizer: pass a TokenMeter")
    return meter
