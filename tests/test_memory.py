"""Bounded memory: a build and searches under a real memory ceiling, a build's peak that does not
grow with the corpus, and the memory budget's eviction that never changes a result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import PAPER_SENTENCE, ROOT

from exbert_core import memory
from exbert_core.corpus.search import query as search, store
from exbert_core.model import analysis

CEILING = 1_300_000_000  # bytes: the child's whole memory (anonymous + the page cache it uses)

CHILD = """
import json, sys, threading, time
sys.path.insert(0, {root!r})
from pathlib import Path
peak = [0]
def watch():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
from exbert_core.corpus.build import pipeline as build, sources
from exbert_core.corpus.search import query as search, store
from exbert_core.model import analysis, loading
loaded = loading.load("minilm")
text = sources.fetch_source("alice").read_text(encoding="utf-8")
out = {{}}
for label, part in (("quarter", text[: text.index("\\n\\n", len(text) // 4)]), ("whole", text)):
    time.sleep(0.1)
    peak[0] = 0
    folder = build.build(part, label, Path({out!r}), loaded)
    time.sleep(0.1)
    out[label] = {{"peak": peak[0], "tokens": store.load(str(folder)).num_tokens}}
corpus = store.load(str(folder))
result = analysis.analyze(loaded, {sentence!r})
for layer in range(1, loaded.info.layers + 1):
    for kind, heads in (("embedding", None), ("heads", [0, 5]), ("heads", [3])):
        found = search.search(corpus, loaded, result, 9, layer, kind, heads, 50)
out["matches"] = len(found.matches)
out["search_peak"] = peak[0]
print(json.dumps(out))
"""


def _memory_cgroup(limit: int) -> Path | None:
    """A fresh memory cgroup (v1 or v2) limited to ``limit`` bytes, where this machine lets us make
    one; None elsewhere."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if controllers == "memory":
            base, limit_file = Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
        elif number == "0" and controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").is_file():
            base, limit_file = Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"
        else:
            continue
        group = base / f"exbert-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            (group / limit_file).write_text(str(limit))
            return group
        except OSError:
            if group.exists():
                group.rmdir()
    return None


def _remove(group: Path, wait_s: float = 30.0) -> None:
    """Remove a cgroup once its last process has ended: the child's helpers (its spaCy workers,
    multiprocessing's resource tracker) end just after it, and a group with a process in it cannot
    be removed (EBUSY)."""
    deadline = time.monotonic() + wait_s
    while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    group.rmdir()


def test_a_build_and_searches_run_under_a_memory_ceiling(tmp_path):
    """The child builds a quarter of Alice, then all of it (4x the tokens), and searches every
    layer, inside a memory cgroup of 1.3 GB where the machine allows one (the kernel kills the
    child if it goes over), and its anonymous memory is sampled throughout in any case."""
    code = CHILD.format(root=str(ROOT), out=str(tmp_path), sentence=PAPER_SENTENCE)
    group = _memory_cgroup(CEILING)
    env = {**os.environ, "EXBERT_MEMORY_BUDGET": "400MB"}
    preexec = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    try:
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                               env=env, preexec_fn=preexec)
    finally:
        if group:
            _remove(group)
    assert child.returncode == 0, f"killed or failed (cgroup: {group is not None}):\n{child.stderr[-3000:]}"
    data = json.loads(child.stdout.strip().splitlines()[-1])
    quarter, whole = data["quarter"], data["whole"]
    assert whole["tokens"] > 3 * quarter["tokens"]
    assert whole["peak"] < CEILING and data["search_peak"] < CEILING
    # the build's peak does not depend on the corpus's length
    assert whole["peak"] <= 1.15 * quarter["peak"], (quarter, whole)
    assert data["matches"] == 50


def test_eviction_keeps_results_identical(sample_corpus_dir, minilm, monkeypatch):
    result = analysis.analyze(minilm, "The children ran to the river to escape the heat of the city.")
    unbounded = search.search(store.load(str(sample_corpus_dir)), minilm, result, 7, 3, "heads", [1, 4], 20)
    tiny = memory.Kept(limit=1)  # every entry evicts the one before
    monkeypatch.setattr(memory, "KEPT", tiny)
    corpus = store.load(str(sample_corpus_dir))
    for _ in range(3):
        bounded = search.search(corpus, minilm, result, 7, 3, "heads", [1, 4], 20)
        assert [(m.token.row, m.score, m.max_attention.token.row) for m in bounded.matches] == [
            (m.token.row, m.score, m.max_attention.token.row) for m in unbounded.matches]
        assert len(tiny.keys()) <= 1


def test_the_budget_evicts_least_recently_used_by_bytes(monkeypatch):
    kept = memory.Kept(limit=100)
    loads = []
    for key in ("a", "b", "a", "c"):
        kept.get(key, lambda key=key: loads.append(key) or key, lambda _: 40)
    assert loads == ["a", "b", "c"]  # "a" was kept when asked again
    assert kept.keys() == ["a", "c"] and kept.used() == 80  # "b" was least recently used
    monkeypatch.setenv(memory.BUDGET_ENV, "1.5GB")
    assert memory.budget_bytes() == 1_500_000_000 and memory.parse_bytes("800MiB") == 800 * 2**20
    monkeypatch.setenv(memory.BUDGET_ENV, "lots")
    assert memory.budget_bytes() == memory.DEFAULT_BUDGET
    with pytest.raises(ValueError):
        memory.parse_bytes("-3GB")
