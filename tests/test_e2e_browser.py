"""End to end in a real browser: `streamlit run app.py` on a free port, driven by Debian's
Chromium through Playwright for Python. A shared link opens the view it describes; a token is
selected (by its button and by clicking the chart), the search runs, matches and histograms
show, and the view survives a reload of its URL. Screenshots of every page at 1280x800 and
390x844 go to test-artifacts/ (``EXBERT_UPDATE_SCREENSHOT=1`` also writes docs/screenshot.png).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import app_support
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(app_support.ROOT / "scripts"))
import app_probe  # noqa: E402

ARTIFACTS = app_support.ROOT / "test-artifacts"
SENTENCE = "Alice ran to a small house to escape the rain."  # [CLS] alice ran to a small house ...
PAPER = "The girl ran to a local pub to escape the din of her city."  # "to" at 4 and 8, "the" at 1 and 10
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
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
    expect(page.get_by_text("Corpus tokens like “house” by token embedding at layer 3")).to_be_visible()
    rows = page.locator(".st-key-matches .exbert-matches tbody tr")
    expect(rows).to_have_count(50)
    wait_for_query(page, "token", "6")
    assert query_of(page)["layer"] == "3" and query_of(page)["sentence"] == SENTENCE
    # The summary: histograms of the matches and of what they attend to.
    page.get_by_role("tab", name="Summary").click()
    summary = page.locator(".st-key-summary")
    expect(summary.locator(".main-svg").first).to_be_visible()
    expect(summary.get_by_text("Part of speech of the 50 matched tokens")).to_be_visible()
    # The open tab is drawn on its own rerun: wait for its second chart too.
    expect(summary.get_by_text("Part of speech of the tokens they attend to most")).to_be_visible()
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
    expect(page.get_by_text("Corpus tokens like “din” by token embedding at layer 2")).to_be_visible()
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
        expect(page.get_by_text("Corpus tokens like “rain” by head embedding of 4-[0,5] (heads 0 and 5 of layer 4)")).to_be_visible()
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
    expect(page.get_by_text("Corpus tokens like “pub” by token embedding at layer 1")).to_be_visible()
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
    expect(page.get_by_text("Corpus tokens like “pub” by token embedding at layer 5")).to_be_visible()
    page.get_by_role("link", name="Corpora").click()
    expect(page.get_by_role("heading", name="Corpora")).to_be_visible()
    expect(page.locator(".st-key-corpora_list").get_by_text("Manifest of 'alice'")).to_be_visible()
    wait_for_query(page, "layer", "5")
    assert page.evaluate("location.pathname").endswith("/corpora")
    page.screenshot(path=str(ARTIFACTS / "e2e-corpora.png"))
    page.get_by_role("link", name="Attention & search").click()
    expect(page.get_by_text("Corpus tokens like “pub” by token embedding at layer 5")).to_be_visible()
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


# --- Issue 11: the right token, marks on words, heads, phones, links ----------------------------------


def new_page(browser, viewport: dict, **options) -> Page:
    page = browser.new_context(viewport=viewport, **options).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def pills(page: Page, key: str = "token_pick"):
    return page.locator(f".st-key-{key} button")


def checked(page: Page, key: str = "token_pick") -> list[int]:
    """Indices of the highlighted pills of the picker ``key`` (once it is drawn)."""
    pills(page, key).first.wait_for()
    return pills(page, key).evaluate_all(
        "buttons => buttons.flatMap((b, i) => b.getAttribute('aria-checked') === 'true' ? [i] : [])")


def test_a_repeated_word_selects_the_token_clicked(server, page):
    """Every token picker selects exactly the token clicked, and highlights the URL's token: on the
    paper's sentence the first "to" (4) and the first "the" (1), not their last occurrences."""
    _, base = server
    page.goto(f"{base}/?sentence={quote(PAPER)}&token=1")
    expect(page.get_by_text("Corpus tokens like “the (1)” by token embedding at layer 2")).to_be_visible()
    assert checked(page) == [0]  # pill 0 is position 1 (the pills skip [CLS])
    pills(page).nth(3).click()  # the first "to"
    wait_for_query(page, "token", "4")
    expect(page.get_by_text("Corpus tokens like “to (4)” by token embedding at layer 2")).to_be_visible()
    expect(pills(page).nth(3)).to_have_attribute("aria-checked", "true")
    assert checked(page) == [3]
    pills(page).nth(9).click()  # the second "the"
    wait_for_query(page, "token", "10")
    expect(pills(page).nth(9)).to_have_attribute("aria-checked", "true")
    assert checked(page) == [9]

    page.goto(f"{base}/layers?sentence={quote(PAPER)}&token=4")
    expect(page.get_by_text("Corpus neighbours of “to” at every layer")).to_be_visible()
    assert checked(page) == [3]
    pills(page).nth(7).click()  # the second "to"
    wait_for_query(page, "token", "8")
    expect(pills(page).nth(7)).to_have_attribute("aria-checked", "true")

    sentence_b = "The cat ran to the door to escape."  # "to" at 4 and 7, "the" at 1 and 5
    page.goto(f"{base}/compare?sentence={quote(PAPER)}&token=4&sentence_b={quote(sentence_b)}")
    expect(page.locator(".st-key-compare_b .main-svg").first).to_be_visible()
    assert checked(page) == [3] and checked(page, "cmp_token_b") == [3]  # B follows A's word: its first "to"
    pills(page, "cmp_token_b").nth(6).click()  # B's second "to"
    wait_for_query(page, "token_b", "7")
    expect(pills(page, "cmp_token_b").nth(6)).to_have_attribute("aria-checked", "true")
    pills(page).nth(7).click()  # A's second "to"
    wait_for_query(page, "token", "8")
    expect(pills(page).nth(7)).to_have_attribute("aria-checked", "true")


