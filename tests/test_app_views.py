"""The views across layers and heads under streamlit's AppTest (issue #6): model view, layer sweep
and logit lens, head atlas, compare, and the attention view's long-input and export settings.

Each page is opened as a link (query parameters, the page switched to before the first run);
widgets are found by key; bad parameters give warnings and defaults. Real model, real corpus.
"""

from __future__ import annotations

import base64
import json

import app_support
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from exbert_core.app import state as app_state

TIMEOUT = 300
LONG_SENTENCE = " ".join(["Alice was beginning to get very tired of sitting by her sister on the bank."] * 6)


@pytest.fixture(scope="module", autouse=True)
def app_env():
    app_support.ensure_alice()
    with app_support.app_environment():
        yield


def open_page(page: str | None, query: dict[str, str] | None = None) -> AppTest:
    """The app as a link to ``page`` (None: the attention page) opens it."""
    at = AppTest.from_file(str(app_support.APP), default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    if page:
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Unexpected error" in e.value]


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly figures by key, as sent to the browser (``spec`` and ``config``)."""
    out = {}
    for element in at.get("plotly_chart"):
        key = element.proto.id.rsplit("-", 1)[-1]
        out[key] = {"spec": json.loads(element.proto.spec), "config": json.loads(element.proto.config or "{}")}
    return out


def _array(value) -> np.ndarray:
    """A Plotly array as sent to the browser (a list, or typed-array ``bdata``)."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value, dtype=float)


def link_warning(at: AppTest) -> str:
    (warning,) = [w.value for w in at.warning if "This link had problems" in w.value]
    return warning


# --- Model view --------------------------------------------------------------------------------


def test_model_view_link_shows_every_head_and_opens_one_in_the_attention_view():
    at = open_page("model_view", {"layer": "3", "heads": "4", "hide_special": "1", "image": "svg"})
    assert_clean(at)
    chart = charts(at)["model_view_chart"]
    _, targets = chart["spec"]["data"]
    assert len(targets["customdata"]) == 6 * 12 and targets["customdata"][2 * 12 + 4] == [3, 4]
    assert len(chart["spec"]["layout"]["shapes"]) == 1  # layer 3, head 4 outlined
    assert chart["config"]["toImageButtonOptions"]["format"] == "svg"
    assert at.toggle(key="sb_hide_special").value is True and at.segmented_control(key="sb_image").value == "svg"
    assert {"model": "minilm", "layer": "3", "heads": "4", "image": "svg"}.items() <= at.query_params.items()
    # Without a pointer: pick layer 5, head 7, open it; the attention view shows that head.
    at.selectbox(key="mv_layer").set_value(5)
    at.selectbox(key="mv_head").set_value(7)
    at.button(key="mv_open").click().run()
    assert_clean(at)
    assert (at.query_params["layer"], at.query_params["heads"]) == ("5", "7")
    assert any(m.value == "#### Attention at layer 5" for m in at.markdown)
    assert any("5-[7]" in c.value for c in at.caption)


# --- Layer sweep and logit lens ----------------------------------------------------------------


def test_layer_sweep_link_restores_the_view_and_the_feature_control():
    at = open_page("layers", {"token": "7", "feature": "dep", "k": "20"})
    assert_clean(at)
    assert not at.warning
    assert at.segmented_control(key="sweep_feature").value == "dep"
    sweep = charts(at)["sweep_chart"]["spec"]
    assert sweep["layout"]["xaxis"]["ticktext"][0] == "0<br>emb." and len(sweep["layout"]["xaxis"]["ticktext"]) == 7
    assert "Grammatical role of the 20 nearest" in sweep["layout"]["title"]["text"]
    assert any("Layer 0 is the embedding output" in c.value for c in at.caption)
    # MiniLM has no LM head: no logit lens, and a line names the model that has one.
    assert any("no logit lens" in c.value and "smollm2" in c.value for c in at.caption)
    assert {"download_sweep_csv", "download_sweep_json"} <= {b.key for b in at.download_button}
    assert "sb_layer" not in {w.key for w in at.sidebar.select_slider}  # the sweep covers every layer
    at.segmented_control(key="sweep_feature").set_value("pos").run()
    assert at.query_params["feature"] == "pos" and at.query_params["token"] == "7"


def test_layer_sweep_bad_feature_warns_and_logit_lens_of_smollm2():
    at = open_page("layers", {"feature": "colour"})
    assert "feature 'colour'" in link_warning(at) and at.segmented_control(key="sweep_feature").value == "pos"
    at = open_page("layers", {"model": "smollm2", "corpus": "alice"})
    assert_clean(at)
    lens = charts(at)["lens_chart"]["spec"]
    assert len(lens["data"][0]["y"]) == 30  # one row per layer
    assert any("built with model 'minilm'" in w.value for w in at.warning)  # no smollm2 corpus: no sweep
    assert "download_lens_csv" in {b.key for b in at.download_button}


# --- Head atlas --------------------------------------------------------------------------------


def test_head_atlas_link_shows_the_relation_and_opens_its_best_head():
    at = open_page("head_atlas", {"sample": "100", "relation": "det"})
    assert_clean(at)
    assert at.selectbox(key="atlas_relation").value == "det"
    assert at.select_slider(key="atlas_sample").value == 100
    heat = charts(at)["atlas_chart"]["spec"]
    assert heat["layout"]["title"]["text"].startswith("det (determiner): best head: layer")
    assert len(heat["data"][1]["customdata"]) == 72
    (table,) = [h.proto.body for h in at.html if "exbert-atlas" in h.proto.body]
    assert "<td>det<span" in table and ", head " in table
    assert {"download_atlas_csv", "download_atlas_cells_csv", "download_atlas_json"} <= {b.key for b in at.download_button}
    assert (app_support.alice_dir() / "head_atlas_100.json").is_file()  # cached with the corpus
    best = at.button(key="atlas_open_best")
    layer, head = best.label.split("(")[1].split(")")[0].split("-")  # "Open layer 2, head 4 (2-4) in ..."
    assert best.label.startswith(f"Open layer {layer}, head {head} ({layer}-{head})")
    best.click().run()
    assert_clean(at)
    assert (at.query_params["layer"], at.query_params["heads"]) == (layer, head)
    assert any(m.value == f"#### Attention at layer {layer}" for m in at.markdown)


def test_head_atlas_bad_parameters_warn():
    at = open_page("head_atlas", {"sample": "7", "relation": "nonsense"})
    assert_clean(at)
    warning = link_warning(at)
    assert "sample '7'" in warning and "relation 'nonsense'" in warning
    assert at.select_slider(key="atlas_sample").value == app_state.DEFAULT_ATLAS_SAMPLE


# --- Compare -----------------------------------------------------------------------------------


def test_compare_two_sentences_follows_the_same_word():
    at = open_page("compare", {"token": "9"})
    assert_clean(at)
    found = charts(at)
    assert {"cmp_heat_a", "cmp_heat_b", "cmp_hist_a", "cmp_hist_b"} <= set(found)
    # B's default token is "escape" of the second sentence (a noun there, a verb in A).
    assert at.pills(key="cmp_token_b").value == 6
    assert at.segmented_control(key="cmp_mode").value == "sentences"
    assert at.query_params["compare"] == "sentences" and "escape" in at.query_params["sentence_b"]
    at.text_area(key="cmp_sentence_b").input("Nobody could escape the Queen.").run()
    assert_clean(at)
    assert at.query_params["sentence_b"] == "Nobody could escape the Queen."
    assert at.pills(key="cmp_token_b").value == 3
    at.pills(key="cmp_token_b").set_value(5).run()
    assert at.query_params["token_b"] == "5"


def test_compare_two_models_with_bad_positions():
    at = open_page("compare", {"compare": "models", "model_b": "smollm2", "token_b": "99", "layer_b": "40"})
    assert_clean(at)
    warning = link_warning(at)
    assert "Layer 40 does not exist in smollm2" in warning and "Token position 99" in warning
    assert at.pills(key="cmp_token_b").value == 8  # "escape" under SmolLM2's tokenizer
    assert at.select_slider(key="cmp_layer_b").value == 10  # layer 2 of 6 is layer 10 of 30
    assert "cmp_pred_b" in charts(at)  # SmolLM2 predicts the next token
    assert any("No reference corpus is built with smollm2" in i.value for i in at.info)


# --- The attention view: long inputs, views, export --------------------------------------------


def test_long_input_opens_the_heat_map_and_bad_view_warns():
    at = open_page(None, {"sentence": LONG_SENTENCE, "image": "svg"})
    assert_clean(at)
    found = charts(at)
    assert "heatmap" in found and not any(k.startswith("curves") for k in found)  # only the open tab runs
    assert found["heatmap"]["spec"]["layout"]["xaxis"]["type"] == "category"
    assert found["heatmap"]["config"]["toImageButtonOptions"]["format"] == "svg"
    assert at.selectbox(key="token_pick")  # a menu, not 100 pills
    at = open_page(None, {"view": "sideways"})
    assert "attention view 'sideways'" in link_warning(at)
    assert "curves_0" in charts(at)
    at = open_page(None, {"view": "heads"})
    assert {k for k in charts(at) if not k.startswith("hist")} == {"head_grid"}
    assert at.query_params["view"] == "heads"
    assert not {k for k in charts(at) if k.startswith("hist")}  # only the open tab is built
    assert "download_summary_csv" in {b.key for b in at.download_button}  # downloads stay at hand
    at = open_page(None, {"view": "heads", "tab": "summary"})
    assert {k for k in charts(at) if k.startswith("hist")} == {"hist_matched_pos", "hist_attended_pos"}



def test_compare_draws_both_sides_on_one_scale():
    """Side by side, the heat maps share one colour scale and the histograms one axis (issue 11, 2)."""
    at = open_page("compare", {"token": "9", "sentence_b": "Nobody could escape the Queen of Hearts."})
    assert_clean(at)
    found = charts(at)
    heat_a, heat_b = found["cmp_heat_a"]["spec"], found["cmp_heat_b"]["spec"]
    zmax = heat_a["data"][0]["zmax"]
    assert heat_b["data"][0]["zmax"] == zmax
    assert zmax == pytest.approx(max(_array(heat_a["data"][0]["z"]).max(), _array(heat_b["data"][0]["z"]).max()),
                                 abs=1e-3)
    hist_a, hist_b = found["cmp_hist_a"]["spec"], found["cmp_hist_b"]["spec"]
    assert hist_a["layout"]["xaxis"]["range"] == hist_b["layout"]["xaxis"]["range"]
    assert hist_a["layout"]["xaxis"]["range"][1] == pytest.approx(
        max(hist_a["data"][0]["x"] + hist_b["data"][0]["x"]) * 1.18)
