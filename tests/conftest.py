"""Shared fixtures: the real offline default model and the real spaCy pipeline, loaded once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAPER_SENTENCE = "The girl ran to a local pub to escape the din of her city."


@pytest.fixture(scope="session")
def minilm():
    from exbert_core.model import loading

    return loading.load("minilm")


@pytest.fixture(scope="session")
def nlp():
    from exbert_core.model.annotate import load_spacy

    return load_spacy()


SAMPLE_TEXT = (ROOT / "tests" / "data" / "sample_corpus.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample_corpus_dir(minilm, nlp, tmp_path_factory):
    """A small corpus built from the tests' own text with the real model, spaCy and FAISS."""
    from exbert_core.corpus.build import pipeline as build

    out = tmp_path_factory.mktemp("corpora")
    return build.build(SAMPLE_TEXT, "sample", out, minilm, source={"file": "sample_corpus.txt"}, nlp=nlp)


@pytest.fixture(scope="session")
def sample_corpus(sample_corpus_dir):
    from exbert_core.corpus.search import store as corpus

    return corpus.load(str(sample_corpus_dir))