MARKS_JS = """() => [...document.querySelectorAll('.exbert-matches tbody *')].filter(el => {
  const s = getComputedStyle(el), purple = 'rgb(123, 94, 167)';
  return (s.textDecorationLine.includes('underline') && s.textDecorationColor === purple)
      || (parseFloat(s.borderBottomWidth) >= 2 && s.borderBottomColor === purple);
}).map(el => ({text: el.textContent.trim(), height: el.getBoundingClientRect().height,
               lines: el.getClientRects().length}))"""


def test_the_attended_mark_sits_on_its_word(server, page):
    """The "attends most to" mark is drawn on the word: one line high, wherever the row wraps."""
    _, base = server
    page.goto(f"{base}/?token=9")
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    marks = page.evaluate(MARKS_JS)
    assert len(marks) >= 50  # at least the "attends most to" column of every row
    off_the_word = [m for m in marks if m["height"] > 36 or m["lines"] != 1 or not m["text"]]
    assert not off_the_word, off_the_word[:3]


HIGHLIGHTS_JS = """() => [...document.querySelectorAll('.exbert-matches tbody tr')].map(tr => {
  const cells = [...tr.querySelectorAll('td.ctx')];
  const match = cells[Math.floor(cells.length / 2)];
  const mark = [...tr.querySelectorAll('td.sentence span')].filter(s => getComputedStyle(s).backgroundColor === 'rgb(255, 214, 165)');
  return {token: match.textContent.trim(), marked: mark.map(s => s.textContent)};
})"""


@pytest.mark.parametrize("query", ["token=9", f"sentence={quote('The White Rabbit hurried by.')}&token=3"],
                         ids=["escape", "rabbit"])
def test_the_highlight_of_each_match_is_its_token(server, page, query):
    """Each match's sentence highlights exactly the matched token's characters, not its whole
    spaCy word (issue 19, 1: a match on "rabbit" highlighted "Rabbit's--'Pat")."""
    _, base = server
    page.goto(f"{base}/?{query}")
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    rows = page.evaluate(HIGHLIGHTS_JS)
    assert len(rows) == 50
    wrong = [r for r in rows if len(r["marked"]) != 1 or r["marked"][0].lower() != r["token"].removeprefix("##").lower()]
    assert not wrong, wrong[:5]


