"""Every page under streamlit's AppTest: real model, real spaCy, real corpus and FAISS.

No page may raise or show the app's last-resort "Unexpected error"; widgets are found by key;
a link's query parameters restore the view; bad parameters give warnings and defaults.
"""

from __future__ import annotations

import html
import json
import re

import app_support
import pytest
from conftest import PAPER_SENTENCE
from streamlit.testing.v1 import AppTest

from exbert_core.corpus.build import jobs, policy
from exbert_core.corpus.search import catalog

FIRST_RUN_TIMEOUT = 900  # the first run builds the default corpus in the background
TIMEOUT = 180
SIDEBAR_KEYS = {
    "selectbox": ["sb_model", "sb_corpus"],
    "text_area": ["sb_sentence"],
    "select_slider": ["sb_layer"],
    "pills": ["sb_heads"],
    "multiselect": ["sb_masks"],
    "slider": ["sb_threshold"],
    "toggle": ["sb_hide_special"],
    "segmented_control": ["sb_by", "sb_aggregate"],
    "radio": ["sb_measure"],
    "number_input": ["sb_k"],
}


@pytest.fixture(scope="module", autouse=True)
def app_env():
    with app_support.app_environment():
        yield


def new_app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(app_support.APP), default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    return at


def assert_clean(at: AppTest) -> None:
    """No exception reached the page, not even through the app's last-resort handler."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Unexpected error" in e.value]


def chart(at: AppTest, key: str) -> dict:
    """The Plotly figure (as sent to the browser) of the chart with ``key``."""
    (element,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    return json.loads(element.proto.spec)


def matches_table(at: AppTest) -> str:
    (table,) = [h.proto.body for h in at.html if "exbert-matches" in h.proto.body]
    return table


def n_rows(table: str) -> int:
    return table.count("<tr>") - 1  # minus the header


@pytest.fixture(scope="module")
def first_run():
    """The app as a new user opens it: no link, and (in a fresh data dir) no corpus yet."""
    fresh = not (app_support.alice_dir() / "manifest.json").is_file()
    at = new_app().run(timeout=FIRST_RUN_TIMEOUT)
    if fresh:  # the build runs in the background (test_app_ops.py); its end reruns the page
        jobs.wait("alice", FIRST_RUN_TIMEOUT)
        at.run()
    return at, fresh


def test_first_run_shows_the_paper_example_and_builds_the_default_corpus(first_run):
    at, fresh = first_run
    assert_clean(at)
    if fresh:  # the default corpus was built on first use (progress: see test_app_ops.py)
        assert any("building the reference corpus 'alice'" in m.value.replace("\\", "") and "done in" in m.value
                   for m in at.success)
    assert (app_support.alice_dir() / "manifest.json").is_file()
    assert not at.error and not at.warning
    assert at.text_area(key="sb_sentence").value == PAPER_SENTENCE
    assert at.pills(key="token_pick").value == 9  # "escape"
    assert any("2-[all]" in c.value for c in at.caption)
    assert "curves" in at.get("plotly_chart")[0].proto.id
    assert n_rows(matches_table(at)) == 50
    assert any("Corpus tokens like “escape” by token embedding at layer 2" in m.value for m in at.markdown)
    # MiniLM has no LM head: a line says so and names the offline model that has one.
    assert any("no language-model head" in c.value and "smollm2" in c.value for c in at.caption)


def test_first_run_writes_the_whole_view_into_the_url(first_run):
    at, _ = first_run
    assert at.query_params == {
        "model": "minilm", "corpus": "alice", "corpus_build": catalog.entry_of("alice").build_id,
        "sentence": PAPER_SENTENCE, "layer": "2", "heads": "all",
        "masks": "", "token": "9", "threshold": "90", "hide_special": "0", "measure": "norm", "aggregate": "layer",
        "by": "embedding", "k": "50", "view": "auto", "context": "1", "tab": "matches", "hist": "pos", "image": "png",
    }
    # One "Copy link" at the top copies the address (test_e2e_browser reads the clipboard).
    assert [c.proto.component_name for c in at.get("bidi_component")].count("exbert_copy_link") == 1


def _takes_most_from(at: AppTest) -> str:
    (line,) = [c.value for c in at.caption if c.value.startswith("Takes most from")]
    return line


def test_the_measure_changes_every_attention_number(first_run):
    """The paper's raw "[CLS] 63 %" is one click away; the default measure (attention x value)
    moves the weight off [CLS]; the chart's caption names what its numbers are."""
    raw = new_app({"measure": "raw"}).run()
    assert_clean(raw)
    assert "(raw attention): \\[CLS\\] 63%" in _takes_most_from(raw)
    assert any("Numbers: **raw attention**, for layer 2 as a whole." in c.value for c in raw.caption)
    norm = new_app().run()
    line = _takes_most_from(norm)
    assert line.startswith("Takes most from (attention × value): escape") and "[CLS]" not in line
    rolled = new_app({"measure": "contrib", "aggregate": "rollout", "heads": "0,3"}).run()
    assert_clean(rolled)
    assert any("rolled out over layers 1 to 2" in c.value and "the head selection does not apply" in c.value
               for c in rolled.caption)
    assert rolled.query_params["measure"] == "contrib" and rolled.query_params["aggregate"] == "rollout"


