"""A build's parse worker process (started by :mod:`exbert_core.corpus.build.parser`): this module
imports nothing of the project or of spaCy at import time, so that its initialiser runs first.

spaCy's thinc imports torch wherever torch is installed: 1.3 s and 180 MB more per worker
(measured: 152 MB with it hidden, 332 MB without), for a parse that needs none of it. So the
initialiser hides torch from the worker before spaCy loads, and thinc runs on numpy alone, as
spaCy does where torch is not installed.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exbert_core.corpus.build.parsing import CorpusSentence

_nlp: Any = None


def start() -> None:
    """The worker's initialiser: torch hidden (unless something imported it already), the worker
    tied to its parent's life, spaCy's English pipeline loaded once."""
    global _nlp
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` now fails: thinc goes without
    from exbert_core import runtime
    from exbert_core.model.annotate import load_spacy

    runtime.die_with_parent()
    _nlp = load_spacy()


def parse(batch: list[str]) -> tuple[list[CorpusSentence], float]:
    """A task: the sentences of one parse batch (:func:`~exbert_core.corpus.build.parsing.parse_batch`)
    and the seconds the parse took."""
    from exbert_core.corpus.build.parsing import parse_batch

    started = time.perf_counter()
    sentences = parse_batch(_nlp, batch)
    return sentences, time.perf_counter() - started