def test_one_back_from_a_first_visit_leaves_the_app(server, browser):
    """Opening the app writes its canonical URL in place of the visit's history entry (issue 19,
    16): the browser's first Back leaves the app."""
    _, base = server
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto("about:blank")
    page.goto(base)
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    page.wait_for_function("new URLSearchParams(location.search).has('corpus_build')")  # the canonical URL
    settle(page)
    assert page.evaluate("history.length") == 2, "about:blank and the app's first view"
    page.go_back()
    page.wait_for_url("about:blank")
    page.context.close()


# The top bar's boxes that are drawn and visible but hold nothing (Streamlit's places for elements
# whose code is still loading), and whether Copy link is drawn yet (its button is in a shadow root).
TOP_BAR_STATE = """() => {
  const bar = document.querySelector('.st-key-top_bar');
  if (!bar) return null;
  const empty = [...bar.querySelectorAll('.stElementContainer > div:empty')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden' && !e.shadowRoot;
  }).length;
  const host = [...bar.querySelectorAll('.st-key-copy_link *')].find(e => e.shadowRoot);
  const button = host && host.shadowRoot.querySelector('button');
  return {empty, copy: button ? button.innerText.trim() : null, styled: !!document.querySelector('.st-key-exbert_style style')};
}"""


def test_copy_link_is_not_an_empty_box_while_a_build_runs(browser, tmp_path):
    """Issue 19, 11: while a build loads the server (here a fresh server's first visit, which
    builds the default corpus, with the page's CPU slowed eightfold), the top bar's buttons stood
    as grey empty boxes for about 12 s before they were drawn. The app's style rules, the first
    element of every page, hide such boxes from the moment Streamlit draws them."""
    app_support.ensure_alice()  # its source text, for the scratch data dir's first run
    ARTIFACTS.mkdir(exist_ok=True)  # for its log, also when this test runs alone
    with app_support.app_environment():
        data = app_probe.scratch_data_dir(tmp_path / "data")  # the models and sources, no corpus
        process, base = app_probe.start_app(env={"EXBERT_DATA_DIR": str(data)},
                                            log_path=ARTIFACTS / "e2e-first-build.log")
    try:
        app_probe.wait_healthy(process, base, timeout=90)
        page = new_page(browser, PHONE)
        page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 8})
        page.goto(base)
        states = []
        for _ in range(900):
            state = page.evaluate(TOP_BAR_STATE)
            states.append(state)
            if state and state["copy"] == "Copy link":
                break
            page.wait_for_timeout(100)
        page.context.close()
    finally:
        app_probe.stop_app(process)  # the build's process ends with the server's
    assert states[-1] and states[-1]["copy"] == "Copy link", states[-5:]
    empty = [s for s in states if s and s["empty"]]
    assert all(not s["styled"] for s in empty), "an empty box is visible under the app's rules"
    assert len(empty) <= 10, f"empty boxes in {len(empty)} of {len(states)} samples of 100 ms"


def test_two_clicks_on_the_head_maps_choose_two_heads_in_one_rerun(server, page):
    """From all heads, clicking the maps of heads 0 and 3 shows 2-[0,3] after one rerun (one new
    history entry), and the browser's Back returns to all heads."""
    _, base = server
    page.goto(f"{base}/?token=9&layer=2&heads=all")
    maps = page.locator(".st-key-head_maps_box button.head")
    expect(maps).to_have_count(12)
    expect(page.get_by_text("layer-[heads] 2-[all]", exact=False)).to_be_visible()
    # The link's canonical URL is written first (on a slow machine after the maps are drawn).
    page.wait_for_function("new URLSearchParams(location.search).has('corpus_build')")
    settle(page)
    entries = page.evaluate("history.length")
    maps.nth(0).click()
    maps.nth(3).click()
    wait_for_query(page, "heads", "0,3")
    expect(page.get_by_text("layer-[heads] 2-[0,3]", exact=False)).to_be_visible()
    assert page.evaluate("history.length") - entries == 1
    assert maps.evaluate_all("bs => bs.flatMap((b, i) => b.getAttribute('aria-pressed') === 'true' ? [i] : [])") == [0, 3]
    maps.nth(3).click()  # a selected head: removed
    wait_for_query(page, "heads", "0")
    page.go_back()
    wait_for_query(page, "heads", "0,3")
    page.go_back()
    wait_for_query(page, "heads", "all")
    expect(page.get_by_text("layer-[heads] 2-[all]", exact=False)).to_be_visible()