def test_every_control_is_found_by_key(first_run):
    at, _ = first_run
    for kind, keys in SIDEBAR_KEYS.items():
        found = {w.key for w in getattr(at.sidebar, kind)}
        assert set(keys) <= found, (kind, found)
    assert {"sb_heads_all", "sb_heads_none"} <= {b.key for b in at.sidebar.button}
    assert at.button(key="toggle_mask").label == "Mask “escape”"
    assert {"download_csv", "download_json"} <= {b.key for b in at.download_button}


@pytest.fixture(scope="module")
def linked():
    query = {"sentence": "The cat sat on the warm mat.", "layer": "4", "heads": "1,3", "token": "2",
             "masks": "5", "by": "heads", "k": "10", "threshold": "50", "hide_special": "1"}
    return query, new_app(query).run()


def test_a_link_restores_every_control(linked):
    query, at = linked
    assert_clean(at)
    assert not at.warning or all("trained to fill in masked" in w.value for w in at.warning)
    assert at.text_area(key="sb_sentence").value == query["sentence"]
    assert at.select_slider(key="sb_layer").value == 4
    assert at.pills(key="sb_heads").value == [1, 3]
    assert at.multiselect(key="sb_masks").value == [5]
    assert at.pills(key="token_pick").value == 2
    assert at.segmented_control(key="sb_by").value == "heads"
    assert at.number_input(key="sb_k").value == 10
    assert at.slider(key="sb_threshold").value == 50
    assert at.toggle(key="sb_hide_special").value is True
    assert any("4-[1,3]" in c.value for c in at.caption)
    # The URL keeps the link (now with every control spelled out).
    assert {k: at.query_params[k] for k in query} == query


def test_a_link_restores_the_views(linked):
    _, at = linked
    # Special tokens hidden: the curves show the 8 word tokens; the selected one is "cat".
    curves = chart(at, "curves_0")
    left = curves["data"][-2]
    assert left["customdata"] == [1, 2, 3, 4, 5, 6, 7, 8] and "<b>cat</b>" in left["text"]
    assert left["text"][4] == "[MASK]"  # position 5 ("the") is masked
    assert n_rows(matches_table(at)) == 10
    # Masking on MiniLM is allowed but flagged.
    assert any("not trained to fill in masked tokens" in w.value for w in at.warning)


