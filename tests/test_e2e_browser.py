"""End to end in a real browser: `streamlit run app.py` on a free port, driven by Debian's
Chromium through Playwright for Python. A shared link opens the view it describes; a token is
selected (by its button and by clicking the chart), the search runs, matches and histograms
show, and the view survives a reload of its URL. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, quote

import app_support
import pytest
from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(app_support.ROOT / "scripts"))
import app_probe  # noqa: E402

ARTIFACTS = app_support.ROOT / "test-artifacts"
SENTENCE = "Alice ran to a small house to escape the rain."  # [CLS] alice ran to a small house ...
TIMEOUT_MS = 90_000
MAX_RSS_MB = 1500  # the budget for the app with the default model
expect.set_options(timeout=TIMEOUT_MS)  # a search on a busy CI machine can take seconds


@pytest.fixture(scope="module")
def server():
    """The app as users start it, on a free port, with the test data dir (default corpus built)."""
    app_support.ensure_alice()
    ARTIFACTS.mkdir(exist_ok=True)
    with app_support.app_environment():
        process, base = app_probe.start_app(log_path=ARTIFACTS / "e2e-streamlit.log")
    try:
        app_probe.wait_healthy(process, base, timeout=90)
        yield process, base
    finally:
        app_probe.stop_app(process)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = app_probe.launch_browser(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def query_of(page: Page) -> dict[str, str]:
    """The page's current query parameters (Playwright's page.url lags behind replaceState)."""
    return {k: v[-1] for k, v in parse_qs(page.evaluate("location.search").lstrip("?"), keep_blank_values=True).items()}


def wait_for_query(page: Page, key: str, value: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query_of(page).get(key) == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{key}={value} not in the URL: {query_of(page)}")


def chart_tokens(page: Page) -> list[str]:
    return page.locator(".st-key-attention_curves g.textpoint text").all_text_contents()


def test_shared_link_search_and_summary(server, page):
    _, base = server
    started = time.monotonic()
    page.goto(f"{base}/?sentence={quote(SENTENCE)}&layer=3")
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    assert "house" in chart_tokens(page) and "rain" in chart_tokens(page)
    expect(page.get_by_text("layer-[heads] 3-[all]", exact=False)).to_be_visible()
    # The default token is "escape"; select "house" with its button.
    page.locator(".st-key-token_pick button", has_text="house").click()
    expect(page.get_by_text("Corpus tokens like “house” at 3-[all]")).to_be_visible()
    rows = page.locator(".st-key-matches .exbert-matches tbody tr")
    expect(rows).to_have_count(50)
    wait_for_query(page, "token", "6")
    assert query_of(page)["layer"] == "3" and query_of(page)["sentence"] == SENTENCE
    # The summary: histograms of the matches and of what they attend to.
    page.get_by_role("tab", name="Summary").click()
    summary = page.locator(".st-key-summary")
    expect(summary.locator(".main-svg").first).to_be_visible()
    expect(summary.get_by_text("Part of speech of the 50 matched tokens")).to_be_visible()
    assert summary.locator("g.trace.bars path").count() > 2
    seconds = time.monotonic() - started
    page.screenshot(path=str(ARTIFACTS / "e2e-shared-link.png"))
    assert seconds < 60, f"link to summary took {seconds:.0f} s"


def test_clicking_a_token_in_the_chart_selects_it(server, page):
    _, base = server
    page.goto(f"{base}/?layer=2")
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    expect(page.get_by_text("Corpus tokens like “escape”")).to_be_visible()
    # The marker of "din" in the left column sits just right of its label.
    label = page.locator(".st-key-attention_curves g.textpoint text", has_text="din").first
    box = label.bounding_box()
    assert box is not None
    marker = next(b for b in (p.bounding_box() for p in page.locator(".st-key-attention_curves path.point").all())
              if b and abs((b["y"] + b["height"] / 2) - (box["y"] + box["height"] / 2)) < 4 and b["x"] > box["x"])
    page.mouse.click(marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
    wait_for_query(page, "token", "11")
    expect(page.get_by_text("Corpus tokens like “din” at 2-[all]")).to_be_visible()
    expect(page.locator(".st-key-token_pick button[aria-checked='true']")).to_have_text("din")


def test_reopening_the_url_reproduces_the_view(server, browser):
    _, base = server
    link = (f"{base}/?sentence={quote(SENTENCE)}&layer=4&heads=0,5&token=10&by=heads&k=12&hide_special=1"
            "&threshold=60")
    for attempt in range(2):  # the second visit is a new session with nothing cached in the page
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(link)
        page.wait_for_selector(app_probe.ATTENTION_CHART)
        expect(page.get_by_text("Corpus tokens like “rain” at 4-[0,5]")).to_be_visible()
        expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(12)
        assert "[CLS]" not in chart_tokens(page)
        params = query_of(page)
        assert (params["heads"], params["by"], params["threshold"], params["hide_special"]) == ("0,5", "heads", "60", "1")
        context.close()


def test_layer_one_recomputes_the_corpus_vectors_it_does_not_store(server, page):
    """The corpus stores layers 2..L; layer 1 is recomputed from token ids on first use."""
    _, base = server
    page.goto(f"{base}/?layer=1&token=7")
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    expect(page.get_by_text("Corpus tokens like “pub” at 1-[all]")).to_be_visible()
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)


def test_bad_link_shows_a_warning_not_a_traceback(server, page):
    _, base = server
    page.goto(f"{base}/?layer=99&k=-4&model=%2Fetc%2Fpasswd")
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    warning = page.get_by_text("This link had problems")
    expect(warning).to_be_visible()
    expect(page.get_by_text("Layer 99 does not exist in minilm")).to_be_visible()
    assert page.locator("[data-testid='stException']").count() == 0
    wait_for_query(page, "layer", "2")


def test_page_switches_keep_the_view(server, page):
    """Attention -> Corpora -> Attention through the navigation: the controls and the URL keep
    the view (the Corpora page draws only model and corpus, the rest is kept for the way back)."""
    _, base = server
    page.goto(f"{base}/?layer=5&token=7&k=20")
    expect(page.get_by_text("Corpus tokens like “pub” at 5-[all]")).to_be_visible()
    page.get_by_role("link", name="Corpora").click()
    expect(page.get_by_role("heading", name="Corpora")).to_be_visible()
    expect(page.locator(".st-key-corpora_list").get_by_text("Manifest of 'alice'")).to_be_visible()
    wait_for_query(page, "layer", "5")
    assert page.evaluate("location.pathname").endswith("/corpora")
    page.screenshot(path=str(ARTIFACTS / "e2e-corpora.png"))
    page.get_by_role("link", name="Attention & search").click()
    expect(page.get_by_text("Corpus tokens like “pub” at 5-[all]")).to_be_visible()
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(20)
    assert query_of(page)["k"] == "20"


def test_model_view_link_opens_a_head_in_the_attention_view(server, page):
    """A link opens the model view; clicking a head's map shows that head in the attention view."""
    _, base = server
    page.goto(f"{base}/model_view?sentence={quote(SENTENCE)}&layer=2")
    tiles = page.locator(".st-key-model_view path.point")  # one click target per layer x head
    expect(tiles).to_have_count(6 * 12)
    box = tiles.nth(3 * 12 + 7).bounding_box()  # layer 4, head 7
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for_query(page, "heads", "7")
    assert query_of(page)["layer"] == "4" and query_of(page)["sentence"] == SENTENCE
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    expect(page.get_by_text("layer-[heads] 4-[7]", exact=False)).to_be_visible()


