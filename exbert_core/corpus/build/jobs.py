"""Long work that outlives a page view: one background thread per key, shared by every user of
the process (no streamlit here).

A corpus build (key: the corpus name) or a model's first preparation (key: ``model:<name>``)
runs once, in a daemon thread, whoever asked first. Whoever asks again while it runs gets the
same job: a rerun of a page, a click or a second visitor attaches to it, nothing restarts it.
Every front end reads its progress through :func:`status` (the last
:class:`~exbert_core.progress.Step`, with an ETA measured from the steps so far). A finished job
stays in the registry with its outcome until a new job of the same key starts; a failed job is
restarted only by an explicit :func:`start` (a retry), never by a rerun.

Only what a job reports is kept (a few hundred bytes); its result is a path, not data.

A corpus build's work runs in a child process of its own (:mod:`exbert_core.corpus.build.child_build`):
the thread here fetches the text, waits for its turn when the build would not fit in memory
beside the others (:mod:`exbert_core.corpus.build.build_memory`), then relays the child's steps and
records its measured peak. :func:`cancel` stops a job that can be stopped (a build).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exbert_core.corpus.build import build_memory, child_build, sources
from exbert_core.errors import BuildError, USER_ERRORS
from exbert_core.model.loading import LoadedModel
from exbert_core.paths import corpora_dir
from exbert_core.progress import Progress, Rate, Step

log = logging.getLogger(__name__)

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job. ``eta_s``: seconds left in the current stage at the speed measured
    so far (None until it can be told); ``error``: the message for a reader when it failed."""

    key: str
    label: str
    state: str
    step: Step | None
    started: float  # time.time()
    finished: float | None
    eta_s: float | None
    error: str | None
    result: Any = None
    reserved_bytes: int = 0  # disk the job expects to write (counted against a quota while it runs)
    stages: tuple[tuple[str, float], ...] = ()  # (stage, seconds spent in it), in order

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started


class _Job:
    def __init__(self, key: str, label: str, work: Callable[[Progress], Any], reserved_bytes: int,
                 stop: threading.Event | None) -> None:
        self.key, self.label, self.work, self.reserved_bytes, self.stop = key, label, work, reserved_bytes, stop
        self.started = time.time()
        self.finished: float | None = None
        self.ended: float | None = None  # time.monotonic() at the end
        self.state = RUNNING
        self.step: Step | None = None
        self.rate = Rate()
        self.stage_starts: list[tuple[str, float]] = []  # (stage, time.monotonic() it began)
        self.error: str | None = None
        self.result: Any = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"exbert-job-{key}", daemon=True)

    def report(self, step: Step) -> None:
        with self.lock:
            if self.step is None or step.stage != self.step.stage:
                self.rate = Rate()  # each stage has its own unit and speed
                self.stage_starts.append((step.stage, time.monotonic()))
            if step.done is not None:
                self.rate.update(step.done)  # the time left follows the live rate
            self.step = step

    def _run(self) -> None:
        try:
            result = self.work(self.report)
        except USER_ERRORS as err:
            self._end(FAILED, error=str(err))
        except child_build.BuildCrashed as err:  # a bug in the build's process: its log has the traceback
            self._end(FAILED, error=f"{self.label} failed ({err}). This is a bug; the details are in the server log.")
        except Exception as err:  # a bug: the reader gets one line, the log the traceback
            log.exception("Job %s failed", self.key)
            self._end(FAILED, error=f"{self.label} failed ({type(err).__name__}: {err}). This is a bug; "
                                    "the details are in the server log.")
        else:
            self._end(DONE, result=result)

    def _end(self, state: str, *, error: str | None = None, result: Any = None) -> None:
        with self.lock:
            self.state, self.error, self.result = state, error, result
            self.finished = time.time()
            self.ended = time.monotonic()
        log.info("Job %s %s after %.1f s", self.key, state, self.finished - self.started)

    def status(self) -> JobStatus:
        with self.lock:
            step = self.step
            eta = None
            if self.state == RUNNING and step is not None and step.done is not None and step.total:
                eta = self.rate.eta(step.done, step.total)
            ends = [t for _, t in self.stage_starts[1:]] + [self.ended or time.monotonic()]
            stages = tuple((stage, end - begin) for (stage, begin), end in zip(self.stage_starts, ends))
            return JobStatus(self.key, self.label, self.state, step, self.started, self.finished, eta,
                             self.error, self.result, self.reserved_bytes, stages)


