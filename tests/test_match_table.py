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
    assert 'title="match: word &quot;ran&quot; · POS NOUN' in text
    assert "attends most to: word &quot;away&quot;" in text
    same = _match("She ran.", ["She", "ran", "."], hit=1, attended=1)
    assert match_table.highlighted_sentence(same).count("<span") == 1  # match == attended: one span


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
