"""Text to corpus sentences: spaCy parses bounded pieces whatever the layout of the text.

A common layout, one sentence per line with no blank line, is one paragraph: parsed whole, a
1.15 MB file failed with spaCy's E088 (more than 1,000,000 characters) and 990,000 characters took
363 s and 3.4 GB. The texts here are generated (no third-party text is committed).
"""

from __future__ import annotations

import random
import re

import pytest

from exbert_core.corpus.build import parsing, sources
from exbert_core.limits import MAX_PARSE_CHARS, PARSE_BATCH_CHARS

SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def one_sentence_per_line(chars: int, seed: int = 0) -> str:
    """Varied made-up sentences, one per line, no blank line, about ``chars`` characters."""
    rng = random.Random(seed)
    subjects = ["The old sailor", "A tired student", "My neighbour", "The small dog", "Every engineer",
                "Her brother", "The committee", "A young painter", "Our teacher", "The baker"]
    verbs = ["walked to", "looked at", "wrote about", "forgot", "painted", "repaired", "visited", "described"]
    objects = ["the harbour", "a broken clock", "the red house", "an empty room", "the long bridge",
               "a quiet garden", "the city library", "an old letter", "the last train", "a green boat"]
    tails = ["before dawn", "in the rain", "after dinner", "with great care", "for the third time",
             "without a word", "near the station", "on Sunday", "twice", "at noon"]
    lines, size = [], 0
    while size < chars:
        line = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}{rng.choice('.!?.')}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def test_a_text_without_blank_lines_parses_in_bounded_pieces(nlp, monkeypatch):
    document = one_sentence_per_line(1_150_000)
    assert "\n\n" not in document and len(document) > nlp.max_length  # one paragraph, past E088
    batches: list[list[str]] = []
    real_pipe = nlp.pipe

    def recording_pipe(texts, **kwargs):
        batches.append(list(texts))
        return real_pipe(batches[-1], **kwargs)

    monkeypatch.setattr(nlp, "pipe", recording_pipe)
    progress = []
    # Sentence boundaries are the parser's: the other components (tagger, NER, lemmas: 3.5x the
    # time, tested elsewhere) are switched off here.
    with nlp.select_pipes(enable=["tok2vec", "parser"]):
        sentences = [s.text for s in parsing.annotated_sentences(document, nlp, lambda d, t: progress.append((d, t)))]
    assert sentences == document.splitlines()  # every line is a sentence, none cut or glued
    assert max(len(piece) for batch in batches for piece in batch) <= MAX_PARSE_CHARS
    assert max(sum(map(len, batch)) for batch in batches) <= PARSE_BATCH_CHARS
    assert progress[-1][0] == progress[-1][1] and len(progress) == len(batches) > 15  # after each batch


def test_long_paragraphs_are_cut_at_sentence_ends_and_nothing_is_lost():
    prose = one_sentence_per_line(30_000, seed=1)
    # Hard-wrapped at 70 columns (lines end mid-sentence), and the same prose on one line.
    wrapped = "\n".join(re.findall(r".{1,70}(?:\s|$)", prose.replace("\n", " ")))
    for layout in (prose, wrapped, prose.replace("\n", " ")):
        pieces = parsing.paragraphs(layout, max_chars=1000)
        assert " ".join(pieces) == " ".join(layout.split())
        assert len(pieces) > 30 and all(len(p) <= 1000 for p in pieces)
        assert all(SENTENCE_END.search(p) for p in pieces)


def test_text_without_any_boundary_is_cut_at_the_limit():
    pieces = parsing.paragraphs("x" * 2500 + " tail.", max_chars=1000)
    assert [len(p) for p in pieces] == [1000, 1000, 506]


def test_sentences_of_normal_text_are_unchanged(shared_alice):
    """Paragraphs shorter than the limit (every one of Alice's) are parsed whole, as before."""
    alice = shared_alice.read_text(encoding="utf-8")
    whole = [" ".join(p.split()) for p in alice.split("\n\n") if p.strip()]
    assert parsing.paragraphs(alice) == whole


@pytest.mark.parametrize("blank", ["\u200b\u200c\u200d\u2060", "\ufeff \t\u00ad", "\x01\x02\x7f", "\u2028\u2029"])
def test_paragraphs_of_invisible_characters_are_blank(blank):
    assert parsing.paragraphs(f"{blank}\n\nReal words.\n\n{blank}{blank}") == ["Real words."]


@pytest.fixture(scope="module")
def shared_alice():
    return sources.fetch_source("alice")