def test_bad_link_parameters_warn_and_fall_back(first_run):
    at = new_app({"layer": "99", "heads": "x", "k": "0", "token": "-1", "by": "magic", "threshold": "500",
                  "corpus": "../etc", "model": "/etc/passwd", "hide_special": "maybe", "masks": "a,b"}).run()
    assert_clean(at)
    (warning,) = [w.value for w in at.warning if "This link had problems" in w.value]
    for fragment in ("Layer 99 does not exist", "heads 'x'", "k '0'", "token '-1'", "search kind 'magic'", "threshold '500'",
                     "corpus '../etc'", "looks like a file path", "hide_special 'maybe'", "masks 'a,b'"):
        assert fragment in warning
    assert at.select_slider(key="sb_layer").value == 2
    assert at.number_input(key="sb_k").value == 50
    assert at.query_params["model"] == "minilm" and at.query_params["corpus"] == "alice"
    assert n_rows(matches_table(at)) == 50  # the view works with the defaults
    # The warning stays while the view is the link's, and goes once the reader changes something.
    at.run()
    assert any("This link had problems" in w.value for w in at.warning)
    at.select_slider(key="sb_layer").set_value(3).run()
    assert not any("This link had problems" in w.value for w in at.warning)


def test_values_that_depend_on_the_model_and_sentence_are_checked(first_run):
    at = new_app({"layer": "7", "heads": "2,40", "masks": "0,9", "token": "16"}).run()
    assert_clean(at)
    (warning,) = [w.value for w in at.warning if "This link had problems" in w.value]
    assert "Layer 7 does not exist in minilm (layers 1-6)" in warning
    assert "head 40 ignored" in warning and "Mask position 0 is not a word token" in warning
    assert "Token position 16" in warning
    assert at.pills(key="sb_heads").value == [2] and at.multiselect(key="sb_masks").value == [9]


def test_unknown_model_says_what_to_do_and_offers_the_default(first_run):
    at = new_app({"model": "no-such-org/no-such-model"}).run()
    assert_clean(at)
    (error,) = [e.value for e in at.error]
    assert "Could not load 'no-such-org/no-such-model'" in error and "minilm" in error
    at.button(key="use_default_model").click().run()
    assert_clean(at)
    assert not at.error and at.query_params["model"] == "minilm"
    assert n_rows(matches_table(at)) == 50


def test_an_empty_sentence_is_an_error_not_a_traceback(first_run):
    at = new_app().run()
    at.text_area(key="sb_sentence").input("   ").run()
    assert_clean(at)
    assert any("The sentence is empty" in e.value for e in at.error)
    at.text_area(key="sb_sentence").input("Alice ran to escape the Queen.").run()
    assert_clean(at)
    assert not at.error and at.pills(key="token_pick").value == 4  # "escape" again
    assert at.query_params["sentence"] == "Alice ran to escape the Queen."


def test_controls_update_the_views_and_the_url(first_run):
    at = new_app().run()
    at.pills(key="token_pick").set_value(7).run()  # "pub"
    assert_clean(at)
    assert at.query_params["token"] == "7"
    assert any("Corpus tokens like “pub”" in m.value for m in at.markdown)
    at.select_slider(key="sb_layer").set_value(5).run()
    assert at.query_params["layer"] == "5" and any("5-[all]" in c.value for c in at.caption)
    at.button(key="sb_heads_none").click().run()
    assert at.query_params["heads"] == "none"
    assert any("No head is selected" in i.value for i in at.info)
    at.segmented_control(key="sb_by").set_value("heads").run()
    assert any("needs at least one head" in i.value for i in at.info)
    at.pills(key="sb_heads").set_value([0, 4]).run()
    assert at.query_params["heads"] == "0,4" and n_rows(matches_table(at)) == 50
    at.number_input(key="sb_k").set_value(5).run()
    assert n_rows(matches_table(at)) == 5 and at.query_params["k"] == "5"
    at.toggle(key="sb_hide_special").set_value(True).run()
    assert "[CLS]" not in chart(at, "curves_0")["data"][-2]["text"]
    at.button(key="sb_heads_all").click().run()
    assert at.query_params["heads"] == "all"
    assert_clean(at)


