"""Flat records of the layer sweep, the logit lens, the head atlas and the search summaries:
the rows of the pages' tables and of their CSV downloads (:func:`match_table.rows_csv`)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from exbert_core.model.analysis import Candidate
from exbert_core.views.head_atlas import HeadAtlas
from exbert_core.views.sweep import LayerSummary


def sweep_rows(summaries: Sequence[LayerSummary]) -> list[dict[str, object]]:
    """One record per layer, feature and label: ``layer, feature, label, count, share``."""
    rows = []
    for s in summaries:
        for feature, counts in s.histograms.items():
            total = sum(counts.values()) or 1
            for label, count in counts.items():
                rows.append({"layer": s.layer, "feature": feature, "label": label, "count": count,
                             "share": round(count / total, 4)})
    return rows


def lens_rows(layers: Sequence[int], lens: Sequence[Sequence[Candidate]]) -> list[dict[str, object]]:
    """One record per layer and rank: ``layer, rank, token, prob``."""
    return [{"layer": layer, "rank": rank, "token": c.token, "prob": round(c.prob, 6)}
            for layer, row in zip(layers, lens) for rank, c in enumerate(row, start=1)]


def atlas_rows(atlas: HeadAtlas, describe: Mapping[str, str] | None = None, measure: str = "raw") -> list[dict[str, object]]:
    """The best head per relation (heads scored by ``measure``) beside the best fixed offset, most
    frequent relation first; with the other measure's best head and accuracy where the atlas
    scored both (``other head``, ``other accuracy``)."""
    describe = describe or {}
    other = {}
    if len(atlas.measures) > 1:
        other_measure = "raw" if atlas.scores(measure) is atlas.accuracy_norm else "norm"
        other = {rel: (f"{layer}-{head}", round(acc, 4)) for rel, layer, head, acc, _, _ in atlas.best_heads(other_measure)}
    return [{
        "relation": rel,
        "meaning": describe.get(rel, ""),
        "dependents": atlas.count[rel],
        "best head": f"{layer}-{head}",
        "layer": layer,
        "head": head,
        "accuracy": round(acc, 4),
        "baseline offset": offset,
        "baseline accuracy": round(base, 4),
        "gain": round(acc - base, 4),
        **({"other head": other[rel][0], "other accuracy": other[rel][1]} if rel in other else {}),
    } for rel, layer, head, acc, offset, base in atlas.best_heads(measure)]


_ATLAS_STYLE = """<style>
.exbert-atlas { max-height: 560px; overflow-y: auto; }
.exbert-atlas table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
.exbert-atlas th, .exbert-atlas td { padding: 4px 6px; border-bottom: 1px solid rgba(128,128,128,0.25);
  text-align: left; vertical-align: top; }
.exbert-atlas th { position: sticky; top: 0; background: var(--st-background-color, #fff); }
.exbert-atlas .num { text-align: right; white-space: nowrap; }
.exbert-atlas .meaning { display: block; font-size: 0.85em; color: rgba(128,128,128,0.95); }
.exbert-atlas .paper { color: rgba(128,128,128,0.95); white-space: nowrap; }
</style>"""


def atlas_html(rows: Sequence[Mapping[str, object]], other: str = "") -> str:
    """:func:`atlas_rows` as a table that wraps to any width (a phone's too): the relation with its
    meaning, how many dependents were read, the best head in words beside the paper's label
    (``layer 2, head 4 (2-4)``), how often it is right, the best head by the other measure (its
    column headed ``other``, e.g. "best by raw attention", where the rows have one) and the best
    fixed offset; each percentage in whole percents, as in the heat map. Every value is HTML-escaped."""
    def cell(value: object, cls: str = "") -> str:
        return f'<td class="{cls}">{html.escape(str(value))}</td>' if cls else f"<td>{html.escape(str(value))}</td>"

    body = []
    for r in rows:
        meaning = f'<span class="meaning">{html.escape(str(r["meaning"]))}</span>' if r["meaning"] else ""
        dependents = f"{int(r['dependents']):,}"  # type: ignore[call-overload]
        right = f"{float(r['accuracy']):.0%}"  # type: ignore[arg-type]
        baseline = f"{int(r['baseline offset']):+d}: {float(r['baseline accuracy']):.0%}"  # type: ignore[call-overload,arg-type]
        paper = html.escape(str(r["best head"]))
        second = ""
        if other and "other head" in r:
            layer, head = str(r["other head"]).split("-")
            second = cell(f"layer {layer}, head {head} ({r['other head']}): {float(r['other accuracy']):.0%}")  # type: ignore[arg-type]
        body.append(f"<tr><td>{html.escape(str(r['relation']))}{meaning}</td>{cell(dependents, 'num')}"
                    f"<td>layer {r['layer']}, head {r['head']} <span class=\"paper\">({paper})</span></td>"
                    f"{cell(right, 'num')}{second}{cell(baseline, 'num')}</tr>")
    second_head = f"<th>{html.escape(other)}</th>" if other and any("other head" in r for r in rows) else ""
    return (f'<div class="exbert-atlas">{_ATLAS_STYLE}<table><thead><tr><th>relation</th><th>dependents</th>'
            f"<th>best head</th><th>right</th>{second_head}<th>best fixed offset</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def atlas_cells(atlas: HeadAtlas) -> list[dict[str, object]]:
    """Every relation x layer x head accuracy under each measure scored (the whole atlas, long format)."""
    return [{"relation": rel, "measure": measure, "layer": layer + 1, "head": head,
             "accuracy": round(float(acc[layer, head]), 4), "dependents": atlas.count[rel]}
            for measure in atlas.measures for rel, acc in atlas.scores(measure).items()
            for layer in range(acc.shape[0]) for head in range(acc.shape[1])]


def summary_rows(histograms: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[dict[str, object]]:
    """:func:`exbert_core.corpus.search.summary.histograms` flattened: ``side, feature, label, count, share``
    (side ``matched`` or ``max_attention``; the offset feature's labels are offsets)."""
    rows = []
    for side, features in histograms.items():
        for feature, counts in features.items():
            total = sum(counts.values()) or 1
            for label, count in counts.items():
                rows.append({"side": side, "feature": feature, "label": label, "count": count,
                             "share": round(count / total, 4)})
    return rows
