"""One memory budget for what the app and the command-line tools keep: loaded models, opened
corpora (their metadata tables), analyses and results (a leaf module).

``EXBERT_MEMORY_BUDGET`` (bytes, or with a unit: ``1.2GB``, ``800MB``) bounds the bytes held by
:data:`KEPT`, a least-recently-used cache keyed by names: when an entry would take the total over
the budget, the least recently used entries are dropped first. Corpus index codes are *not*
counted: they are memory-mapped files, read through the page cache (shared, reclaimable), not
process memory. The default fits Streamlit Community Cloud (about 2.7 GB per app): the app's
process takes ~0.7 GB before it loads anything (torch, transformers, spaCy, Streamlit), so a
1.2 GB budget keeps its peak under 2 GB.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

BUDGET_ENV = "EXBERT_MEMORY_BUDGET"
DEFAULT_BUDGET = 1_200_000_000
LIMIT_ENV = "EXBERT_MEMORY_LIMIT"
DEFAULT_LIMIT = 2_200_000_000  # the server and its build processes together: Community Cloud allows ~2.7 GB
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}

V = TypeVar("V")


def parse_bytes(text: str) -> int:
    """``"1.5GB"`` -> 1500000000; ``"800MiB"``, ``"123456"`` likewise. ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", text or "", re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not an amount of memory like 1.5GB or 800MB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def budget_bytes() -> int:
    """The configured budget (``EXBERT_MEMORY_BUDGET``), or the default when unset or unreadable."""
    return _bytes_setting(BUDGET_ENV, DEFAULT_BUDGET, least=50_000_000)


def limit_bytes() -> int:
    """What the whole process tree may take (``EXBERT_MEMORY_LIMIT``): the app's server and the
    child processes its corpus builds run in. A build starts only when its expected peak fits
    beside the server's memory and the builds already running (:mod:`exbert_core.corpus.build.build_memory`)."""
    return _bytes_setting(LIMIT_ENV, DEFAULT_LIMIT, least=100_000_000)


def _bytes_setting(env: str, default: int, least: int) -> int:
    """The size in environment variable ``env`` (at least ``least``), or ``default`` when it is
    unset or unreadable (logged)."""
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        return max(parse_bytes(text), least)
    except ValueError as err:
        log.warning("%s=%r ignored (%s); using %d bytes", env, text, err, default)
        return default


def rss_anon(pid: int | str = "self") -> int:
    """Anonymous resident memory (``RssAnon`` in /proc) of process ``pid`` in bytes: what the
    process holds of its own, without memory-mapped files (model weights read from safetensors,
    index codes), which are page cache shared by every process. 0 when the process is gone or
    off Linux."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class _Entry:
    value: Any
    nbytes: int


class Kept:
    """A thread-safe least-recently-used cache bounded by bytes (``limit`` None: read the budget
    from the environment at each insertion, so tests and operators can change it)."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[Hashable, threading.Lock] = {}

    @property
    def limit(self) -> int:
        return self._limit if self._limit is not None else budget_bytes()

    def get(self, key: Hashable, load: Callable[[], V], size: Callable[[V], int]) -> V:
        """The value kept under ``key``, loading it with ``load()`` on a miss (once, however many
        threads ask at the same time) and charging ``size(value)`` bytes."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    return entry.value
            value = load()
            self.put(key, value, size(value))
        with self._lock:
            self._loading.pop(key, None)
        return value

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        """Keep ``value`` (``nbytes``), dropping least recently used entries to stay in budget."""
        with self._lock:
            self._entries.pop(key, None)
            limit = self.limit
            while self._entries and self.used() + nbytes > limit:
                old, dropped = self._entries.popitem(last=False)
                log.info("memory budget: dropped %s (%d MB)", old, dropped.nbytes // 10**6)
            if nbytes > limit:
                log.warning("%s alone takes %d MB, over the %d MB budget", key, nbytes // 10**6, limit // 10**6)
            self._entries[key] = _Entry(value, nbytes)

    def drop(self, key_prefix: tuple) -> None:
        """Forget every entry whose key starts with ``key_prefix`` (e.g. a rebuilt corpus)."""
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and k[: len(key_prefix)] == key_prefix]:
                del self._entries[key]

    def used(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


KEPT = Kept()
"""The process-wide cache of models and corpora, bounded by the budget."""
