"""The errors the core raises for bad input or missing resources: each message says what to do.

Front ends catch exactly these and show the message; anything else is a bug and may surface.
"""

from __future__ import annotations

from exbert_core.analysis import InputError
from exbert_core.corpus import CorpusError
from exbert_core.corpus_build import BuildError
from exbert_core.models import ModelLoadError
from exbert_core.sources import InvalidText, SourceUnavailable

USER_ERRORS: tuple[type[Exception], ...] = (
    InputError,
    ModelLoadError,
    SourceUnavailable,
    InvalidText,
    CorpusError,
    BuildError,
)
