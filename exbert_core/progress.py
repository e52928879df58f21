"""One shape for the progress of long work (a leaf module): a build, a model's first load, a
corpus's first use, a layer sweep, a head atlas.

Work calls ``progress(Step(...))``; front ends turn a step into a tqdm bar (CLI) or a progress
bar with a sentence and an ETA (app). A step says what happens in words a reader understands,
and how far it is in real units (tokens, characters, sentences, layers) when that is known.
"""

from __future__ import annotations

import os
import time
from collections import deque
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


WINDOW_S = 30.0  # the live rate: the speed over about the last half minute


@dataclass
class Rate:
    """Speed and time left of one stage (``units/s`` and seconds), at the *live* rate: the speed
    over the last :data:`WINDOW_S` seconds of the amounts passed to :meth:`update` (a machine
    that gets busier slows the estimate down at once), or since the stage began before that.
    An amount that goes back (the next shard counts from 0) starts the measure again."""

    started: float = field(default_factory=time.monotonic)
    _seen: deque = field(default_factory=deque, repr=False)  # (time.monotonic(), done)

    def update(self, done: float) -> None:
        """Record that ``done`` units are done now."""
        now = time.monotonic()
        if self._seen and done < self._seen[-1][1]:
            self._seen.clear()
            self.started = now
        self._seen.append((now, float(done)))
        while len(self._seen) > 2 and now - self._seen[1][0] > WINDOW_S:
            self._seen.popleft()

    def per_second(self, done: float) -> float | None:
        now = time.monotonic()
        if self._seen and now - self._seen[0][0] > 0.5 and done > self._seen[0][1] and len(self._seen) > 1:
            then, done_then = self._seen[0]
            return (done - done_then) / (now - then)
        elapsed = now - self.started
        return done / elapsed if elapsed > 0.5 and done > 0 else None

    def eta(self, done: float, total: float) -> float | None:
        """Seconds left at the live speed, or None before it can be told."""
        speed = self.per_second(done)
        return (total - done) / speed if speed else None


def busy_factor(load: float | None = None, cores: int | None = None) -> float:
    """How much slower than on an idle machine work runs now: the run queue (1-minute load
    average, plus the work itself) over the cores, at least 1. ``load``/``cores`` default to
    this machine's."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this platform
            return 1.0
    cores = cores or os.cpu_count() or 1
    return max(1.0, (load + 1.0) / cores)


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