def test_masking_and_unmasking_a_token(first_run):
    at = new_app().run()
    at.button(key="toggle_mask").click().run()
    assert_clean(at)
    assert at.query_params["masks"] == "9" and at.multiselect(key="sb_masks").value == [9]
    assert any("not trained to fill in masked tokens" in w.value for w in at.warning)
    assert at.button(key="toggle_mask").label == "Unmask “escape”"
    at.button(key="toggle_mask").click().run()
    assert at.query_params["masks"] == "" and not at.warning


def test_smollm2_shows_predictions_and_explains_the_corpus_mismatch(first_run):
    at = new_app({"model": "smollm2", "masks": "3"}).run(timeout=600)  # a first use converts it (test_app_ops.py)
    assert_clean(at)
    (warning,) = [w.value for w in at.warning if "This link had problems" in w.value]
    assert "no mask token" in warning
    assert at.multiselect(key="sb_masks").disabled and at.button(key="toggle_mask").disabled
    predictions = chart(at, "predictions")
    assert predictions["layout"]["title"]["text"].startswith("Next token after")
    assert len(predictions["data"][0]["x"]) == 10
    assert any("was built with model 'minilm'" in w.value for w in at.warning)
    assert any(b.label.startswith("Build 'alice-smollm2'") for b in at.button)
    # the model line is written for a person (issue 19, 12)
    assert any("Llama-type model with 30 layers of 9 attention heads. It reads left to right and predicts the "
               "next word." in c.value for c in at.sidebar.caption)


def test_switching_the_model_resets_positions_and_picks_its_corpus(first_run):
    at = new_app({"masks": "9", "token": "7"}).run()
    at.selectbox(key="sb_model").set_value("smollm2").run(timeout=600)
    assert_clean(at)
    params = at.query_params
    assert (params["model"], params["masks"], params["corpus"]) == ("smollm2", "", "alice-smollm2")
    assert at.pills(key="token_pick").value == 8  # "escape" under SmolLM2's tokenizer (no [CLS])
    assert any("Corpus 'alice-smollm2' is not built yet" in i.value for i in at.info)
    assert at.button(key="build_own").label == "Build 'alice-smollm2' now"
    # Said once: the next page keeps one line, the build's cost and the button.
    at.switch_page("app_pages/layers.py").run(timeout=600)
    assert not any("is not built yet" in i.value for i in at.info)
    assert any("corpus 'alice-smollm2' is not built" in c.value for c in at.caption)
    assert any(c.value.startswith("This build: about") for c in at.caption)
    assert at.button(key="build_own").label == "Build 'alice-smollm2' now"
    at.switch_page("app_pages/attention.py").run()
    at.selectbox(key="sb_model").set_value("minilm").run()
    assert at.query_params["corpus"] == "alice" and n_rows(matches_table(at)) == 50


def test_a_missing_corpus_points_to_the_corpora_page(first_run):
    at = new_app({"corpus": "nope"}).run()
    assert_clean(at)
    assert any("Corpus 'nope' is not built" in w.value for w in at.warning)
    assert at.get("page_link")


