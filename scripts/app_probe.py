"""Start the app as users do (`streamlit run app.py`) and measure it in a real browser.

    python scripts/app_probe.py [--measure cold,click,concurrent,profile,build] [--sessions 8] [--json]

- cold: the cold start (launching `streamlit run` to the attention chart drawn in Chromium), the
  time to the first corpus matches, and the peak resident memory of the app process;
- click: the server's CPU time (all its threads) for the rerun after a click on a token (until
  the new matches are drawn and the server is idle again), for several clicks;
- concurrent: N fresh sessions (tabs of one Chromium) opening N different links at once on a
  warm server: the seconds until each shows its first view (the attention chart);
- server: the same N sessions without browsers (clients of Streamlit's websocket protocol): the
  seconds until the server has sent each first view (the browsers' own CPU, 4-6 s a tab here,
  runs on the same 2 cores in ``concurrent``);
- profile: where a first view and a rerun spend their time (analysis, spaCy, search, max
  attention, figures, chart serialisation, HTML), from cProfile of the page script under
  Streamlit's AppTest;
- build: the peak ``RssAnon`` of the app's whole process tree (the server and the processes its
  builds run in) through a session that uses both offline models, starts a SmolLM2 build of
  alice from the Corpora page and keeps using both models while it runs (a fresh server on a
  scratch data dir: its first view builds alice with MiniLM; minutes).

The corpus must exist already (`python scripts/build_corpus.py --source alice --name alice`).
Chromium is Debian's (`/usr/bin/chromium`, or $CHROMIUM), driven by Playwright for Python.

The helpers (:func:`start_app`, :func:`wait_healthy`, :func:`launch_browser`,
:func:`peak_rss_mb`, :func:`cpu_seconds`, :func:`stop_app`) are shared with the end-to-end tests
and ``scripts/benchmark.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
# CSS selectors of the views (Streamlit gives a keyed container the class st-key-<key>).
ATTENTION_CHART = ".st-key-attention_curves .main-svg"
MATCHES_TABLE = ".st-key-matches .exbert-matches"
BANNER = ".st-key-job_banner"
# Words of the default sentence that occur once (a click on each selects a new token).
CLICK_WORDS = ("girl", "pub", "din", "city", "local", "ran")
# Different links for concurrent visitors: no two share a sentence (nothing is shared but the
# model and the corpus).
LINK_SENTENCES = (
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "The rabbit took a watch out of its waistcoat pocket and hurried on.",
    "She found herself in a long, low hall, lit up by a row of lamps.",
    "The Queen turned crimson with fury and began screaming off with her head.",
    "A large caterpillar was sitting on the top of the mushroom, smoking a long pipe.",
    "The Hatter opened his eyes very wide on hearing this, but all he said was why.",
    "The cat only grinned when it saw Alice, and it looked good-natured, she thought.",
    "Soon her eye fell on a little glass box that was lying under the table.",
    "The girl ran to a local pub to escape the din of her city.",
    "Down, down, down: would the fall never come to an end?",
)


LINK_LAYERS = (2, 3, 4, 5, 6)  # the stored layers of the default corpus (1 is recomputed on first use)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int | None = None, env: dict[str, str] | None = None,
              log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Launch `streamlit run app.py` headless on ``port`` (default: a free one); returns the
    process and its base URL. Output goes to ``log_path`` (default: discarded)."""
    port = port or free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    with open(log_path or os.devnull, "w") as out:  # the child keeps its own handle
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})},
                                   stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen, base_url: str, timeout: float = 90.0) -> float:
    """Poll ``/_stcore/health`` until it answers ``ok``; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} was not healthy after {timeout:.0f} s")


def stop_app(process: subprocess.Popen) -> None:
    """Stop the app process (by its pid) and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found (Linux only)")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a live process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def descendants_cpu_seconds(exclude: int | None = None) -> float:
    """CPU time of this process's live descendants (the browser's processes), but ``exclude``'s."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if pid == exclude:
            continue
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
        todo.extend(children.get(pid, []))
    return total


def wait_quiet(pid: int, *, window: float = 0.6, below: float = 0.03, timeout: float = 60.0) -> None:
    """Wait until the process used less than ``below`` s of CPU during ``window`` s (its work
    for the last request is done, including what runs after the page looks finished)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - last < below:
            return
        last = now


