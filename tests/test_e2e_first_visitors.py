"""Many first visitors at once: a freshly started `streamlit run app.py` opened by 8 Chromium
sessions with different links at the same moment. Each session imports what its page needs in its
own thread; a module that one session is still importing must never be seen half-initialised by
another (Plotly looked pandas up while a second session was importing it: "partially initialized
module 'pandas' has no attribute 'Series'" in 1-2 of 8 sessions).
"""

from __future__ import annotations

import sys
from urllib.parse import quote

import app_support
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(app_support.ROOT / "scripts"))
import app_probe  # noqa: E402

SENTENCE = quote("Alice ran to a small house to escape the rain.")
# Eight links to every page, each waiting for what its page draws last.
LINKS = {
    "/?layer=3": app_probe.MATCHES_TABLE,
    f"/?sentence={SENTENCE}&layer=2&token=6": app_probe.MATCHES_TABLE,
    "/?view=matrix&layer=4&hide_special=1&k=20": app_probe.MATCHES_TABLE,
    f"/model_view?sentence={SENTENCE}&layer=2": ".st-key-model_view .main-svg",
    "/layers?token=7": ".st-key-sweep_chart g.trace.bars",
    f"/model_view?sentence={SENTENCE}&layer=4&hide_special=1": ".st-key-model_view .main-svg",
    "/?layer=5&token=7&by=heads&heads=0,3": app_probe.MATCHES_TABLE,
    "/compare?sentence_b=The%20cat%20sat%20on%20the%20mat.": ".st-key-compare_b .main-svg",
}
TIMEOUT_MS = 180_000  # 8 cold sessions share 2 busy cores
ERRORS = "[data-testid='stException'], [data-testid='stAlertContentError']"
DONE = f"(sel) => document.querySelector(sel) || document.querySelector({ERRORS!r})"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def test_eight_first_visitors_at_once_see_no_error():
    app_support.ensure_alice()
    log = app_support.ROOT / "test-artifacts" / "e2e-first-visitors.log"
    log.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = app_probe.launch_browser(p)  # started before the app: its start-up is not the app's
        with app_support.app_environment():
            process, base = app_probe.start_app(log_path=log)
        try:
            app_probe.wait_healthy(process, base, timeout=90)
            pages = {}
            for link in LINKS:  # all sessions start before any has finished importing
                page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(base + link, wait_until="commit")
                pages[link] = page
            problems = {}
            for link, page in pages.items():
                page.wait_for_function(DONE, arg=LINKS[link])
                page.wait_for_selector(IDLE)
                shown = [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
                if page.get_by_text("Unexpected error").count() or shown:
                    problems[link] = shown
            assert not problems, f"sessions showed errors: {problems}"
            assert process.poll() is None
            assert "Traceback" not in log.read_text(errors="replace")
        finally:
            app_probe.stop_app(process)
            browser.close()