def test_corpora_page_lists_and_builds_corpora(first_run):
    at = new_app().run()
    at.switch_page("app_pages/corpora.py").run()
    assert_clean(at)
    (table,) = at.dataframe
    assert "alice" in table.value["corpus"].tolist()
    assert any("Manifest of 'alice'" in e.label for e in at.expander)
    # Only model and corpus are drawn in the sidebar here, and the URL keeps the whole view.
    assert {w.key for w in at.sidebar.selectbox} == {"sb_model", "sb_corpus"}
    assert at.query_params["sentence"] == PAPER_SENTENCE

    # A file that is not UTF-8 is refused with a clear message as soon as it is chosen; Build is off.
    at.file_uploader(key="build_upload").set_value(("latin1.txt", "Caf\xe9 au lait.".encode("latin-1"), "text/plain"))
    at.text_input(key="build_file_name").input("bad-bytes").run()
    assert at.button(key="build_file_go").disabled
    assert_clean(at)
    assert any("latin1.txt" in e.value.replace("\\", "") and "UTF-8" in e.value for e in at.error)  # name escaped

    # A bad name is refused before anything is built.
    at.text_input(key="build_source_name").input("no spaces!").run()
    at.button(key="build_source_go").click().run()
    assert any("is not a corpus name" in e.value for e in at.error)

    # A small text builds (in the background, under a name of its own), becomes the selected
    # corpus, and can be searched.
    text = ("Alice ran to escape the Queen. The Queen shouted at the cat. "
            "The cat smiled and vanished slowly. Alice walked to the garden to escape the noise.\n")
    name = policy.upload_name("tiny", text, "minilm")
    at.file_uploader(key="build_upload").set_value(("tiny.txt", text.encode(), "text/plain"))
    at.text_input(key="build_file_name").input("tiny").run()
    if catalog.entry_of(name) is None:  # a reused app test dir keeps it from an earlier run
        at.button(key="build_file_go").click().run(timeout=300)
        assert jobs.wait(name, 300).state == jobs.DONE
        at.run()
        assert any(f"Building corpus '{name}'" in m.value.replace("\\", "") for m in at.success)
    else:
        at.button(key="build_file_go").click().run(timeout=300)
    assert_clean(at)
    assert catalog.entry_of(name) is not None
    assert at.query_params["corpus"] == name
    at.switch_page("app_pages/attention.py").run()
    assert_clean(at)
    table_html = matches_table(at)
    assert 0 < n_rows(table_html) <= 50  # the tiny corpus has fewer tokens than k
    assert re.search(r"escape", table_html)


def test_the_corpora_page_s_default_build_is_accepted(first_run, monkeypatch):
    """The build form's defaults are a build the server accepts (issue 19, 13): a text not built
    with this model yet, under a free name; pressing Build starts it, with no message naming a
    server setting. (The build itself is recorded, not run: building corpora is tested above.)"""
    from app_pages.common import build

    started = []
    monkeypatch.setattr(build, "start", lambda name, model, **kw: started.append((name, model, kw["source"])))
    at = new_app().run()
    at.switch_page("app_pages/corpora.py").run()
    assert_clean(at)
    taken = {e.name for e in catalog.entries()}
    source = at.selectbox(key="build_source").value
    assert catalog.default_corpus_name("minilm", source) not in taken  # alice is built: another text
    at.button(key="build_source_go").click().run(timeout=300)
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert len(started) == 1 and started[0][0] not in taken and started[0][1] == "minilm"
    assert not [m for m in (*at.error, *at.warning, *at.caption, *at.info) if "EXBERT_" in m.value]


# --- Issue 13: links are checked before they are used, and shown as text --------------------------


def test_bad_masks_in_a_link_are_checked_before_the_analysis(first_run):
    """Special tokens or positions past the end are never masked: the warning and the view agree."""
    at = new_app({"masks": "0,16"}).run()
    assert_clean(at)
    assert "Mask positions 0, 16 are not a word token" in link_warning(at)
    left = chart(at, "curves_0")["data"][-2]["text"]
    assert left[0] == "[CLS]" and left[-1] == "[SEP]" and "[MASK]" not in left
    at = new_app({"masks": "99"}).run()
    assert_clean(at)
    assert not at.error and "Mask position 99 is not a word token" in link_warning(at)
    assert n_rows(matches_table(at)) == 50  # the whole view, not only the text box


