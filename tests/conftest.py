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
    from exbert_core import models

    return models.load("minilm")


@pytest.fixture(scope="session")
def nlp():
    from exbert_core.annotate import load_spacy

    return load_spacy()
