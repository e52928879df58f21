"""app_state: links parse into a typed state, bad values warn and fall back, states round-trip."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import PAPER_SENTENCE

from exbert_core.app import state as app_state
from exbert_core.app.state import AppState, clean_piece, fit_model, fit_tokens, from_params, to_params
from exbert_core.model.selection import Heads

# The paper sentence under MiniLM: [CLS] + 15 word tokens + [SEP]; "escape" is position 9.
TEXTS = ["[CLS]", "the", "girl", "ran", "to", "a", "local", "pub", "to", "escape", "the", "din", "of",
         "her", "city", ".", "[SEP]"]
SPECIAL = [True] + [False] * 15 + [True]


def test_no_parameters_give_the_defaults():
    state, warnings = from_params({})
    assert state == AppState() and warnings == []
    assert state.model == "minilm" and state.corpus == "alice" and state.sentence == PAPER_SENTENCE
    assert (state.layer, state.heads, state.masks, state.token) == (None, Heads.all(), (), None)
    assert (state.threshold, state.hide_special, state.by, state.k) == (90, False, "embedding", 50)


def test_every_control_round_trips_through_the_url():
    state = AppState(model="smollm2", corpus="alice-smollm2", corpus_build="0badf00d", sentence="A cat, a hat & 50% <b>!",
                     layer=7, heads=Heads.of((0, 3)), masks=(2, 4), token=5, threshold=55, hide_special=True,
                     by="heads", k=80)
    params = to_params(state)
    assert set(params) == set(app_state.PARAMS)
    again, warnings = from_params(params)
    assert again == state and warnings == []


def test_share_url_is_a_link_that_parses_back():
    state, _ = fit_tokens(fit_model(AppState(), layers=6, heads=12, can_mask=True)[0], TEXTS, SPECIAL)
    link = app_state.share_url("http://localhost:8501/?old=1", to_params(state))
    parts = urlsplit(link)
    assert parts.netloc == "localhost:8501" and "old" not in dict(parse_qsl(parts.query))
    assert " " not in link and "%20" in link  # spaces survive chat apps
    again, warnings = from_params(dict(parse_qsl(parts.query, keep_blank_values=True)))
    assert again == state and warnings == []
    assert app_state.share_url(None, {"layer": "2"}) == "?layer=2"


def test_heads_spellings():
    assert from_params({"heads": "all"})[0].heads == Heads.all()
    assert from_params({"heads": "none"})[0].heads == Heads.of(())
    assert from_params({"heads": " 3, 0,3 "})[0].heads == Heads.of((0, 3))
    assert from_params({"heads": "1;2"})[1] and from_params({"heads": "-1"})[1]  # refused with a warning
    assert app_state.format_heads(Heads.all()) == "all" and app_state.format_heads(Heads.of(())) == "none"
    assert app_state.format_heads(Heads.of((0, 4))) == "0,4"


@pytest.mark.parametrize(
    "key, value, field, default, fragment",
    [
        ("layer", "three", "layer", None, "not a layer number"),
        ("layer", "-1", "layer", None, "not a layer number"),
        ("heads", "0,x", "heads", Heads.all(), "showing all heads"),
        ("masks", "9,a", "masks", (), "no token is masked"),
        ("token", "-3", "token", None, "default token"),
        ("threshold", "0", "threshold", 90, "percentage"),
        ("threshold", "101%", "threshold", 90, "percentage"),
        ("hide_special", "maybe", "hide_special", False, "0 or 1"),
        ("by", "magic", "by", "embedding", "'embedding' or"),
        ("k", "0", "k", 50, "from 1 to 500"),
        ("k", "501", "k", 50, "from 1 to 500"),
        ("k", "1e9", "k", 50, "from 1 to 500"),
        ("corpus", "../etc", "corpus", "alice", "not a corpus name"),
        ("sentence", "   ", "sentence", PAPER_SENTENCE, "empty"),
        ("model", "/etc/passwd", "model", "minilm", "file path"),
        ("model", "~/models/bert", "model", "minilm", "file path"),
        ("model", "C:\\models", "model", "minilm", "file path"),
        ("model", "bad name!", "model", "minilm", "not a model id"),
    ],
)
def test_bad_values_warn_and_fall_back(key, value, field, default, fragment):
    state, warnings = from_params({key: value})
    assert getattr(state, field) == default
    assert len(warnings) == 1 and fragment in warnings[0]


def test_valid_spellings_are_accepted():
    state, warnings = from_params({"threshold": "75%", "hide_special": "TRUE", "by": "head",
                                   "model": "sentence-transformers/all-MiniLM-L6-v2", "k": "+7",
                                   "masks": "9 , 3,9", "sentence": "  Many   spaces\there "})
    assert warnings == []
    assert (state.threshold, state.hide_special, state.by, state.model, state.k) == (75, True, "heads", "minilm", 7)
    assert state.masks == (3, 9) and state.sentence == "Many spaces here"
    assert from_params({"model": "bert-base-uncased"})[0].model == "bert-base-uncased"


def test_unknown_parameters_are_ignored_and_repeated_ones_take_the_last_value():
    state, warnings = from_params({"embed": "true", "utm_source": "x", "layer": ["1", "4"]})
    assert warnings == [] and state.layer == 4


def test_long_sentences_are_cut_with_a_warning():
    state, warnings = from_params({"sentence": "word " * (app_state.MAX_SENTENCE_CHARS // 4)})
    assert len(state.sentence) == app_state.MAX_SENTENCE_CHARS and "cut" in warnings[0]


def test_fit_model_fills_defaults_without_warnings():
    state, warnings = fit_model(AppState(), layers=6, heads=12, can_mask=True)
    assert state.layer == 2 and state.heads == Heads.all() and warnings == []
    assert fit_model(AppState(), layers=1, heads=4, can_mask=True)[0].layer == 1


def test_fit_model_clamps_what_the_model_does_not_have():
    state, warnings = fit_model(AppState(layer=40, heads=Heads.of((0, 2, 20)), masks=(3,)),
                                layers=30, heads=9, can_mask=False, model_label="smollm2")
    assert (state.layer, state.heads, state.masks) == (2, Heads.of((0, 2)), ())
    assert len(warnings) == 3
    assert "Layer 40" in warnings[0] and "head 20" in warnings[1] and "no mask token" in warnings[2]


def test_fit_model_normalises_heads():
    assert fit_model(AppState(heads=Heads.of(range(12))), layers=6, heads=12, can_mask=True)[0].heads == Heads.all()
    assert fit_model(AppState(heads=Heads.of(())), layers=6, heads=12, can_mask=True)[0].heads == Heads.of(())
    state, warnings = fit_model(AppState(heads=Heads.of((50, 60))), layers=6, heads=12, can_mask=True)
    assert state.heads == Heads.all() and warnings  # nothing valid left: all heads, with a warning
    assert AppState(heads=Heads.of((1, 2))).selected_heads(12) == (1, 2)
    assert AppState().selected_heads(3) == (0, 1, 2)


def test_fit_tokens_selects_escape_by_default():
    state, warnings = fit_tokens(AppState(), TEXTS, SPECIAL)
    assert state.token == 9 and warnings == []
    # Byte-level tokens: "Ġescape" is escape too; no special tokens at all.
    gpt_texts = ["The", "Ġgirl", "Ġran", "Ġto", "Ġescape"]
    assert app_state.default_token(gpt_texts, [False] * 5) == 4
    assert app_state.default_token(["[CLS]", "hello", "[SEP]"], [True, False, True]) == 1
    assert app_state.default_token(["[CLS]", "[SEP]"], [True, True]) is None


def test_fit_tokens_drops_positions_that_are_not_word_tokens():
    state, warnings = fit_tokens(AppState(masks=(0, 9, 40), token=16), TEXTS, SPECIAL)
    assert state.masks == (9,) and state.token == 9
    assert "Mask positions 0, 40 are not a word token" in warnings[0]
    assert "Token position 16" in warnings[1] and "positions 1-15" in warnings[1]
    kept, none = fit_tokens(AppState(masks=(9,), token=7), TEXTS, SPECIAL)
    assert (kept.masks, kept.token, none) == ((9,), 7, [])


@pytest.mark.parametrize(
    "piece, shown",
    [("Ġescape", "escape"), ("▁es", "es"), ("##ing", "##ing"), ("[CLS]", "[CLS]"), ("Ċ", "\\n"),
     ("Ġ", "␣"), ("", "")],
)
def test_clean_piece(piece, shown):
    assert clean_piece(piece) == shown


def test_page_parameters_round_trip_and_are_written_only_when_asked():
    state = AppState(layer=3, token=2, corpus_build="0badf00d", view="matrix", image="svg", feature="dep", relation="nsubj", sample=250,
                     compare="models", sentence_b="Another sentence.", model_b="bert-base-uncased", layer_b=4,
                     token_b=3)
    assert set(to_params(state)) == set(app_state.PARAMS)  # the base view only
    params = to_params(state, app_state.EXTRA_PARAMS)
    assert set(params) == set(app_state.PARAMS) | set(app_state.EXTRA_PARAMS)
    again, warnings = from_params(params)
    assert again == state and warnings == []
    # Unset second-side values follow the first side: not written, default second model spelled out.
    written = to_params(AppState(), ("model_b", "layer_b", "token_b", "relation"))
    assert written["model_b"] == "smollm2" and "layer_b" not in written and "token_b" not in written
    assert written["relation"] == "" and from_params(written)[0].relation is None
    with pytest.raises(ValueError):
        to_params(state, ("colour",))


@pytest.mark.parametrize(
    "key, value, field, default, fragment",
    [
        ("view", "sideways", "view", "auto", "attention view 'sideways'"),
        ("image", "gif", "image", "png", "'png' or 'svg'"),
        ("feature", "tag", "feature", "pos", "'pos', 'dep' or 'ner'"),
        ("relation", "n subj!", "relation", None, "not a dependency label"),
        ("sample", "123", "sample", app_state.DEFAULT_ATLAS_SAMPLE, "not one of 100, 250"),
        ("compare", "both", "compare", "sentences", "comparison 'both'"),
        ("sentence_b", "  ", "sentence_b", app_state.DEFAULT_SENTENCE_B, "sentence_b is empty"),
        ("model_b", "../secret", "model_b", "minilm", "second model '../secret' looks like a file path"),
        ("layer_b", "x", "layer_b", None, "layer_b 'x'"),
        ("token_b", "-2", "token_b", None, "token_b '-2'"),
    ],
)
def test_bad_page_values_warn_and_fall_back(key, value, field, default, fragment):
    state, warnings = from_params({key: value})
    assert getattr(state, field) == default
    assert len(warnings) == 1 and fragment in warnings[0], warnings


def test_page_value_spellings():
    state, warnings = from_params({"view": "Heatmap", "compare": "model", "feature": "NER", "image": "SVG"})
    assert warnings == [] and (state.view, state.compare, state.feature, state.image) == ("matrix", "models", "ner", "svg")


def test_fit_relation_and_the_second_side():
    relations = ["nsubj", "det", "prep"]
    assert app_state.fit_relation(AppState(relation="det"), relations) == (AppState(relation="det"), [])
    fitted, warnings = app_state.fit_relation(AppState(), relations)
    assert fitted.relation == "nsubj" and warnings == []  # unset: the most frequent, silently
    fitted, warnings = app_state.fit_relation(AppState(relation="xcomp"), relations)
    assert fitted.relation == "nsubj" and "'xcomp' was not seen often enough" in warnings[0]
    ok = AppState(layer_b=30, token_b=9)
    assert app_state.fit_side_b(ok, layers=30, texts=TEXTS, special=SPECIAL) == (ok, [])
    fitted, warnings = app_state.fit_side_b(AppState(layer_b=31, token_b=16), layers=30, texts=TEXTS,
                                            special=SPECIAL, model_label="smollm2")
    assert (fitted.layer_b, fitted.token_b) == (None, None)
    assert "Layer 31 does not exist in smollm2" in warnings[0] and "positions 1-15" in warnings[1]
    assert app_state.other_model("minilm") == "smollm2" and app_state.other_model("gpt2") == "minilm"


def test_head_to_dependent_relation_survives_a_link():
    from exbert_core.app import state as app_state

    state, warnings = app_state.from_params({"relation": "det (head->dep)"})
    assert state.relation == "det (head->dep)" and not warnings


# --- The table: every field is a URL parameter; pages' parameters come from it --------------------


def test_the_table_declares_every_field_and_each_page_s_parameters():
    from dataclasses import fields

    assert [f.name for f in fields(AppState)] == list(app_state.TABLE)
    assert set(app_state.PARAMS) | set(app_state.EXTRA_PARAMS) == set(app_state.TABLE)
    assert app_state.page_params("attention") == ("view", "context", "tab", "hist", "image")
    assert app_state.page_params("compare") == ("image", "feature", "compare", "sentence_b", "model_b", "layer_b",
                                                "token_b")
    assert app_state.page_params("corpora") == ()
    with pytest.raises(ValueError):
        app_state.page_params("nowhere")


def test_the_attention_page_s_view_travels_in_the_link():
    state = AppState(context=4, tab="summary", hist="offset")
    params = to_params(state, app_state.page_params("attention"))
    assert (params["context"], params["tab"], params["hist"]) == ("4", "summary", "offset")
    assert from_params(params) == (state, [])


@pytest.mark.parametrize(
    "key, value, default, fragment",
    [
        ("context", "99", 1, "context width '99' is not a number from 1 to 10"),
        ("tab", "graphs", "matches", "results tab 'graphs' is not 'matches' or 'summary'"),
        ("hist", "colour", "pos", "histogram 'colour' is not 'pos', 'dep', 'ner' or 'offset'"),
    ],
)
def test_bad_view_parameters_warn(key, value, default, fragment):
    state, warnings = from_params({key: value})
    assert getattr(state, key) == default and len(warnings) == 1 and fragment in warnings[0]


def test_masks_and_token_are_checked_against_the_tokens_in_one_step():
    facts = app_state.TokenFacts(tuple(TEXTS), tuple(SPECIAL))
    state, warnings = app_state.fit(AppState(masks=(0, 16), token=None), facts)
    assert state.masks == () and state.token == 9
    assert warnings == ["Mask positions 0, 16 are not a word token of this sentence (positions 1-15); they were "
                        "ignored."]


def test_an_over_long_sentence_is_cut_with_a_warning_not_refused():
    state, warnings = from_params({"sentence": "a " * app_state.MAX_SENTENCE_CHARS})
    assert len(state.sentence) == app_state.MAX_SENTENCE_CHARS
    assert warnings == [f"The link's sentence is longer than {app_state.MAX_SENTENCE_CHARS} characters; it was cut."]


# --- Text shown to readers -------------------------------------------------------------------------

HOSTILE = [
    "![i](http://host/px.png?c=1)", "[login](http://host/login)", "<img src=x onerror=alert(1)>",
    "http://host/login", "www.host.example", "mail@host.example", "<http://host>", "**bold** _it_ `code`",
    ":red[alert] :material/warning:", "$x^2$", "# heading", "a | b", "~~gone~~", "&lt;b&gt;", "line\n# two",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_text_renders_as_the_literal_text(value):
    """Rendered by a CommonMark parser, an escaped value is one paragraph of plain text: no link, image,
    HTML, code or emphasis, and the reader sees the value (line breaks as spaces)."""
    from markdown_it import MarkdownIt

    from exbert_core.views.labels import markdown_text

    rendered = MarkdownIt("commonmark").enable("strikethrough").enable("table").render(
        f"The link's corpus '{markdown_text(value)}' is not a corpus name.")
    assert rendered.count("<p>") == 1 and not re.search(r"<(?!/?p>)", rendered), rendered
    shown = html.unescape(rendered.removeprefix("<p>").removesuffix("</p>\n")).replace("\u2060", "")
    assert shown == f"The link's corpus '{' '.join(value.splitlines())}' is not a corpus name."


def test_markdown_text_breaks_streamlit_s_own_syntax_and_gfm_autolinks():
    from exbert_core.views.labels import markdown_text

    joiner = "\u2060"  # invisible
    assert markdown_text(":red[x]") == f"\\:{joiner}red\\[x\\]"
    assert markdown_text(":material/warning:") == f"\\:{joiner}material/warning\\:"
    assert markdown_text("Stage: parse") == "Stage\\: parse"  # prose keeps its colons as they were
    assert markdown_text("$1") == "\\$1"
    assert markdown_text("http://host") == f"http\\:{joiner}//host"  # no "://": GFM does not link it
    assert markdown_text("www.host.org") == f"www{joiner}.host.org"
    assert markdown_text("a@b.org") == f"a{joiner}@b.org"
    assert markdown_text("hide_special _x_") == "hide_special \\_x\\_"  # intraword "_" never emphasises


def test_repeated_labels_differ_in_visible_text():
    """Pills match a click by label: repeats carry their position, in text a reader sees and copies."""
    from exbert_core.views.labels import told_apart

    labels = told_apart(["to", "a", "to", "to"], [3, 4, 7, 9])
    assert labels == ["to (3)", "a", "to (7)", "to (9)"] and len(set(labels)) == 4


def test_plotly_text_keeps_quotes_readable():
    from exbert_core.views.labels import plotly_text

    assert plotly_text('say "hi" <b> & \'x\'') == "say \"hi\" &lt;b&gt; &amp; 'x'"