class SlowServer:
    """The page's connection to the app, with the server's messages held back on demand: what
    the browser sees of a run that takes its time (on a busy machine, seconds). Everything the
    page sends reaches the server at once."""

    def __init__(self, page: Page) -> None:
        self.held: list[bytes | str] = []
        self.holding = False
        self.socket: Any = None
        page.route_web_socket(re.compile(r"/_stcore/stream$"), self._connect)

    def _connect(self, socket) -> None:
        server = socket.connect_to_server()
        self.socket = socket
        server.on_message(lambda message: self.held.append(message) if self.holding else socket.send(message))

    def hold(self) -> None:
        self.holding = True

    def release(self, count: int | None = None) -> None:
        """Pass on the first ``count`` held messages and hold the rest, or (by default) all of
        them and stop holding."""
        if count is None:
            self.holding = False
            count = len(self.held)
        for message in self.held[:count]:
            self.socket.send(message)
        del self.held[:count]

    def run_finished(self) -> bool:
        """Whether the server has finished a run whose messages are held."""
        return any(isinstance(m, bytes) and ForwardMsg.FromString(m).WhichOneof("type") == "script_finished"
                   for m in self.held)


def pressed(maps) -> list[int]:
    return maps.evaluate_all("bs => bs.flatMap((b, i) => b.getAttribute('aria-pressed') === 'true' ? [i] : [])")


def test_a_head_map_click_during_a_rerun_is_kept(server, page):
    """A click on a head's map while a run that started before it is on its way (here the layer
    change's, held back) stays when that run redraws the maps, and the next click adds to it:
    layer 3, heads 0 and 3. It was lost: the redraw reset the selection to the run's (all
    heads), and the next click then chose head 3 alone (CI, the paper workflow at 390x844)."""
    _, base = server
    slow = SlowServer(page)
    page.goto(f"{base}/?token=9&layer=2&heads=all")
    maps = page.locator(".st-key-head_maps_box button.head")
    expect(maps).to_have_count(12)
    page.wait_for_function("new URLSearchParams(location.search).has('corpus_build')")
    settle(page)
    layer_2 = maps.first.locator("img").get_attribute("src")
    slow.hold()
    layer = page.locator(".st-key-sb_layer").get_by_role("slider")
    layer.focus()
    layer.press("ArrowRight")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not slow.run_finished():  # the layer's run is done; the browser has not seen it yet
        assert time.monotonic() < deadline, "the layer's run did not finish"
        page.wait_for_timeout(100)
    maps.nth(0).click()  # on layer 2's maps: only head 0
    assert pressed(maps) == [0]
    slow.release()
    expect(maps.first.locator("img")).not_to_have_attribute("src", layer_2)  # layer 3's maps
    assert pressed(maps) == [0], "the redraw undid the click"
    maps.nth(3).click()
    wait_for_query(page, "heads", "0,3")
    assert query_of(page)["layer"] == "3"
    expect(page.get_by_text("layer-[heads] 3-[0,3]", exact=False)).to_be_visible()
    assert pressed(maps) == [0, 3]