_jobs: dict[str, _Job] = {}
_registry = threading.Lock()


def start(key: str, label: str, work: Callable[[Progress], Any], *,
          reserved_bytes: int = 0, stop: threading.Event | None = None) -> tuple[JobStatus, bool]:
    """Run ``work(progress)`` in a background thread under ``key``, unless a job of that key is
    running: then return that one. Returns (its status, whether this call started it).
    ``stop``: the event ``work`` watches to end early; :func:`cancel` sets it."""
    with _registry:
        current = _jobs.get(key)
        if current is not None and current.state == RUNNING:
            return current.status(), False
        job = _jobs[key] = _Job(key, label, work, reserved_bytes, stop)
        job.thread.start()
        return job.status(), True


def cancel(key: str) -> bool:
    """Ask the running job of ``key`` to stop; returns whether it can be stopped (it runs and
    watches a stop event). It ends FAILED, with a message saying it was stopped."""
    with _registry:
        job = _jobs.get(key)
    if job is None or job.state != RUNNING or job.stop is None:
        return False
    job.stop.set()
    return True


def status(key: str) -> JobStatus | None:
    """The job of ``key`` (running or finished), or None when there never was one."""
    with _registry:
        job = _jobs.get(key)
    return job.status() if job is not None else None


def all_jobs() -> list[JobStatus]:
    """Every job of this process, oldest first."""
    with _registry:
        jobs = list(_jobs.values())
    return sorted((job.status() for job in jobs), key=lambda s: s.started)


def running() -> list[JobStatus]:
    return [s for s in all_jobs() if s.running]


def wait(key: str, timeout: float | None = None) -> JobStatus | None:
    """Block until the job of ``key`` ends (or ``timeout`` s pass); returns its status."""
    with _registry:
        job = _jobs.get(key)
    if job is not None:
        job.thread.join(timeout)
    return status(key)


def model_key(name: str) -> str:
    """The key of a model's first preparation (it cannot be a corpus name: those have no ':')."""
    return f"model:{name}"


# ---------------------------------------------------------------------------------------------
# Corpus builds


def build_label(name: str, model: str, source: str | None = None, file_name: str | None = None) -> str:
    what = f"the text '{source}'" if source else (f"your file {file_name!r}" if file_name else "a text")
    return f"Building corpus '{name}' from {what} with {model}"


def start_build(name: str, loaded: LoadedModel, *, source: str | None = None, text: str | None = None,
                file_name: str | None = None, label: str | None = None,
                reserved_bytes: int = 0) -> tuple[JobStatus, bool]:
    """Build corpus ``name`` with the model of ``loaded`` from ``text``, or from the named
    ``source`` (fetched in the job when ``text`` is None), in the background (see :func:`start`).

    The build itself runs in a child process that loads its own copy of the model (memory-mapped
    weights: the page cache is shared with ``loaded``), once it fits in memory beside the server
    and the builds running (it waits its turn otherwise); its measured peak is recorded for the
    estimates of the next builds. The result is the corpus folder. Checking whether the build is
    allowed (an existing name, a quota) is the caller's: see :mod:`exbert_core.corpus.build.policy`."""
    info = loaded.info
    stop = threading.Event()

    def work(progress: Progress) -> Path:
        content = text
        origin = {"name": source} if source is not None else {"file": file_name or "upload"}
        if content is None and source is not None:
            progress(Step("fetch", f"Fetching the text '{source}'"))
            path = sources.fetch_source(source, progress=lambda message: progress(Step("fetch", message)))
            content = path.read_text(encoding="utf-8")
            origin = {"name": path.stem}  # alice falls back to wizard-of-oz without a package index
        if not content:
            raise BuildError("There is no text to build a corpus from.")
        with build_memory.admitted(name, build_memory.expected_peak(info), progress, stop):
            progress(Step("start", "Starting the build in a process of its own"))
            outcome = child_build.run(name, info.name, content, corpora_dir(), source=origin, progress=progress,
                                      stop=stop)
        build_memory.record(info.name, outcome.peak_bytes)
        log.info("Build of %s with %s: peak %d MB", name, info.name, outcome.peak_bytes // 10**6)
        return outcome.path

    return start(name, label or build_label(name, info.name, source, file_name), work,
                 reserved_bytes=reserved_bytes, stop=stop)