def test_layer_sweep_link_and_svg_export(server, page):
    """A link opens the layer sweep; with image=svg the chart's camera button saves an SVG."""
    _, base = server
    page.goto(f"{base}/layers?token=7&image=svg")
    chart = page.locator(".st-key-sweep_chart")
    expect(chart.locator("g.trace.bars").first).to_be_visible()
    expect(page.get_by_text("Corpus neighbours of “pub” at every layer")).to_be_visible()
    chart.hover()
    with page.expect_download() as download:
        chart.locator("button.modebar-btn[data-title='Download plot']").click()
    assert download.value.suggested_filename == "exbert-layer-sweep-pos-minilm-pub-7.svg"
    assert Path(download.value.path()).read_text().startswith("<svg")
    page.screenshot(path=str(ARTIFACTS / "e2e-layer-sweep.png"))


def test_a_512_token_input_keeps_the_attention_view_fast(server, page):
    """BertViz fails to render 512 tokens; here the heat map opens by default, the curves draw
    the strongest links only and scroll. Timings go to test-artifacts/e2e-long-input.json."""
    _, base = server
    long_text = " ".join([SENTENCE] * 50)  # 552 tokens: cut to MiniLM's 512
    started = time.monotonic()
    page.goto(f"{base}/?sentence={quote(long_text)}&layer=2")
    page.wait_for_selector(".st-key-attention_heatmap .main-svg")
    heat_map = time.monotonic() - started
    expect(page.get_by_text("512 tokens", exact=False).first).to_be_visible()
    started = time.monotonic()
    page.get_by_role("tab", name="Curves").click()
    page.wait_for_function("document.querySelectorAll('.st-key-attention_curves g.textpoint').length >= 1024")
    curves = time.monotonic() - started
    expect(page.get_by_text("only the 1,500 strongest", exact=False)).to_be_visible()
    wait_for_query(page, "view", "curves")
    (ARTIFACTS / "e2e-long-input.json").write_text(json.dumps(
        {"tokens": 512, "heat_map_s": round(heat_map, 2), "curves_s": round(curves, 2)}))
    assert heat_map < 45 and curves < 20, (heat_map, curves)


def test_app_memory_stays_within_budget(server):
    """After every view above (searches at several layers, by token and head embedding), the app
    process never held more than the issue's budget."""
    process, _ = server
    peak = app_probe.peak_rss_mb(process.pid)
    (ARTIFACTS / "e2e-metrics.json").write_text(json.dumps({"peak_rss_mb": round(peak, 1)}))
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"