def test_a_click_before_the_first_view_is_written_stays_in_the_url(server, page):
    """A first visit's canonical URL is written by the browser once that code has loaded; a
    reader's click before then (here Reset, while the rest of the page is held back) changes
    the view, and the address keeps the new view (it was put back to the link's first view)."""
    _, base = server
    slow = SlowServer(page)
    slow.hold()
    page.goto(f"{base}/?token=9&layer=4")
    reset = page.get_by_role("button", name="Reset to defaults")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not reset.is_visible():  # the top of the page, drawn first: let it through, one message at a time
        assert time.monotonic() < deadline, "the top bar was not drawn"
        if slow.held:
            slow.release(1)
        page.wait_for_timeout(50)
    reset.click()
    slow.release()
    wait_for_query(page, "layer", "2")
    expect(page.get_by_text("layer-[heads] 2-[all]", exact=False)).to_be_visible()
    time.sleep(6)  # past the 5 s in which the first view's address is kept
    assert query_of(page)["layer"] == "2", query_of(page)


def test_on_a_phone_every_token_shows_and_the_matches_stack(server, browser):
    """390x844: every token pill is on screen (no hidden scroll), and each match is a card that
    fits the screen."""
    _, base = server
    page = new_page(browser, PHONE)
    page.goto(f"{base}/?sentence={quote(PAPER)}&token=9")
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    expect(pills(page)).to_have_count(15)  # seen once missing right after the matches drew: wait for them
    boxes = pills(page).evaluate_all("bs => bs.map(b => b.getBoundingClientRect().toJSON())")
    assert len(boxes) == 15
    assert all(0 <= b["left"] and b["right"] <= PHONE["width"] for b in boxes), boxes
    table = page.locator(".st-key-matches .exbert-matches")
    assert table.locator("thead").evaluate("t => getComputedStyle(t).display") == "none"
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1")
    rows = table.locator("tbody tr").evaluate_all("rs => rs.slice(0, 10).map(r => r.getBoundingClientRect().toJSON())")
    assert all(r["right"] <= PHONE["width"] and r["height"] < 420 for r in rows), rows
    table.locator("tbody tr").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "e2e-phone-matches.png"))
    page.context.close()


