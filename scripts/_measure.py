"""Peak memory and time of a piece of work run in a child process (for scripts/benchmark.py).

Peak RSS here is the peak *anonymous* resident memory (``RssAnon`` in /proc), summed over the
child and its own children and sampled every 50 ms while it runs: memory-mapped index pages are
page cache (reclaimable, shared) and do not count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def rss_anon(pid: int) -> int:
    """``RssAnon`` of one process in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_anon(pid: int) -> int:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    return rss_anon(pid) + sum(rss_anon(c.pid) for c in children)


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    output: str


def run(code: str, env: dict[str, str] | None = None, timeout: float = 7200) -> Measured:
    """Run Python ``code`` in a child process (project root on sys.path) and measure it.
    Raises RuntimeError with the child's output if it fails."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{code}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                             env={**os.environ, **(env or {})})
    peak = 0
    output: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        peak = max(peak, tree_rss_anon(child.pid))
        if time.perf_counter() - started > timeout:
            child.kill()
        time.sleep(0.05)
    reader.join(5)
    seconds = time.perf_counter() - started
    text = "".join(output)
    if child.returncode != 0:
        raise RuntimeError(f"measured child failed ({child.returncode}):\n{text[-3000:]}")
    return Measured(seconds, peak / 2**20, text)