def _rendered(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("strikethrough").enable("table").render(markdown)


def test_a_link_cannot_put_markup_in_the_app_s_messages(first_run):
    """An image or a link in a link's value is shown as its text (the reader's browser fetches nothing)."""
    at = new_app({"corpus": "![i](http://host.example/px.png?c=1)", "layer": "[login](http://host.example/login)",
                  "model": "<img src=http://host.example/x.png>"}).run()
    assert_clean(at)
    warning = link_warning(at)
    rendered = _rendered(warning)
    assert "<img" not in rendered and "<a " not in rendered and "host.example" in rendered
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace("\u2060", "")  # invisible word joiners
    assert "![i](http://host.example/px.png?c=1)" in shown


def test_a_corpus_sentence_typed_as_markdown_is_shown_as_text(first_run):
    sentence = "Click [here](http://host.example) or **now** _please_ :red[x]"
    at = new_app({"sentence": sentence}).run()
    assert_clean(at)
    pills = at.pills(key="token_pick")
    for label in [pills.proto.options[i].content for i in range(len(pills.proto.options))]:
        assert not re.search(r"<(?!/?p>)", _rendered(label)), label
    assert at.pills(key="token_pick").value in range(1, 30)


# --- Issue 11: what the page says --------------------------------------------------------------------


def link_warning(at: AppTest) -> str:
    (warning,) = [w.value for w in at.warning if "This link had problems" in w.value]
    return warning


def test_the_masking_caveat_is_about_the_masked_token(first_run):
    at = new_app({"masks": "7", "token": "7"}).run()
    assert_clean(at)
    (caveat,) = [w.value for w in at.warning if "not trained to fill in masked" in w.value]
    assert "“pub”" in caveat and "escape" not in caveat
    at = new_app({"masks": "7", "token": "9"}).run()
    (caveat,) = [w.value for w in at.warning if "not trained to fill in masked" in w.value]
    assert "“pub” is masked" in caveat and "The selected token “escape” is not masked" in caveat


def test_the_page_explains_itself(first_run):
    at = new_app().run()
    assert_clean(at)
    (how,) = [e for e in at.expander if e.label == "How to read this page"]
    text = " ".join(m.value for m in how.markdown)
    for words in ("layer", "head", "attends to", "Matches", "Summary", "Masking", "2-[0,3] means heads 0 and 3"):
        assert words in text
    assert any(m.value == "The 50 tokens of *Alice's Adventures in Wonderland* that the model represents most like "
                          "“escape” at layer 2." for m in at.markdown)
    assert any("takes from every other token. Numbers: **attention × value**, for layer 2 as a whole." in c.value
               for c in at.caption)
    raw = new_app({"measure": "raw"}).run()
    assert any("averaged over all 12 heads of layer 2 (2-[all])" in c.value for c in raw.caption)


def test_an_over_long_input_is_a_warning_not_an_error(first_run):
    at = new_app({"sentence": " ".join(["Alice ran to the small house."] * 80)}).run()
    assert_clean(at)
    assert not at.error
    assert any("longer than 512 tokens" in w.value for w in at.warning)


def test_matched_and_attended_histograms_share_their_scale(first_run):
    at = new_app({"tab": "summary", "hist": "dep", "context": "3"}).run()
    assert_clean(at)
    matched, attended = chart(at, "hist_matched_dep"), chart(at, "hist_attended_dep")
    assert matched["layout"]["xaxis"]["range"] == attended["layout"]["xaxis"]["range"]
    top = max(max(matched["data"][0]["x"]), max(attended["data"][0]["x"]))
    assert matched["layout"]["xaxis"]["range"][1] == pytest.approx(top * 1.18)
    # The link's tab and histogram are open; the matches tab is not built.
    assert not [h for h in at.html if "exbert-matches" in h.proto.body]
    assert (at.query_params["tab"], at.query_params["hist"], at.query_params["context"]) == ("summary", "dep", "3")


def test_reset_returns_every_control_to_its_default(first_run):
    at = new_app({"layer": "5", "heads": "1", "token": "7", "k": "9", "tab": "summary"}).run()
    at.button(key="reset_view").click().run()
    assert_clean(at)
    params = at.query_params
    assert (params["layer"], params["heads"], params["token"], params["k"], params["tab"]) == ("2", "all", "9", "50",
                                                                                              "matches")
