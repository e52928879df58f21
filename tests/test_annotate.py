"""spaCy annotations aligned to model tokens by character offsets, on tricky strings."""

from __future__ import annotations

import pytest
from conftest import PAPER_SENTENCE
from tiny_models import tiny

from exbert_core.model import analysis
from exbert_core.model.annotate import annotate_analysis


def aligned(loaded, nlp, sentence):
    result = analysis.analyze(loaded, sentence, logit_lens=False)
    return result, annotate_analysis(result, nlp)


def test_escape_is_a_verb_on_the_right_token(minilm, nlp):
    result, words = aligned(minilm, nlp, PAPER_SENTENCE)
    escape = [i for i, t in enumerate(result.tokens) if t.text == "escape"]
    assert escape == [9]
    assert words[9].pos == "VERB" and words[9].text == "escape"
    assert words[0] is None and words[-1] is None  # [CLS], [SEP] carry nothing
    assert words[2].dep == "nsubj" and words[2].head == words[3].index and words[3].text == "ran"


TRICKY = [
    ("I don't think it's over.", {"don": "do", "'": "n't", "t": "n't", "it": "it"}),
    ("A well-known hyphen-ated word.", {"well": "well", "-": "-", "known": "known"}),
    ("It cost 1,234,567 dollars.", {"1": "1,234,567", "234": "1,234,567", "7": "1,234,567"}),
    ("Naïve émigrés visited the café.", {"naive": "Naïve", "emi": "émigrés", "cafe": "café"}),
    ("She smiled 😀 and left.", {"[UNK]": "😀", "left": "left"}),
    ("Too    many     spaces here.", {"many": "many", "spaces": "spaces"}),
    ('He said "hello" and \'bye\'.', {'"': '"', "hello": "hello", "bye": "bye"}),
]


@pytest.mark.parametrize("sentence, expected", TRICKY)
def test_wordpiece_alignment_on_tricky_strings(minilm, nlp, sentence, expected):
    result, words = aligned(minilm, nlp, sentence)
    by_text: dict[str, str] = {}
    for token, word in zip(result.tokens, words):
        if not token.special:
            assert word is not None, f"{token.text!r} has no word"
            assert token.start < word.end and word.start < token.end  # spans overlap
            by_text.setdefault(token.text.lstrip("#"), word.text)
    for token_text, word_text in expected.items():
        assert by_text[token_text] == word_text


def test_sub_tokens_inherit_their_words_annotation(minilm, nlp):
    result, words = aligned(minilm, nlp, "The unbelievably quarrelsome hippopotamus yawned.")
    pieces = [(t.text, w.text, w.pos) for t, w in zip(result.tokens, words) if w and w.text == "hippopotamus"]
    assert len(pieces) > 1 and {p[2] for p in pieces} == {"NOUN"}


def test_leading_space_is_stripped_and_offsets_still_match(minilm, nlp):
    result, words = aligned(minilm, nlp, "   Leading spaces matter.")
    assert result.sentence == "Leading spaces matter."
    assert words[1].text == "Leading"


@pytest.mark.parametrize("family", ["roberta", "gpt2", "llama"])
def test_byte_level_tokens_align_by_offsets(family, minilm, nlp):
    """Byte-level BPE marks spaces with Ġ and its offsets may include the space: same method."""
    loaded = tiny(family, minilm.tokenizer)
    sentence = "Don't stop; it's 1,234 steps to the café — naïve émigrés smile 😀."
    result, words = aligned(loaded, nlp, sentence)
    for token, word in zip(result.tokens, words):
        if token.special:
            assert word is None
        else:
            assert word is not None
            assert token.start < word.end and word.start < token.end  # spans overlap
    texts = {w.text for w in words if w}
    assert {"stop", "1,234", "café", "😀"} <= texts
