"""match_table: the corpus view's HTML escapes every corpus string; context strips; CSV export."""

from __future__ import annotations

import csv
import html
import io
import re

from exbert_core.corpus.search.query import CorpusToken, Match, MaxAttention, SearchResult
from exbert_core.views import match_table

EVIL = '<script>alert("x")</script>'


def _token(row: int, position: int, text: str, sentence: str, word: str | None = None, **ann) -> CorpusToken:
    word = word if word is not None else text
    start = sentence.find(word)
    return CorpusToken(row=row, position=position, token=text, word=word, word_start=start,
                       word_end=start + len(word) if start >= 0 else -1, pos=ann.get("pos", "NOUN"),
                       tag="NN", dep=ann.get("dep", "nsubj"), ner=ann.get("ner", ""), lemma=word.lower())


def _match(sentence: str, words: list[str], hit: int, attended: int | None, score: float = 0.9) -> Match:
    tokens = tuple(_token(100 + i, i + 1, w, sentence) for i, w in enumerate(words))
    max_att = None
    if attended is not None:
        max_att = MaxAttention(tokens[attended], tokens[attended].position - tokens[hit].position, 0.4)
    return Match(sentence_id=3, sentence=sentence, token=tokens[hit], score=score, max_attention=max_att,
                 context=tokens)


def _result(*matches: Match) -> SearchResult:
    return SearchResult(layer=2, kind="embedding", heads=(0, 1), k=len(matches), query_position=9, matches=matches)


def test_context_window_pads_past_the_sentence_ends():
    m = _match("She ran away quickly.", ["She", "ran", "away", "quickly", "."], hit=1, attended=2)
    window = match_table.context_window(m, 2)
    assert [t.token if t else None for t in window] == [None, "She", "ran", "away", "quickly"]
    assert [t.token for t in match_table.context_window(m, 0)] == ["ran"]


def test_sentence_highlights_match_and_attended_words():
    m = _match("She ran away quickly.", ["She", "ran", "away", "quickly", "."], hit=1, attended=2)
    text = match_table.highlighted_sentence(m)
    assert re.sub(r"<[^>]+>", "", text) == "She ran away quickly."
    assert text.count("<span") == 2
    assert 'title="match: word &quot;ran&quot; · part of speech NOUN' in text
    assert "takes most from: word &quot;away&quot;" in text
    same = _match("She ran.", ["She", "ran", "."], hit=1, attended=1)
    assert match_table.highlighted_sentence(same).count("<span") == 1  # match == attended: one span


def _marked(html_text: str, color: str) -> list[str]:
    return re.findall(rf'<span style="background:{color}[^"]*"[^>]*>([^<]*)</span>', html_text)


def test_the_highlight_covers_exactly_the_matched_token_not_its_whole_word():
    """A spaCy word can hold several model tokens (``Rabbit's--'Pat`` in Alice): the highlight
    and the underline cover the token's own characters (issue 19, 1)."""
    sentence = "The Rabbit's--'Pat! Pat!'"
    word = "Rabbit's--'Pat"
    start = sentence.index(word)
    pieces = ["the", "rabbit", "'", "s", "-", "-", "'", "pat", "!", "pat", "!", "'"]
    tokens, cursor = [], 0
    for i, piece in enumerate(pieces):
        in_word = start <= sentence.lower().find(piece, cursor) < start + len(word)
        at = sentence.lower().find(piece, cursor)
        cursor = at + len(piece)
        w, w0 = (word, start) if in_word else (sentence[at:at + len(piece)], at)
        tokens.append(CorpusToken(row=10 + i, position=i + 1, token=piece, word=w, word_start=w0,
                                  word_end=w0 + len(w), pos="PROPN", tag="NNP", dep="nsubj", ner="", lemma=w))
    tokens = tuple(tokens)
    m = Match(sentence_id=1, sentence=sentence, token=tokens[1], score=0.9,
              max_attention=MaxAttention(tokens[7], 6, 0.3), context=tokens)
    text = match_table.highlighted_sentence(m)
    assert re.sub(r"<[^>]+>", "", html.unescape(text)) == sentence
    assert _marked(text, "#ffd6a5") == ["Rabbit"]  # the token, as written in the sentence
    underlined = re.findall(r'<span style="text-decoration:underline[^"]*"[^>]*>([^<]*)</span>', text)
    assert underlined == ["Pat"]
    spans = match_table.token_spans(m)
    assert [sentence[a:b] for a, b in (spans[t.row] for t in tokens)] == [
        "The", "Rabbit", "'", "s", "-", "-", "'", "Pat", "!", "Pat", "!", "'"]
    # the card's "attends most to" names the word and the piece
    page = match_table.matches_html(_result(m))
    assert "Rabbit&#x27;s--&#x27;Pat (piece &#x27;pat&#x27;)" in page


