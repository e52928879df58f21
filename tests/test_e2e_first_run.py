"""A fresh server's first run in a real browser: `streamlit run app.py` with no corpus, driven by
Debian's Chromium through Playwright. The default corpus builds once in the background while the
reader clicks around and a second tab opens; both tabs see the banner at the top of the page;
the build is never restarted. Screenshots at 1280x800 and 390x844 go to test-artifacts/.
"""

from __future__ import annotations

import re
import sys
import time

import app_support
import ops_support
import pytest
from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(app_support.ROOT / "scripts"))
import app_probe  # noqa: E402

ARTIFACTS = app_support.ROOT / "test-artifacts"
TIMEOUT_MS = 300_000
# Alice three times and a half (about 125k tokens): a build of about a minute here, long enough to
# click around, open a second tab and a phone while it runs (a quarter of Alice, 40k characters,
# was done in 34 s before the builds got faster, and before the phone looked).
FIRST_RUN_CHARACTERS = 480_000
BANNER = app_probe.BANNER
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
expect.set_options(timeout=TIMEOUT_MS)


def seconds_in(text: str, prefix: str) -> int:
    """``running for 1 min 05 s`` -> 65 (the banner's format_seconds)."""
    match = re.search(prefix + r" (?:(\d+) min )?(\d+) s", text)
    assert match, text
    return int(match.group(1) or 0) * 60 + int(match.group(2))


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """The app on a free port with a data dir that has no corpus."""
    root = ops_support.make_fresh_data_dir(tmp_path_factory.mktemp("first-run") / "data", FIRST_RUN_CHARACTERS)
    ARTIFACTS.mkdir(exist_ok=True)
    with ops_support.environment(root):
        process, base = app_probe.start_app(log_path=ARTIFACTS / "e2e-first-run-streamlit.log")
    try:
        app_probe.wait_healthy(process, base, timeout=90)
        yield process, base, root
    finally:
        app_probe.stop_app(process)


def screenshot(page: Page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_first_run_builds_once_while_readers_click_and_a_second_tab_attaches(fresh_server):
    _, base, root = fresh_server
    with sync_playwright() as p:
        browser = app_probe.launch_browser(p)
        try:
            context = browser.new_context(viewport=DESKTOP)
            first = context.new_page()
            first.set_default_timeout(TIMEOUT_MS)
            first.goto(base)
            banner = first.locator(BANNER)
            expect(banner).to_be_visible()
            # At the top of the page, not below the fold, and the attention view works meanwhile.
            expect(banner).to_be_in_viewport()
            expect(banner).to_contain_text("First run: building the reference corpus 'alice'")
            first.wait_for_selector(app_probe.ATTENTION_CHART)
            expect(first.get_by_text("Corpus 'alice' is being built")).to_be_visible()
            screenshot(first, "e2e-first-run-building-1280")
            # Once it has run a few seconds (a restart would show: its time would start again).
            first.wait_for_function(
                "() => /running for (\\d+ min )?([6-9]|\\d\\d+) s/.test("
                f"document.querySelector('{BANNER}')?.innerText || '')")
            ran, seen = seconds_in(banner.inner_text(), "running for"), time.monotonic()

            # Clicks rerun the page, not the build.
            first.locator(".st-key-token_pick button", has_text="pub").first.click()
            expect(first.get_by_text("Selected: “pub”", exact=False)).to_be_visible()
            first.get_by_role("link", name="Corpora").click()
            expect(first.get_by_role("heading", name="Build a corpus")).to_be_visible()
            expect(first.get_by_text("No corpus is built yet")).to_be_visible()
            expect(banner).to_be_visible()
            expect(banner).to_be_in_viewport()
            screenshot(first, "e2e-first-run-corpora-1280")

            # A second tab (a new session) attaches to the same build: its banner counts from
            # the build's start, not from zero.
            second = context.new_page()
            second.set_default_timeout(TIMEOUT_MS)
            second.goto(f"{base}/?layer=3")
            expect(second.locator(BANNER)).to_be_visible()
            text = second.locator(BANNER).inner_text()
            assert seconds_in(text, "running for") >= ran + time.monotonic() - seen - 3, text

            phone_context = browser.new_context(viewport=PHONE)
            phone = phone_context.new_page()
            phone.set_default_timeout(TIMEOUT_MS)
            phone.goto(base)
            expect(phone.locator(BANNER)).to_be_in_viewport()
            phone.wait_for_selector(app_probe.ATTENTION_CHART)
            screenshot(phone, "e2e-first-run-building-390")
            phone.goto(f"{base}/corpora")
            expect(phone.locator(BANNER)).to_be_visible()
            expect(phone.get_by_role("heading", name="Build a corpus")).to_be_visible()
            screenshot(phone, "e2e-first-run-corpora-390")
            phone_context.close()  # three sessions polling are enough

            # When it is done every tab reruns by itself: the banner goes, the matches come.
            done = second.get_by_text("done in", exact=False).first
            expect(done).to_be_visible()
            observed = time.monotonic() - seen
            expect(second.locator(BANNER)).to_have_count(0)
            second.wait_for_selector(app_probe.MATCHES_TABLE)
            took = seconds_in(done.inner_text(), "done in")
            assert took >= ran + observed - 6, (ran, took, observed)  # one build from its start: never restarted
            first.get_by_role("link", name="Attention & search").click()
            first.wait_for_selector(app_probe.MATCHES_TABLE)
            assert "token=7" in first.evaluate("location.search")  # the click made while building stayed
            screenshot(second, "e2e-first-run-done-1280")
            second.get_by_role("link", name="Corpora").click()
            expect(second.locator(".st-key-corpora_list").get_by_text("Manifest of 'alice'")).to_be_visible()
            expect(second.get_by_text("Measured on this server: 'alice'", exact=False)).to_be_visible()
            screenshot(second, "e2e-corpora-after-first-run-1280")
            phone = browser.new_context(viewport=PHONE).new_page()
            phone.goto(base)
            phone.wait_for_selector(app_probe.MATCHES_TABLE)
            screenshot(phone, "e2e-first-run-done-390")
            phone.goto(f"{base}/corpora")
            expect(phone.locator(".st-key-corpora_list").get_by_text("Manifest of 'alice'")).to_be_visible()
            screenshot(phone, "e2e-corpora-after-first-run-390")
        finally:
            browser.close()
    assert (root / "corpora" / "alice" / "manifest.json").is_file()
    assert not list((root / "corpora").glob("alice.partial-*"))