def test_the_link_holds_the_whole_view(server, browser):
    """The results tab, the histogram and the context width are in the URL; Back returns to the
    previous view; Copy link copies the view's link; Reset returns to the defaults."""
    _, base = server
    page = new_page(browser, DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    page.goto(f"{base}/?token=9")
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    # The link's canonical URL is written first; a click during that run was lost once.
    page.wait_for_function("new URLSearchParams(location.search).has('corpus_build')")
    settle(page)
    page.get_by_role("tab", name="Summary").click()
    wait_for_query(page, "tab", "summary")
    page.get_by_role("tab", name="Grammatical role").click()
    wait_for_query(page, "hist", "dep")
    expect(page.get_by_text("Grammatical role of the 50 matched tokens")).to_be_visible()
    settle(page)  # Back once that run has finished (a Back during it raced the tab's redraw once)
    page.go_back()
    wait_for_query(page, "hist", "pos")
    expect(page.get_by_text("Part of speech of the 50 matched tokens")).to_be_visible()
    page.get_by_role("tab", name=re.compile(r"Matches")).click()
    wait_for_query(page, "tab", "matches")
    slider = page.locator(".st-key-ctx_width").get_by_role("slider")
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    wait_for_query(page, "context", "3")
    expect(page.locator(".st-key-matches .exbert-matches th", has_text="+3")).to_have_count(1)

    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Link copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.evaluate("location.href") and "context=3" in copied and "tab=matches" in copied
    again = new_page(browser, DESKTOP)
    again.goto(copied.replace("tab=matches", "tab=summary").replace("hist=pos", "hist=ner"))
    expect(again.get_by_text("Named entity of the 50 matched tokens")).to_be_visible()
    expect(again.get_by_role("tab", name="Named entity")).to_have_attribute("aria-selected", "true")
    again.context.close()

    page.get_by_role("button", name="Reset to defaults").click()
    wait_for_query(page, "context", "1")
    assert query_of(page)["tab"] == "matches" and query_of(page)["layer"] == "2"
    page.context.close()


def test_a_link_cannot_make_the_reader_s_browser_fetch_or_follow(server, page):
    """Issue 13, 3: an image or a link inside a link's value is shown as text: no image is
    fetched, no link is drawn in the app's warning."""
    _, base = server
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    values = {"corpus": "![i](http://host.invalid/px.png?c=1)", "layer": "[login](http://host.invalid/login)",
              "model": "http://host.invalid/x", "by": "www.host.invalid :material/warning:"}
    page.goto(f"{base}/?" + "&".join(f"{key}={quote(value)}" for key, value in values.items()))
    warning = page.locator("[data-testid='stAlert']", has_text="This link had problems")
    expect(warning).to_contain_text("looks like a file path")
    shown = warning.inner_text().replace("\u2060", "")
    for value in values.values():
        assert value in shown
    assert warning.locator("img, a, [role=img]").count() == 0
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    assert not [url for url in requests if urlsplit(url).hostname == "host.invalid"]


def test_quotes_in_a_sentence_stay_quotes_in_the_charts(server, page):
    """Issue 13, 9: a '"' token reads '"' in the chart, not '&quot;'."""
    _, base = server
    sentence = 'She said “no” and then "run" to him.'
    page.goto(f"{base}/?sentence={quote(sentence)}")
    page.wait_for_selector(app_probe.ATTENTION_CHART)
    labels = chart_tokens(page)
    assert '"' in labels and not [label for label in labels if "&" in label], labels


PAGES = [  # name, path and query, what shows when the page is drawn
    ("attention", "/?token=9", ".st-key-matches .exbert-matches tbody tr"),
    ("attention-summary", "/?token=9&tab=summary", ".st-key-summary g.trace.bars"),
    ("model-view", "/model_view?token=9", ".st-key-model_view .main-svg"),
    ("layer-sweep", "/layers?token=9", ".st-key-sweep_chart .main-svg"),
    ("head-atlas", "/head_atlas?sample=100", ".st-key-atlas_heatmap .main-svg"),
    ("compare", "/compare?token=9", ".st-key-compare_b .main-svg"),
    ("compare-models", "/compare?token=9&compare=models", ".st-key-compare_b .main-svg"),
    ("corpora", "/corpora", ".st-key-corpora_list"),
]


def settle(page: Page) -> None:
    """Wait until the app has finished its run (Streamlit's running indicator, which shows after a
    short delay, is gone)."""
    time.sleep(0.8)
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    time.sleep(0.5)


def shoot(page: Page, name: str, viewport: dict) -> None:
    """The screen, and the whole page (the viewport stretched to the page's height)."""
    size = f"{viewport['width']}x{viewport['height']}"
    screen = ARTIFACTS / f"page-{name}-{size}.png"
    page.screenshot(path=str(screen))
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": min(int(height), 12000)})
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}-{size}-full.png"))
    page.set_viewport_size(viewport)


