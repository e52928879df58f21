"""The corpus view: search matches as an HTML table and as CSV (pure, no streamlit).

Every corpus string is HTML-escaped here, attribute values included; the only markup is the
table, its own style sheet (scoped to ``.exbert-matches``), the marks on words and hover titles
(no scripts). The matched token and the token it takes most from are marked on the word itself
(a highlight, an underline), never on a table cell, so a mark stays on its word when a sentence
wraps. Below 600 px the table becomes a stacked list: one card per match, with the match's annotations
written out (a phone cannot show hover titles).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

from exbert_core.corpus.search.query import CorpusToken, Match, SearchResult
from exbert_core.views.attention_view import measure_words
from exbert_core.views.labels import clean_piece, piece_spans, word_and_piece

MAX_WIDTH = 10  # context offsets shown each side at most
SCORE_MEANS = "how alike the match's vector is to the selected token's (cosine similarity: 1 = the same direction)"

_MATCH_STYLE = "background:#ffd6a5;color:#111;border-radius:3px;padding:0 2px;font-weight:600"
# An underline is drawn with the word's own text, so it cannot leave the word (a border could).
_ATTENDED_STYLE = ("text-decoration:underline;text-decoration-color:#7b5ea7;text-decoration-thickness:3px;"
                   "text-underline-offset:3px;text-decoration-skip-ink:none")
_BOTH_STYLE = _MATCH_STYLE + ";" + _ATTENDED_STYLE
_STYLE_SHEET = """<style>
.exbert-matches { overflow-x: auto; max-height: 640px; overflow-y: auto; }
.exbert-matches table { border-collapse: collapse; font-size: 0.9rem; width: 100%; }
.exbert-matches th, .exbert-matches td { padding: 3px 6px; border-bottom: 1px solid rgba(128,128,128,0.25);
  vertical-align: top; }
.exbert-matches .num { text-align: right; }
.exbert-matches .ctx { text-align: center; white-space: nowrap; font-family: monospace; }
.exbert-matches .attended { white-space: nowrap; }
.exbert-matches .sentence { text-align: left; }
.exbert-matches td.annot { display: none; }
@media (max-width: 600px) {
  .exbert-matches { max-height: none; overflow: visible; }
  .exbert-matches table, .exbert-matches tbody { display: block; }
  .exbert-matches thead { display: none; }
  .exbert-matches tr { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 4px; padding: 8px 0;
    border-bottom: 1px solid rgba(128,128,128,0.35); }
  .exbert-matches td { display: block; border: none; padding: 0 2px; }
  .exbert-matches td.rank::before { content: "#"; }
  .exbert-matches td.score { color: rgba(128,128,128,0.9); margin-right: 8px; }
  .exbert-matches td.score::before { content: "similarity "; }
  .exbert-matches td.ctx:empty { display: none; }
  .exbert-matches td.attended { flex-basis: 100%; white-space: normal; }
  .exbert-matches td.attended::before { content: "takes most from: "; color: rgba(128,128,128,0.9); }
  .exbert-matches td.sentence { flex-basis: 100%; }
  .exbert-matches td.annot { display: block; flex-basis: 100%; font-size: 0.85em; color: rgba(128,128,128,0.95); }
}
</style>"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def annotation_text(token: CorpusToken) -> str:
    """``word "escape" · part of speech VERB · grammatical role xcomp · entity none`` for a hover
    title (spaCy's labels, named in words)."""
    return (f'word "{token.word}" · part of speech {token.pos or "-"} · grammatical role {token.dep or "-"} · '
            f"entity {token.ner or 'none'}")


def context_window(match: Match, width: int) -> list[CorpusToken | None]:
    """The indexed tokens at offsets ``-width..+width`` around the match (None past the
    sentence's ends). Offsets count indexed (non-special) tokens."""
    width = max(0, min(int(width), MAX_WIDTH))
    index = next((i for i, t in enumerate(match.context) if t.row == match.token.row), None)
    if index is None:
        return [None] * width + [match.token] + [None] * width
    out: list[CorpusToken | None] = []
    for offset in range(-width, width + 1):
        j = index + offset
        out.append(match.context[j] if 0 <= j < len(match.context) else None)
    return out


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    style: str
    title: str


def token_spans(match: Match) -> dict[int, tuple[int, int]]:
    """The characters of each token of the match's sentence, by token row: the token itself, not
    its whole spaCy word (a word such as ``Rabbit's--'Pat`` holds several tokens). Tokens that
    cannot be found as written are left out (their word is marked instead)."""
    sentence = match.sentence
    bounds = [(t.token, t.word_start, t.word_end) if 0 <= t.word_start < t.word_end else (t.token, 0, len(sentence))
              for t in match.context]
    return {t.row: span for t, span in zip(match.context, piece_spans(sentence, bounds)) if span is not None}


