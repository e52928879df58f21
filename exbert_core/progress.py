"""One shape for the progress of long work (a leaf module): a build, a model's first load, a
corpus's first use, a layer sweep, a head atlas.

Work calls ``progress(Step(...))``; front ends turn a step into a tqdm bar (CLI) or a progress
bar with a sentence and an ETA (app). A step says what happens in words a reader understands,
and how far it is in real units (tokens, characters, sentences, layers) when that is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """One report: ``stage`` (a stable key such as ``parse``), ``message`` for a reader, and
    ``done`` of ``total`` ``unit`` when the amount of work is known."""

    stage: str
    message: str
    done: float | None = None
    total: float | None = None
    unit: str = ""

    @property
    def fraction(self) -> float | None:
        if self.done is None or not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


Progress = Callable[[Step], None]


def ignore(_step: Step) -> None:
    """A progress callback that shows nothing."""


@dataclass
class Rate:
    """Speed and time left of one stage, from the steps seen so far (``units/s`` and seconds)."""

    started: float = field(default_factory=time.monotonic)

    def per_second(self, done: float) -> float | None:
        elapsed = time.monotonic() - self.started
        return done / elapsed if elapsed > 0.5 and done > 0 else None

    def eta(self, done: float, total: float) -> float | None:
        """Seconds left at the speed so far, or None before it can be told."""
        speed = self.per_second(done)
        return (total - done) / speed if speed else None


def format_seconds(seconds: float | None) -> str:
    """``45 s``, ``3 min 10 s``, ``1 h 05 min``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