def test_a_token_not_found_as_written_marks_its_word():
    """An accent the tokenizer stripped (café -> cafe) cannot be matched character for character:
    the whole word is marked, never a wrong piece."""
    sentence = "A café opened."
    tokens = (_token(1, 1, "a", sentence, word="A"), _token(2, 2, "cafe", sentence, word="café"),
              _token(3, 3, "opened", sentence), _token(4, 4, ".", sentence))
    m = Match(sentence_id=1, sentence=sentence, token=tokens[1], score=0.5, max_attention=None, context=tokens)
    assert _marked(match_table.highlighted_sentence(m), "#ffd6a5") == ["café"]


def test_labels_tell_words_pieces_and_repeats_apart():
    """Word pieces are named with their word, repeated words with their position, in plain
    visible text (no invisible characters to copy) (issue 19, 2-3)."""
    from exbert_core.views.labels import piece_spans, told_apart, word_and_piece

    assert word_and_piece("flaming", "flamingo") == "flamingo (piece 'flaming')"
    assert word_and_piece("##go", "flamingo") == "flamingo (piece '##go')"
    assert word_and_piece("Ġmer", "merrily") == "merrily (piece 'mer')"
    assert word_and_piece("Ġescape", "escape") == "escape" and word_and_piece("[CLS]", None) == "[CLS]"
    assert word_and_piece("alice", "Alice") == "alice"
    labels = told_apart(["the", "girl", "to", "a", "to", "the"], [1, 2, 4, 5, 8, 10])
    assert labels == ["the (1)", "girl", "to (4)", "a", "to (8)", "the (10)"]
    assert all("\u2060" not in label for label in labels)
    assert piece_spans("Flamingo", [("flaming", 0, 8), ("##o", 0, 8)]) == [(0, 7), (7, 8)]
    assert piece_spans("naïve", [("naive", 0, 5)]) == [None]


def test_every_corpus_string_is_escaped():
    sentence = f'Then {EVIL} & "quotes" ran.'
    words = ["Then", EVIL, "&", '"quotes"', "ran", "."]
    m = _match(sentence, words, hit=1, attended=3)
    page = match_table.matches_html(_result(m), width=3, query=f"query {EVIL}")
    assert "<script" not in page and "</script>" not in page
    assert html.escape(EVIL, quote=True) in page
    # Attribute values cannot be broken out of: every title attribute is one escaped string.
    for title in re.findall(r'title="([^"]*)"', page):
        assert "<" not in title and ">" not in title
    # The text content is the corpus text, unchanged once unescaped.
    assert sentence in html.unescape(re.sub(r"<[^>]+>", "", page))


def test_matches_html_has_one_row_per_match_and_offset_columns():
    a = _match("She ran away quickly.", ["She", "ran", "away", "quickly", "."], hit=1, attended=0)
    b = _match("They ran.", ["They", "ran", "."], hit=1, attended=None, score=0.5)
    page = match_table.matches_html(_result(a, b), width=2)
    assert page.count("<tr>") == 3  # header + 2 matches
    for header in ("-2", "-1", "match", "+1", "+2"):
        assert f">{header}</th>" in page
    assert "0.900" in page and "0.500" in page and "(-1)" in page


def test_matches_csv_is_flat_and_defuses_formulas():
    m = _match("=SUM(A1) ran fast.", ["=SUM(A1)", "ran", "fast", "."], hit=1, attended=0)
    rows = list(csv.DictReader(io.StringIO(match_table.matches_csv(_result(m), width=1))))
    assert len(rows) == 1
    row = rows[0]
    assert row["token"] == "ran" and row["before"] == "'=SUM(A1)" and row["after"] == "fast"
    assert row["max_attention_token"] == "'=SUM(A1)" and row["max_attention_offset"] == "-1"
    assert row["sentence"].startswith("'=SUM")
    assert match_table.matches_csv(_result()).startswith("rank,score,token,sentence")
