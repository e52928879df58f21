"""A corpus build in a child process of its own, so that its memory is bounded and measured
(no streamlit).

Run inside the app's server, a build adds its working memory (spaCy's parse, forward batches,
the quantiser's sample, the heap glibc keeps afterwards) to the memory of the server, which
already holds the models and caches of its visitors: the server went from 1.58 GB to 2.70 GB
during one SmolLM2 build. In a child process the build's memory is its own: it is sampled while
the build runs (its peak is what the next build of that model is expected to take), and it is
all returned to the system when the child ends. The child loads its own copy of the model; the
weights are memory-mapped from the safetensors files, so both copies read the same page cache
and neither process holds them as its own (anonymous) memory.

Protocol: the parent writes one JSON request to the child's stdin (``name``, ``model``,
``text``, ``source``, ``out_dir``) and closes it. The child writes one JSON line per event to the
file descriptor named on its command line: ``{"step": [stage, message, done, total, unit]}``,
then exactly one of ``{"done": path}``, ``{"error": message}`` (a message for the reader) or
``{"bug": "Type: message"}`` (its traceback goes to the child's stderr, the server log). A
child that ends without one (killed, out of memory) is reported with its exit status.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exbert_core import memory, runtime
from exbert_core.errors import USER_ERRORS, BuildError
from exbert_core.progress import Progress, Step

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]  # the folder holding exbert_core, for the child's sys.path
SAMPLE_S = 0.1  # how often the child's memory is sampled (and the stop flag read)
STOP_GRACE_S = 10.0  # a stopped child gets this long to end before it is killed


class BuildCrashed(Exception):
    """The child hit a bug (not a user error): ``str()`` is ``Type: message``, the traceback is in
    the server log."""


@dataclass(frozen=True)
class Outcome:
    """A finished child build: the corpus folder, and the peak anonymous resident memory the
    child process (and any process it started) was seen to hold, in bytes."""

    path: Path
    peak_bytes: int


def run(name: str, model: str, text: str, out_dir: Path, *, source: dict | None = None,
        progress: Progress | None = None, stop: threading.Event | None = None,
        on_sample: Callable[[int], None] | None = None) -> Outcome:
    """Build corpus ``name`` from ``text`` with the model named ``model`` under ``out_dir`` in a
    child process, relaying its steps to ``progress``; returns when the child ends.

    The child runs with this process's environment (``EXBERT_MEMORY_BUDGET`` sizes its forward
    batches as in any build). ``stop`` set: the child is terminated and BuildError says the build
    was stopped (its finished shards are kept: building it again resumes). ``on_sample`` gets
    each memory sample (bytes). Raises BuildError with the child's message for a user error or
    an unexpected end, BuildCrashed for a bug in the child.
    """
    report = progress or (lambda _step: None)
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    try:
        child = subprocess.Popen([sys.executable, "-m", __name__, str(write_fd)], stdin=subprocess.PIPE,
                                 pass_fds=(write_fd,), env=env, cwd=ROOT)
    finally:
        os.close(write_fd)
    events: list[dict] = []
    peak = 0
    try:
        _send_request(child, {"name": name, "model": model, "text": text, "source": source or {},
                              "out_dir": str(out_dir)})
        buffer = b""
        stopped = False
        while True:
            sample = _tree_rss_anon(child.pid)
            peak = max(peak, sample)
            if on_sample is not None:
                on_sample(sample)
            if stop is not None and stop.is_set() and not stopped:
                stopped = True
                child.terminate()
            ready, _, _ = select.select([read_fd], [], [], SAMPLE_S)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:  # the child closed its end: it has ended (or is ending)
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                if "step" in event:
                    report(Step(*event["step"]))
                else:
                    events.append(event)
        code = _wait(child)
    finally:
        os.close(read_fd)
        if child.poll() is None:  # an exception in this thread: leave no orphan behind
            child.kill()
            child.wait()
    end = events[-1] if events else {}
    if "done" in end:
        return Outcome(Path(end["done"]), peak)
    if "error" in end:
        raise BuildError(end["error"])
    if "bug" in end:
        raise BuildCrashed(end["bug"])
    if stopped:
        raise BuildError(f"The build of '{name}' was stopped. The parts it finished are kept: building it "
                         "again goes on from there.")
    raise BuildError(
        f"The build of '{name}' ended unexpectedly (its process {_exit_words(code)}, after using up to "
        f"{peak / 1e6:,.0f} MB of memory); the server may be short of memory. The parts it finished are "
        "kept: building it again goes on from there.")


def _send_request(child: subprocess.Popen, request: dict) -> None:
    """Write the request (the whole text, up to ~20 MB of JSON) and close stdin; the child reads
    it all before it reports anything, so this cannot block on a full progress pipe."""
    assert child.stdin is not None
    try:
        child.stdin.write(json.dumps(request).encode("utf-8", "surrogatepass"))
        child.stdin.close()
    except BrokenPipeError:  # the child died at start: its exit status tells the rest
        pass


def _wait(child: subprocess.Popen) -> int:
    try:
        return child.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _exit_words(code: int) -> str:
    if code < 0:
        return f"was killed by signal {-code}" + (" (SIGKILL, as the kernel does when memory runs out)"
                                                  if code == -9 else "")
    return f"exited with status {code}"


def _tree_rss_anon(pid: int) -> int:
    """RssAnon of ``pid`` and of every process it started (none today; kept honest if a stage
    ever runs a helper process)."""
    total = memory.rss_anon(pid)
    try:
        import psutil

        total += sum(memory.rss_anon(c.pid) for c in psutil.Process(pid).children(recursive=True))
    except Exception:  # the child is gone, or psutil is missing: its own memory is what is known
        pass
    return total


# ---------------------------------------------------------------------------------------------
# The child's side


def _child_main(fd: int) -> int:
    channel = os.fdopen(fd, "w", encoding="utf-8", buffering=1)  # one line per event, sent at once

    def send(**event: object) -> None:
        channel.write(json.dumps(event) + "\n")

    def progress(step: Step) -> None:
        send(step=[step.stage, step.message, step.done, step.total, step.unit])

    runtime.die_with_parent()
    request = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogatepass"))
    try:
        # Imported here: the parent side of this module needs neither torch nor spaCy.
        from exbert_core.corpus.build import pipeline as build
        from exbert_core.model import loading

        progress(Step("load", "Loading the model in the build's own process"))
        loaded = loading.load(request["model"])
        path = build.build(request["text"], request["name"], Path(request["out_dir"]), loaded,
                           source=request["source"], progress=progress)
    except BrokenPipeError:  # the parent is gone: nobody to tell
        return 1
    except USER_ERRORS as err:
        send(error=str(err))
        return 1
    except Exception as err:  # a bug: one line for the reader, the traceback for the server log
        logging.getLogger(__name__).exception("Corpus build %s failed", request.get("name"))
        send(bug=f"{type(err).__name__}: {err}")
        return 1
    send(done=str(path))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s build: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # which CPU kernels it loads: noise in the server log
    sys.exit(_child_main(int(sys.argv[1])))
