"""The memory of corpus builds, measured, and whether the next one fits (no streamlit).

Each build of the app runs in a child process (:mod:`exbert_core.corpus.build.child_build`) whose peak
anonymous resident memory is sampled while it runs. The peaks of the last :data:`KEEP` builds of
each model on this server are kept in ``<data dir>/build-memory.json``; a new build of a model is
expected to take the largest of them, or, before the first build of that model here, the
estimate of :func:`exbert_core.corpus.build.estimate.child_peak_bytes`.

The rule, stated once here: a build starts when the server's own memory now, the expected peaks
of the builds already running and its own expected peak fit in ``EXBERT_MEMORY_LIMIT``
(:func:`exbert_core.memory.limit_bytes`, 2.2 GB by default). A build that would fit beside the
server alone waits, in order of arrival, until the builds before it end; one that would not fit
even then is refused with a message saying so.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

from exbert_core import atomic, memory
from exbert_core.corpus.build import estimate
from exbert_core.errors import BuildError
from exbert_core.model.loading import ModelInfo
from exbert_core.paths import data_dir
from exbert_core.progress import Progress, Step

RECORD = "build-memory.json"
KEEP = 5  # recent builds per model whose peaks are kept (the largest is expected)
RECHECK_S = 1.0  # a waiting build looks at the server's memory again this often

_record_lock = threading.Lock()
_queue = threading.Condition()
_running: dict[str, int] = {}  # key -> expected peak (bytes) of the builds admitted, in start order
_waiting: list[str] = []  # keys of the builds waiting for memory, in arrival order


def _read() -> dict[str, list[int]]:
    try:
        data = json.loads((data_dir() / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): [int(x) for x in v if isinstance(x, int | float)] for k, v in data.items() if isinstance(v, list)}


def record(model: str, peak_bytes: int) -> None:
    """Keep the peak of a finished build of ``model`` (the last :data:`KEEP` are kept)."""
    with _record_lock:
        data = _read()
        data[model] = (data.get(model, []) + [int(peak_bytes)])[-KEEP:]
        atomic.write_text(data_dir() / RECORD, json.dumps(data, indent=1))


def measured_peak(model: str) -> int | None:
    """The largest peak of the recent builds of ``model`` on this server (bytes), or None."""
    peaks = _read().get(model)
    return max(peaks) if peaks else None


def expected_peak(info: ModelInfo) -> int:
    """What a build with ``info``'s model is expected to take at its peak (bytes): measured here,
    or estimated before the first build of that model."""
    return measured_peak(info.name) or estimate.child_peak_bytes(info)


def server_bytes() -> int:
    """The server's own memory now (this process's RssAnon; its build processes not counted)."""
    return memory.rss_anon()


def room_alone() -> int:
    """Bytes a build may take beside the server as it is now, with no other build running."""
    return memory.limit_bytes() - server_bytes()


def too_big(expected: int) -> str | None:
    """Why a build expected to take ``expected`` bytes can never start now (it would not fit beside
    the server even alone), in words for a visitor; None when it fits."""
    room = room_alone()
    if expected <= room:
        return None
    return (f"This build needs about {expected / 1e6:,.0f} MB of memory while it runs, and this server has "
            f"about {max(room, 0) / 1e6:,.0f} MB to spare for builds right now. Try again later, use a "
            "smaller model (minilm builds need the least), or run the build on your own machine with "
            "scripts/build_corpus.py.")


def running() -> dict[str, int]:
    """The builds admitted and running: key -> expected peak in bytes."""
    with _queue:
        return dict(_running)


@contextlib.contextmanager
def admitted(key: str, expected: int, progress: Progress, stop: threading.Event | None = None) -> Iterator[None]:
    """Hold a place for the build ``key`` expected to take ``expected`` bytes while the block
    runs; wait (reporting a ``queue`` step) until it fits. Raises BuildError when it does not fit
    even alone, or when ``stop`` is set while it waits."""
    with _queue:
        _waiting.append(key)
        told = None
        try:
            while True:
                if stop is not None and stop.is_set():
                    raise BuildError("The build was stopped before it started.")
                first = _waiting[0] == key
                others = sum(_running.values())
                if first and server_bytes() + others + expected <= memory.limit_bytes():
                    break
                if not _running:  # nothing to wait for: it will not fit by waiting
                    problem = too_big(expected)
                    if problem:
                        raise BuildError(problem)
                ahead = [k for k in _running] + _waiting[: _waiting.index(key)]
                message = (f"Waiting for the build of {', '.join(repr(k) for k in ahead)} to end: together they "
                           "would not fit in the server's memory, so builds take turns")
                if message != told:
                    progress(Step("queue", message))
                    told = message
                _queue.wait(RECHECK_S)
        finally:
            _waiting.remove(key)
            _queue.notify_all()
        _running[key] = expected
    try:
        yield
    finally:
        with _queue:
            _running.pop(key, None)
            _queue.notify_all()

