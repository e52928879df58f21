"""Flat records of the layer sweep, the logit lens, the head atlas and the search summaries:
the rows of the pages' tables and of their CSV downloads (:func:`match_table.rows_csv`)."""

from __future__ import annotations

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