# What a reader meets on a page (issue 19, 6-11): returns what is wrong, empty lists when nothing is.
LAYOUT_JS = """(phone) => {
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.right <= 0 || r.left >= innerWidth) return false;  // off screen
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) return false;
    }
    return true;
  };
  const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const out = {overflow: document.documentElement.scrollWidth - innerWidth, covered: [], cut: [], crowded: [],
               small: [], hover: []};
  document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
    const bar = plot.querySelector('.modebar'), box = plot.getBoundingClientRect();
    plot.querySelectorAll('.gtitle').forEach((title) => {
      const t = title.getBoundingClientRect();
      if (bar && overlap(t, bar.getBoundingClientRect())) out.covered.push(title.textContent);
      if (t.left < box.left - 1 || t.right > box.right + 1) out.cut.push(title.textContent);
      const area = plot.querySelector('.draglayer .nsewdrag');  // the plotting area
      if (area && t.bottom > area.getBoundingClientRect().top + 1) out.crowded.push(title.textContent);
    });
  });
  if (phone) {
    document.querySelectorAll('button, a[href], [role=tab], [role=button]').forEach((el) => {
      const r = el.getBoundingClientRect();
      if (r.width <= 1 && r.height <= 1) return;  // for screen readers only (Skip to main content)
      if (shown(el) && (r.width < 32 || r.height < 32))
        out.small.push(`${el.tagName} "${(el.getAttribute('aria-label') || el.textContent).trim().slice(0, 30)}" ` +
                       `${Math.round(r.width)}x${Math.round(r.height)}`);
    });
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n; (n = walker.nextNode());)
      if (/\\bhover/i.test(n.textContent) && shown(n.parentElement)) out.hover.push(n.textContent.trim().slice(0, 80));
  }
  return out;
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_every_page_at_desktop_and_phone_sizes(server, browser, viewport):
    """Every page draws without an error, asks no host but the app's server (no font, icon or
    script from a third party: the app works offline and tells nobody who reads it); nothing is
    wider than the screen, no chart title is under its toolbar or cut at its sides; on a phone
    every button and link is at least 32 px a side and no text asks to hover. The screenshots are
    for people to look at (test-artifacts/page-*.png)."""
    _, base = server
    page = new_page(browser, viewport)
    foreign: list[str] = []
    page.context.on("request", lambda request: foreign.append(request.url) if off_server(request.url, base) else None)
    page.context.on("websocket", lambda socket: foreign.append(socket.url) if off_server(socket.url, base) else None)
    for name, path, ready in PAGES:
        page.goto(base + path)
        page.wait_for_selector(ready)
        settle(page)
        assert page.locator("[data-testid='stException']").count() == 0, name
        assert not page.get_by_text("Unexpected error").count(), name
        main = page.locator("[data-testid='stMain']")
        overflow = main.evaluate("m => m.scrollWidth - m.clientWidth")
        assert overflow <= 1, f"{name} is {overflow} px wider than the screen"
        layout = page.evaluate(LAYOUT_JS, viewport == PHONE)
        assert layout["overflow"] <= 0, f"{name}: the document is {layout['overflow']} px wider than the screen"
        assert not layout["covered"], f"{name}: chart titles under the toolbar: {layout['covered']}"
        assert not layout["cut"], f"{name}: chart titles cut at the sides: {layout['cut']}"
        assert not layout["crowded"], f"{name}: chart titles over the plotting area: {layout['crowded']}"
        assert not layout["small"], f"{name}: tap targets under 32 px: {layout['small']}"
        assert not layout["hover"], f"{name}: text asks a phone reader to hover: {layout['hover']}"
        shoot(page, name, viewport)
        if name == "attention" and viewport == DESKTOP:  # the README's picture: tokens, curves, heads
            page.locator(".st-key-token_pick_row").evaluate(  # below Streamlit's top bar
                "row => { row.scrollIntoView(); document.querySelector('[data-testid=stMain]').scrollBy(0, -110); }")
            time.sleep(0.5)
            page.screenshot(path=str(ARTIFACTS / "screenshot.png"))
            if os.environ.get("EXBERT_UPDATE_SCREENSHOT"):
                shutil.copyfile(ARTIFACTS / "screenshot.png", app_support.ROOT / "docs" / "screenshot.png")
        assert page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href").startswith(base), name
        assert not foreign, f"{name} asked other hosts: {sorted(set(foreign))}"
    page.context.close()


def off_server(url: str, base: str) -> bool:
    """Whether ``url`` asks a host other than the app's server (``data:`` and ``blob:`` URLs ask none)."""
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob") and parts.netloc != urlsplit(base).netloc


def sidebar_open(page: Page, viewport: dict) -> None:
    """On a phone the sidebar is folded away: open it."""
    if viewport == PHONE:
        page.get_by_test_id("stExpandSidebarButton").click()
        expect(page.get_by_test_id("stSidebarCollapseButton")).to_be_visible()