def launch_browser(playwright: Any):
    """Debian's Chromium through Playwright (its own browser download is not used)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def link(base: str, sentence: str | None = None, **params: str) -> str:
    query = {**({"sentence": sentence} if sentence else {}), **params}
    return f"{base}/?" + "&".join(f"{k}={quote(str(v))}" for k, v in query.items())


# ---------------------------------------------------------------------------------------------
# Measurements


def probe(query: str = "", timeout: float = 120.0) -> dict[str, float]:
    """Cold start of the app to the first attention view and to the first matches, and the
    app's peak RSS, measured in one fresh process. The browser starts before the app (its own
    start-up is not the app's); the page is opened as soon as the server answers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        started = time.perf_counter()
        process, base = start_app()
        try:
            healthy = wait_healthy(process, base, timeout)
            page.goto(f"{base}/?{query}" if query else base)
            page.wait_for_selector(ATTENTION_CHART, timeout=timeout * 1000)
            first_view = time.perf_counter() - started
            page.wait_for_selector(MATCHES_TABLE, timeout=timeout * 1000)
            first_matches = time.perf_counter() - started
            rss = peak_rss_mb(process.pid)
        finally:
            stop_app(process)
            browser.close()
    return {"server_ready_s": round(healthy, 2), "cold_start_to_attention_s": round(first_view, 2),
            "cold_start_to_matches_s": round(first_matches, 2), "peak_rss_mb": round(rss, 1)}


def click_cpu(base: str, pid: int, *, words: tuple[str, ...] = CLICK_WORDS,
              timeout: float = 120.0) -> list[float]:
    """The server's CPU seconds for each rerun after a click on a token pill of the default
    sentence (one session, its first view done and the server idle before each click)."""
    from playwright.sync_api import expect, sync_playwright

    seconds = []
    with sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(timeout * 1000)
        try:
            page.goto(link(base, layer="2"))
            page.wait_for_selector(MATCHES_TABLE)
            for word in words:
                wait_quiet(pid)
                before = cpu_seconds(pid)
                page.locator(".st-key-token_pick button", has_text=word).first.click()
                expect(page.get_by_text(f"Corpus tokens like “{word}”")).to_be_visible(timeout=timeout * 1000)
                page.wait_for_selector(MATCHES_TABLE)
                wait_quiet(pid)
                seconds.append(round(cpu_seconds(pid) - before, 3))
        finally:
            browser.close()
    return seconds


def concurrent_first_views(base: str, pid: int | None = None, *, sessions: int = 8,
                           timeout: float = 180.0) -> dict[str, Any]:
    """Seconds until each of ``sessions`` fresh sessions (browser tabs), opening different links
    at the same moment, shows its first view (the attention chart), and the server's CPU seconds
    meanwhile (``pid``). The tabs share one browser, as a visitor's tabs do (its cache keeps one
    copy of Streamlit's scripts: the browser runs on the server's 2 cores here, which a real
    visitor's does not); they are opened before the clock starts, on a warm server."""
    from playwright.async_api import async_playwright

    links = [link(base, LINK_SENTENCES[i % len(LINK_SENTENCES)], layer=str(LINK_LAYERS[i % len(LINK_LAYERS)]))
             for i in range(sessions)]

    browser_cpu = [0.0]

    async def run() -> list[float]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                pages = [await context.new_page() for _ in links]
                started = time.perf_counter()

                async def open_one(page: Any, url: str) -> float:
                    await page.goto(url)
                    await page.wait_for_selector(ATTENTION_CHART, timeout=timeout * 1000)
                    return round(time.perf_counter() - started, 2)

                before = descendants_cpu_seconds(exclude=pid)
                views = list(await asyncio.gather(*(open_one(pg, url) for pg, url in zip(pages, links))))
                browser_cpu[0] = round(descendants_cpu_seconds(exclude=pid) - before, 1)
                return views
            finally:
                await browser.close()

    cpu = cpu_seconds(pid) if pid else 0.0
    load = os.getloadavg()[0]
    views = asyncio.run(run())  # the browser's processes end with it: their CPU is read inside
    return {"sessions": sessions, "first_view_s": views, "max_s": max(views),
            "server_cpu_s": round(cpu_seconds(pid) - cpu, 1) if pid else None,
            "browser_cpu_s": browser_cpu[0], "load_before": round(load, 1)}


