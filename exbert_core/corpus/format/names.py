"""Corpus names: the one rule for a valid name, the default corpus, and the names the app gives
the corpora it builds (light: no faiss, no spaCy, so URL parsing can use it)."""

from __future__ import annotations

import re
from collections.abc import Collection

from exbert_core.errors import CorpusError
from exbert_core.model.names import DEFAULT_MODEL

DEFAULT_CORPUS = "alice"
MAX_NAME_LENGTH = 64
# ASCII only: a name is a folder name on every file system and a URL value that needs no escaping.
_NAME = re.compile(rf"[A-Za-z0-9_\-]{{1,{MAX_NAME_LENGTH}}}")
NAME_RULE = f"letters, digits, '-' or '_' (ASCII, at most {MAX_NAME_LENGTH})"


def is_valid(name: str) -> bool:
    """Whether ``name`` is a corpus name (see :data:`NAME_RULE`)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def problem(name: str) -> str | None:
    """Why ``name`` is not a corpus name, or None when it is one."""
    if is_valid(name):
        return None
    shown = name if len(name) <= 40 else name[:39] + "…"
    return f"{shown!r} is not a corpus name: use {NAME_RULE}."


def check(name: str) -> str:
    """``name`` if valid, else CorpusError saying the rule."""
    reason = problem(name)
    if reason:
        raise CorpusError(reason)
    return name


def free_name(base: str, taken: Collection[str]) -> str:
    """``base`` if no corpus has it, else ``base-2``, ``base-3``, ... (the first free one, within
    :data:`MAX_NAME_LENGTH`): the name a build form offers, so that its default action is allowed."""
    if base not in taken:
        return base
    n = 2
    while (name := f"{base[:MAX_NAME_LENGTH - len(str(n)) - 1]}-{n}") in taken:
        n += 1
    return name


def slug(text: str) -> str:
    """ASCII letters, digits and '-' only, lower case (a corpus name from a file or model name)."""
    out = "".join(c if c.isalnum() and c.isascii() else "-" for c in text).strip("-").lower()
    while "--" in out:
        out = out.replace("--", "-")
    return out


def default_corpus_name(model: str, source: str = DEFAULT_CORPUS) -> str:
    """The name the app gives the corpus of ``source`` built with ``model``: the source's name for
    the default model (``alice``), ``<source>-<model>`` for others (``alice-smollm2``,
    ``alice-bert-base-uncased``)."""
    base = slug(source) or DEFAULT_CORPUS
    if model == DEFAULT_MODEL:
        return base[:MAX_NAME_LENGTH]
    return f"{base}-{slug(model.split('/')[-1])}"[:MAX_NAME_LENGTH]