def highlighted_sentence(match: Match) -> str:
    """The match's sentence, escaped, with the matched token highlighted and its max-attention
    token underlined, each on its own characters (both carry their annotations as a hover
    title)."""
    sentence = match.sentence
    spans = []
    located = token_spans(match)
    hit = _span(match.token, sentence, _MATCH_STYLE, "match: ", located)
    att = (_span(match.max_attention.token, sentence, _ATTENDED_STYLE, "takes most from: ", located)
           if match.max_attention else None)
    if hit and att and (hit.start, hit.end) == (att.start, att.end):
        spans = [_Span(hit.start, hit.end, _BOTH_STYLE, hit.title + " | " + att.title)]
    else:
        spans = [s for s in (hit, att) if s]
        if len(spans) == 2 and spans[0].start < spans[1].end and spans[1].start < spans[0].end:
            spans = [hit]  # overlapping words (should not happen): keep the match
    spans.sort(key=lambda s: s.start)
    parts, cursor = [], 0
    for s in spans:
        parts.append(esc(sentence[cursor : s.start]))
        parts.append(f'<span style="{s.style}" title="{esc(s.title)}">{esc(sentence[s.start : s.end])}</span>')
        cursor = s.end
    parts.append(esc(sentence[cursor:]))
    return "".join(parts)


def matches_html(result: SearchResult, *, width: int = 1, query: str = "") -> str:
    """An HTML table: rank, score, the context strip (offsets -width..+width, the match in the
    middle), the token the match takes most from under the search's measure (with its offset; the
    header names the measure) and the sentence. Below 600 px wide it is a stacked list (its style
    sheet holds the rule)."""
    width = max(0, min(int(width), MAX_WIDTH))
    offsets = range(-width, width + 1)
    head = "".join(f'<th class="ctx">{"match" if o == 0 else f"{o:+d}"}</th>' for o in offsets)
    rows = []
    for rank, m in enumerate(result.matches, start=1):
        cells = []
        for o, tok in zip(offsets, context_window(m, width)):
            if tok is None:
                cells.append('<td class="ctx"></td>')
                continue
            attended = bool(m.max_attention and tok.row == m.max_attention.token.row)
            style = _BOTH_STYLE if o == 0 and attended else _MATCH_STYLE if o == 0 else _ATTENDED_STYLE if attended else ""
            word = esc(clean_piece(tok.token))
            marked = f'<span style="{style}">{word}</span>' if style else word
            cells.append(f'<td class="ctx" title="{esc(annotation_text(tok))}">{marked}</td>')
        if m.max_attention:
            a = m.max_attention
            attended_cell = (f'<span style="{_ATTENDED_STYLE}" title="{esc(annotation_text(a.token))}">'
                             f"{esc(word_and_piece(a.token.token, a.token.word))}</span> ({a.offset:+d})")
        else:
            attended_cell = ""
        rows.append(
            f'<tr><td class="num rank">{rank}</td>'
            f'<td class="num score" title="{esc(SCORE_MEANS)}">{m.score:.3f}</td>'
            + "".join(cells)
            + f'<td class="attended">{attended_cell}</td>'
            f'<td class="sentence">{highlighted_sentence(m)}</td>'
            # a phone has no pointer to show the hover titles: the match's annotations inline
            f'<td class="annot">{esc(annotation_text(m.token))}</td></tr>'
        )
    caption = f'<caption style="caption-side:top;text-align:left;padding:4px 0">{esc(query)}</caption>' if query else ""
    measured = next((m.max_attention for m in result.matches if m.max_attention), None)
    takes = f"takes most from ({measure_words(measured.measure)})" if measured else "takes most from"
    return (
        f'<div class="exbert-matches">{_STYLE_SHEET}<table>{caption}'
        f'<thead><tr><th>#</th><th title="{esc(SCORE_MEANS)}">score</th>{head}'
        f'<th>{esc(takes)}</th><th class="sentence">sentence</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def match_rows(result: SearchResult, *, width: int = 3) -> list[dict[str, object]]:
    """One flat record per match (for CSV): annotations, context and max attention."""
    records = []
    for rank, m in enumerate(result.matches, start=1):
        window = context_window(m, width)
        before = [clean_piece(t.token) for t in window[:width] if t]
        after = [clean_piece(t.token) for t in window[width + 1 :] if t]
        a = m.max_attention
        records.append({
            "rank": rank,
            "score": round(m.score, 6),
            "token": clean_piece(m.token.token),
            "word": m.token.word,
            "pos": m.token.pos,
            "dep": m.token.dep,
            "ner": m.token.ner,
            "before": " ".join(before),
            "after": " ".join(after),
            "max_attention_token": clean_piece(a.token.token) if a else "",
            "max_attention_offset": a.offset if a else "",
            "max_attention_pos": a.token.pos if a else "",
            "max_attention_dep": a.token.dep if a else "",
            "max_attention_ner": a.token.ner if a else "",
            "max_attention_weight": round(a.weight, 6) if a else "",
            "sentence_id": m.sentence_id,
            "sentence": m.sentence,
        })
    return records


def matches_csv(result: SearchResult, *, width: int = 3) -> str:
    """:func:`match_rows` as CSV text (a header row, then one row per match)."""
    return rows_csv(match_rows(result, width=width), fields=["rank", "score", "token", "sentence"])


def rows_csv(rows: Sequence[dict[str, object]], *, fields: Sequence[str] = ()) -> str:
    """Records as CSV text: a header (the first record's keys, or ``fields`` when there is no
    record), then one row per record; text that a spreadsheet would run as a formula is
    defused."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(fields))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return out.getvalue()


def _csv_safe(value: object) -> object:
    """Defuse spreadsheet formulas: a text cell starting with = + - @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _span(token: CorpusToken, sentence: str, style: str, prefix: str,
          located: dict[int, tuple[int, int]]) -> _Span | None:
    start, end = located.get(token.row, (token.word_start, token.word_end))
    if not (0 <= start < end <= len(sentence)):
        return None
    return _Span(start, end, style, prefix + annotation_text(token))
