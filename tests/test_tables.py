"""tables: the flat records behind the pages' tables and CSV downloads."""

from __future__ import annotations

import csv
import io

import numpy as np

from exbert_core.model.analysis import Candidate
from exbert_core.views import match_table, tables
from exbert_core.views.head_atlas import HeadAtlas
from exbert_core.views.sweep import LayerSummary


def test_sweep_and_lens_rows():
    summaries = [LayerSummary(0, {"pos": {"VERB": 3, "NOUN": 1}, "dep": {"ROOT": 4}, "ner": {"(no entity)": 4}}, None),
                 LayerSummary(1, {"pos": {"NOUN": 4}, "dep": {"dobj": 4}, "ner": {"(no entity)": 4}}, None)]
    rows = tables.sweep_rows(summaries)
    assert rows[0] == {"layer": 0, "feature": "pos", "label": "VERB", "count": 3, "share": 0.75}
    assert len(rows) == 7 and sum(r["count"] for r in rows if r["feature"] == "pos") == 8
    lens = tables.lens_rows([1, 2], [[Candidate(" the", 0.5)], [Candidate("=x", 0.25), Candidate(" a", 0.2)]])
    assert lens[1] == {"layer": 2, "rank": 1, "token": "=x", "prob": 0.25} and len(lens) == 3
    text = match_table.rows_csv(lens)
    assert "'=x" in text  # a spreadsheet formula is defused
    assert next(iter(csv.DictReader(io.StringIO(text))))["token"] == " the"
    assert match_table.rows_csv([], fields=["layer", "rank"]).strip() == "layer,rank"


def test_atlas_rows_put_the_best_head_beside_the_baseline():
    det = np.zeros((2, 3))
    det[1, 2] = 0.9
    nsubj = np.full((2, 3), 0.3)
    atlas = HeadAtlas(sentences=10, accuracy={"det": det, "nsubj": nsubj}, count={"det": 12, "nsubj": 40},
                      baseline={"det": (1, 0.7), "nsubj": (-1, 0.4)})
    rows = tables.atlas_rows(atlas, {"det": "determiner"})
    assert [r["relation"] for r in rows] == ["nsubj", "det"]  # most frequent first
    assert rows[1]["best head"] == "2-2" and rows[1]["accuracy"] == 0.9 and rows[1]["gain"] == 0.2
    assert rows[1]["meaning"] == "determiner" and rows[0]["gain"] == -0.1
    # the page's table: the head in words beside the paper's label, one precision per number
    page = tables.atlas_html(rows)
    assert "layer 2, head 2 <span class=\"paper\">(2-2)</span>" in page and ">90%<" in page and "+1: 70%" in page
    assert "determiner" in page and tables.atlas_html([{**rows[1], "meaning": "<b>x</b>"}]).count("<b>") == 0
    cells = tables.atlas_cells(atlas)
    assert len(cells) == 12 and {"relation": "det", "measure": "raw", "layer": 2, "head": 2, "accuracy": 0.9,
                                 "dependents": 12} in cells
    assert "other head" not in rows[0]  # scored by raw attention only


def test_atlas_rows_put_the_other_measures_best_head_beside():
    raw, norm = np.zeros((2, 3)), np.zeros((2, 3))
    raw[1, 2], norm[0, 1] = 0.9, 0.8
    atlas = HeadAtlas(sentences=10, accuracy={"det": raw}, count={"det": 12}, baseline={"det": (1, 0.7)},
                      accuracy_norm={"det": norm})
    (by_norm,) = tables.atlas_rows(atlas, measure="norm")
    assert (by_norm["best head"], by_norm["accuracy"], by_norm["other head"], by_norm["other accuracy"]) == ("1-1", 0.8, "2-2", 0.9)
    (by_raw,) = tables.atlas_rows(atlas, measure="raw")
    assert (by_raw["best head"], by_raw["other head"]) == ("2-2", "1-1")
    assert len(tables.atlas_cells(atlas)) == 12  # both measures


def test_summary_rows_flatten_both_sides():
    hist = {"matched": {"pos": {"VERB": 2}}, "max_attention": {"pos": {"NOUN": 1, "DET": 1}, "offset": {"-1": 2}}}
    rows = tables.summary_rows(hist)
    assert {"side": "max_attention", "feature": "offset", "label": "-1", "count": 2, "share": 1.0} in rows
    assert len(rows) == 4
