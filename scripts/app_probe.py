"""Start the app as users do (`streamlit run app.py`) and measure it in a real browser.

    python scripts/app_probe.py [--url-query "layer=3"] [--json]

Prints the cold start (launching `streamlit run` to the attention chart drawn in Chromium), the
time to the first corpus matches, and the peak resident memory of the app process. The corpus
must exist already (`python scripts/build_corpus.py --source alice --name alice`). Chromium is
Debian's (`/usr/bin/chromium`, or $CHROMIUM), driven by Playwright for Python.

The helpers (:func:`start_app`, :func:`wait_healthy`, :func:`launch_browser`,
:func:`peak_rss_mb`, :func:`stop_app`) are shared with the end-to-end tests and
``scripts/benchmark.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
# CSS selectors of the views (Streamlit gives a keyed container the class st-key-<key>).
ATTENTION_CHART = ".st-key-attention_curves .main-svg"
MATCHES_TABLE = ".st-key-matches .exbert-matches"


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


def launch_browser(playwright: Any):
    """Debian's Chromium through Playwright (its own browser download is not used)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url-query", default="", help="query string of the link to open, e.g. layer=3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = probe(args.url_query)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