def sidebar_close(page: Page, viewport: dict) -> None:
    if viewport == PHONE:
        page.get_by_test_id("stSidebarCollapseButton").click()
        expect(page.get_by_test_id("stExpandSidebarButton")).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_paper_workflow_as_a_newcomer(server, browser, viewport):
    """Sentence, token, mask, layer, heads, matches, histograms, share link, by clicks and keys
    only, at a laptop's and a phone's size; a screenshot after each step
    (test-artifacts/workflow-<size>-<step>.png)."""
    _, base = server
    size = f"{viewport['width']}x{viewport['height']}"
    page = new_page(browser, viewport, permissions=["clipboard-read", "clipboard-write"])
    step = iter(range(1, 20))

    def shot(name: str) -> None:
        settle(page)
        page.screenshot(path=str(ARTIFACTS / f"workflow-{size}-{next(step)}-{name}.png"))

    page.goto(base)
    expect(page.locator(".st-key-matches .exbert-matches tbody tr")).to_have_count(50)
    shot("start")
    sidebar_open(page, viewport)
    box = page.locator(".st-key-sb_sentence textarea")
    box.fill(SENTENCE)
    box.press("Control+Enter")
    wait_for_query(page, "sentence", SENTENCE)
    sidebar_close(page, viewport)
    pills(page).filter(has_text="house").click()
    wait_for_query(page, "token", "6")
    expect(page.get_by_text("Corpus tokens like “house” by token embedding at layer 2")).to_be_visible()
    shot("token")
    page.get_by_role("button", name="Mask “house”").click()
    wait_for_query(page, "masks", "6")
    expect(page.get_by_text("hides “house”", exact=False)).to_be_visible()  # the caveat is about this token
    shot("mask")
    sidebar_open(page, viewport)
    layer = page.locator(".st-key-sb_layer").get_by_role("slider")
    layer.focus()
    layer.press("ArrowRight")
    wait_for_query(page, "layer", "3")
    sidebar_close(page, viewport)
    maps = page.locator(".st-key-head_maps_box button.head")
    maps.nth(0).click()
    maps.nth(3).click()
    wait_for_query(page, "heads", "0,3")
    # a token embedding does not depend on the heads: the heading stays, the view's label changes
    expect(page.get_by_text("layer-[heads] 3-[0,3]", exact=False)).to_be_visible()
    expect(page.get_by_text("Corpus tokens like “[MASK]” by token embedding at layer 3")).to_be_visible()
    settle(page)
    maps.nth(0).scroll_into_view_if_needed()
    shot("heads")
    rows = page.locator(".st-key-matches .exbert-matches tbody tr")
    expect(rows).to_have_count(50)
    rows.first.scroll_into_view_if_needed()
    shot("matches")
    page.get_by_role("tab", name="Summary").click()
    wait_for_query(page, "tab", "summary")
    summary = page.locator(".st-key-summary")
    expect(summary.get_by_text("Part of speech of the 50 matched tokens")).to_be_visible()
    expect(summary.get_by_text("Part of speech of the tokens they attend to most")).to_be_visible()
    assert summary.locator("g.trace.bars path").count() > 2
    summary.scroll_into_view_if_needed()
    shot("summary")
    page.get_by_role("button", name="Copy link").click()
    link = page.evaluate("navigator.clipboard.readText()")
    query = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
    assert {k: query[k] for k in ("sentence", "token", "masks", "layer", "heads", "tab")} == {
        "sentence": SENTENCE, "token": "6", "masks": "6", "layer": "3", "heads": "0,3", "tab": "summary"}
    shot("copied")
    page.context.close()


def test_the_corpora_page_s_default_build_is_accepted(server, browser):
    """The build form's defaults start a build (issue 19, 13): a text not built with this model,
    under a free name, with no refusal and no server setting named to the visitor. Last in this
    module: the build runs on until the test server stops."""
    _, base = server
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/corpora")
    go = page.locator(".st-key-build_source_go button")
    expect(go).to_be_enabled()
    go.click()
    expect(page.locator(".st-key-job_banner")).to_be_visible()
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert "EXBERT_" not in page.locator("[data-testid='stMain']").inner_text()
    page.context.close()