def concurrent_first_views_server(base: str, pid: int | None = None, *, sessions: int = 8,
                                  timeout: float = 180.0) -> dict[str, Any]:
    """Like :func:`concurrent_first_views`, without the browsers: ``sessions`` clients speak
    Streamlit's own protocol (a websocket to ``/_stcore/stream``, protobuf messages) and time when
    the server has sent each session's first view (the attention chart's element). Each stays
    connected until its page run ends (a closed session would stop its run and spare the rest)."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    queries = [link("", LINK_SENTENCES[i % len(LINK_SENTENCES)], layer=str(LINK_LAYERS[i % len(LINK_LAYERS)]))
               .split("?", 1)[1] for i in range(sessions)]
    url = base.replace("http://", "ws://") + "/_stcore/stream"

    async def one(query: str, started: float) -> float:
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as socket:
            message = BackMsg()
            message.rerun_script.query_string = query
            await socket.send(message.SerializeToString())
            shown = None
            while True:
                forward = ForwardMsg()
                forward.ParseFromString(await asyncio.wait_for(socket.recv(), timeout))
                kind = forward.WhichOneof("type")
                if shown is None and kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                    element = forward.delta.new_element
                    if element.WhichOneof("type") == "plotly_chart" and "curves" in element.plotly_chart.id:
                        shown = round(time.perf_counter() - started, 2)
                if kind == "script_finished" and shown is not None:
                    return shown

    async def run() -> list[float]:
        started = time.perf_counter()
        return list(await asyncio.gather(*(one(query, started) for query in queries)))

    cpu = cpu_seconds(pid) if pid else 0.0
    views = asyncio.run(run())
    return {"sessions": sessions, "first_view_s": views, "max_s": max(views),
            "server_cpu_s": round(cpu_seconds(pid) - cpu, 1) if pid else None}


def warm_up(base: str, timeout: float = 180.0) -> None:
    """A warm server: one view with matches at each layer the links use (loads the model, spaCy,
    the corpus and each layer's index, which every later visitor shares)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            for layer in LINK_LAYERS:
                page.goto(link(base, layer=str(layer)))
                page.wait_for_selector(MATCHES_TABLE, timeout=timeout * 1000)
        finally:
            browser.close()


SWEEP_CHART = ".st-key-sweep_chart g.trace.bars"


def visit_minilm_views(page: Any, base: str) -> None:
    """MiniLM's matches at layers 2, 4 and 6 by both kinds, then its layer sweep: the views whose
    caches and indices a session's memory holds before a deeper model is used."""
    for layer in (2, 4, 6):
        for by in ("embedding", "heads"):
            page.goto(link(base, layer=str(layer), by=by))
            page.wait_for_selector(MATCHES_TABLE)
    page.goto(link(base).replace("/?", "/layers?", 1))
    page.wait_for_selector(SWEEP_CHART)


def session_peak_rss(base: str, pid: int, *, deep_corpus: str = "alice-smollm2", timeout: float = 600.0) -> dict[str, float]:
    """The app's peak RSS through a session like the end-to-end tests' (matches by token and by
    heads at several layers, the layer sweep), then SmolLM2: its matches and a layer sweep over
    its 31 layers on ``deep_corpus`` (built with smollm2). Returns the peak before and after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(timeout * 1000)
            visit_minilm_views(page, base)
            minilm = peak_rss_mb(pid)
            deep = {"model": "smollm2", "corpus": deep_corpus, "layer": "15"}
            page.goto(link(base, **deep))
            page.wait_for_selector(MATCHES_TABLE)
            page.goto(link(base, **deep).replace("/?", "/layers?", 1))
            page.wait_for_selector(SWEEP_CHART)
            return {"minilm_session_mb": round(minilm, 1), "with_smollm2_sweep_mb": round(peak_rss_mb(pid), 1)}
        finally:
            browser.close()


class TreePeak:
    """Peaks of a process and all its descendants (the app's server and the child processes its
    builds run in), sampled every ``every`` s in a thread until :meth:`stop`: ``peak``, the sum
    of their ``RssAnon`` (memory of their own; what the targets count), and ``pss_peak``, the
    sum of their ``Pss`` (every resident page, memory-mapped weights included, a page shared by
    n processes counted 1/n in each: the tree's whole footprint, with no page counted twice)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        import threading

        self.pid, self.every, self.peak, self.pss_peak, self.samples = pid, every, 0, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import _measure
        import psutil

        while not self._done.is_set():
            self.peak = max(self.peak, _measure.tree_rss_anon(self.pid))
            if self.samples % 5 == 0:  # smaps_rollup costs more to read
                try:
                    tree = [self.pid] + [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
                except psutil.Error:
                    tree = []
                self.pss_peak = max(self.pss_peak, sum(_pss(pid) for pid in tree))
            self.samples += 1
            self._done.wait(self.every)

    def stop(self) -> int:
        self._done.set()
        self._thread.join(5)
        return self.peak


def _pss(pid: int) -> int:
    """``Pss`` of one process in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def scratch_data_dir(root: Path) -> Path:
    """A data dir of its own for a probe that builds: the real models and source texts linked
    (nothing is converted or fetched again), no corpus yet, no record of earlier builds."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from exbert_core import paths

    real = paths.data_dir()
    root.mkdir(parents=True)
    for name in ("models", "sources"):
        (real / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(real / name, target_is_directory=True)
    (root / "corpora").mkdir()
    return root


BUILD_NAME = "probe-alice-smollm2"


def build_session_peak(base: str, pid: int, *, data_dir: Path, timeout: float = 3600.0) -> dict[str, float]:
    """Peak ``RssAnon`` of the app's whole process tree through a session that uses both offline
    models, then starts a SmolLM2 build of alice from the Corpora page and keeps using both
    models while it runs. A fresh server: the first view builds ``alice`` (MiniLM) by itself.

    Returns the tree's peak before the build and during it, the build process's own peak (as the
    server recorded it) and the build's seconds; sizes in MB of 10^6 bytes."""
    from playwright.sync_api import sync_playwright

    peak = TreePeak(pid)
    smollm2 = {"model": "smollm2", "layer": "15"}
    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(timeout * 1000)
            page.goto(link(base))  # the first run: alice is built with MiniLM in its own process
            page.wait_for_selector(MATCHES_TABLE)
            visit_minilm_views(page, base)
            for sentence in LINK_SENTENCES[:3]:  # SmolLM2's attention view and logit lens (no corpus yet)
                page.goto(link(base, sentence, **smollm2))
                page.wait_for_selector(ATTENTION_CHART)
            before = peak.peak
            page.goto(link(base, **smollm2).replace("/?", "/corpora?", 1))
            page.fill(".st-key-build_source_name input", BUILD_NAME)
            page.keyboard.press("Enter")
            page.wait_for_timeout(1500)
            page.click(".st-key-build_source_go button")
            started = time.perf_counter()
            page.wait_for_selector(BANNER)
            manifest = data_dir / "corpora" / BUILD_NAME / "manifest.json"
            visits = 0
            while not manifest.is_file():  # a visitor keeps using both models while it builds
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"the build of {BUILD_NAME} took more than {timeout:.0f} s")
                if visits % 2 == 0:
                    page.goto(link(base, LINK_SENTENCES[(visits // 2) % len(LINK_SENTENCES)],
                                   layer=str(LINK_LAYERS[visits % len(LINK_LAYERS)])))
                    page.wait_for_selector(MATCHES_TABLE)
                else:
                    page.goto(link(base, LINK_SENTENCES[(visits // 2 + 3) % len(LINK_SENTENCES)], **smollm2))
                    page.wait_for_selector(ATTENTION_CHART)
                failed = page.locator("[data-testid='stAlertContentError']")
                if failed.count():
                    raise RuntimeError(f"the build failed: {failed.first.inner_text()}")
                visits += 1
            seconds = time.perf_counter() - started
        finally:
            browser.close()
    record: dict[str, list[int]] = {}
    deadline = time.perf_counter() + 60
    # The server records the build's peak once its process has ended, just after the corpus
    # appears (no record where builds run in the server's threads: then wait the minute out).
    while "smollm2" not in record and time.perf_counter() < deadline:
        try:
            record = json.loads((data_dir / "build-memory.json").read_text())
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    tree = peak.stop()
    mb = 1e6  # as the app and EXBERT_MEMORY_LIMIT count (2.2 GB = 2,200 MB)
    return {"before_build_mb": round(before / mb, 1), "tree_peak_mb": round(tree / mb, 1),
            "tree_pss_peak_mb": round(peak.pss_peak / mb, 1),
            "build_process_peak_mb": round(record["smollm2"][-1] / mb, 1) if "smollm2" in record else None,
            "minilm_build_process_peak_mb": round(record["minilm"][-1] / mb, 1) if "minilm" in record else None,
            "build_s": round(seconds, 1), "visits_during_build": visits}


def build_probe(timeout: float = 3600.0) -> dict[str, float]:
    """:func:`build_session_peak` against a fresh app on a scratch data dir of its own."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="exbert-probe-") as tmp:
        data_dir = scratch_data_dir(Path(tmp) / "data")
        process, base = start_app(env={"EXBERT_DATA_DIR": str(data_dir)}, log_path=Path(tmp) / "server.log")
        try:
            wait_healthy(process, base)
            return build_session_peak(base, process.pid, data_dir=data_dir, timeout=timeout)
        finally:
            stop_app(process)


def served(measure: Any, **kwargs: Any) -> Any:
    """Run ``measure(base, pid, **kwargs)`` against a fresh app process, warmed up first."""
    process, base = start_app()
    try:
        wait_healthy(process, base)
        warm_up(base)
        return measure(base, process.pid, **kwargs)
    finally:
        stop_app(process)


# ---------------------------------------------------------------------------------------------
# Profile: where the page script spends its time

# Phase -> (file suffix, function names or None for every function of the file). A phase's time
# is the cumulative time of its functions when called from outside the phase (no double count).
PHASES: dict[str, list[tuple[str, tuple[str, ...] | None]]] = {
    "analysis (model forward)": [("exbert_core/model/analysis.py", ("analyze",))],
    "spaCy": [("exbert_core/model/annotate.py", ("annotate_analysis",))],
    "max attention": [("exbert_core/corpus/search/query.py", ("_max_attention",))],
    "search (index, rows)": [("exbert_core/corpus/search/query.py", ("search",))],
    "figures (plotly objects)": [(f"exbert_core/views/charts/{name}.py", None) for name in
                                 ("attention_charts", "head_maps", "corpus_charts", "sweep_charts")],
    "chart serialisation": [("streamlit/elements/plotly_chart.py", ("plotly_chart",))],
    "HTML, CSV, JSON": [("exbert_core/views/match_table.py", None), ("exbert_core/views/serialize.py", None),
                        ("exbert_core/views/tables.py", None)],
}


def _phase_seconds(stats: Any) -> dict[str, float]:
    """Seconds per phase from a ``pstats.Stats`` (see :data:`PHASES`); ``search`` excludes the
    max-attention pass it contains."""

    def members(rules: list[tuple[str, tuple[str, ...] | None]]) -> set:
        return {f for f in stats.stats if any(f[0].endswith(path) and (names is None or f[2] in names)
                                              for path, names in rules)}

    out = {}
    for phase, rules in PHASES.items():
        group = members(rules)
        total = 0.0
        for func in group:
            for caller, (_cc, _nc, _tt, ct) in stats.stats[func][4].items():
                if caller not in group:
                    total += ct
        out[phase] = total
    out["search (index, rows)"] -= out["max attention"]
    return out


def profile(query: dict[str, str] | None = None, click: int = 4) -> dict[str, dict[str, float]]:
    """cProfile of a fresh session's first view (a link with its own sentence) and of the rerun
    after a click on the token at position ``click``, under AppTest in this process, per phase (seconds of the
    script thread's wall time; the model and the corpus are loaded by a warm-up run first)."""
    import cProfile
    import pstats

    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    query = query or {"sentence": LINK_SENTENCES[-3], "layer": "3"}
    original = script_runner.ScriptRunner._run_script
    active: dict[str, Any] = {}

    def run_script(self: Any, rerun_data: Any) -> None:  # the script runs in its own thread
        profiler = active.get("profiler")
        if profiler is None:
            return original(self, rerun_data)
        profiler.enable()
        try:
            return original(self, rerun_data)
        finally:
            profiler.disable()

    def measured(action: Any) -> dict[str, float]:
        active["profiler"] = cProfile.Profile()
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        stats = pstats.Stats(active.pop("profiler"), stream=io.StringIO())
        phases = _phase_seconds(stats)
        script = max((v[3] for f, v in stats.stats.items() if f[2] == "_run_script"), default=wall)
        phases["Streamlit and the rest"] = script - sum(phases.values())
        phases["total (script thread)"] = script
        return {k: round(v, 3) for k, v in phases.items()}

    script_runner.ScriptRunner._run_script = run_script
    try:
        AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()  # warm-up: model, corpus
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params.update(query)
        first = measured(at.run)
        rerun = measured(lambda: at.pills(key="token_pick").set_value(click).run())
    finally:
        script_runner.ScriptRunner._run_script = original
    return {"first view": first, "rerun after a token click": rerun}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", default="cold,click,concurrent,server",
                        help="comma-separated: cold, click, concurrent (Chromium tabs), server (the same "
                             "without browsers), profile, build (the process tree's peak through a "
                             "SmolLM2 build from the Corpora page)")
    parser.add_argument("--url-query", default="", help="cold: query string of the link to open, e.g. layer=3")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent: how many sessions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    measures = set(args.measure.split(","))
    result: dict[str, Any] = {}
    if "cold" in measures:
        result["cold"] = probe(args.url_query)
    if "click" in measures:
        clicks = served(click_cpu)
        result["click"] = {"cpu_s": clicks, "p50_s": statistics.median(clicks), "max_s": max(clicks)}
    if "concurrent" in measures:
        result["concurrent"] = served(concurrent_first_views, sessions=args.sessions)
    if "server" in measures:
        result["server"] = served(concurrent_first_views_server, sessions=args.sessions)
    if "profile" in measures:
        result["profile"] = profile()
    if "build" in measures:
        result["build"] = build_probe()
    if args.json:
        print(json.dumps(result))
    else:
        for section, figures in result.items():
            print(f"== {section}")
            for key, value in figures.items():
                print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
