"""Head atlas: which attention head tracks which syntactic relation (Clark et al., 2019).

For a sample of corpus sentences, attention is turned into word-to-word attention (attention
*to* a word is the sum over its tokens, attention *from* a word the mean over its tokens;
special tokens are left out). A head "predicts" a dependent's syntactic head when the
dependent's largest word attention lands on it. Accuracy per relation and per layer x head is
set beside the best fixed-offset baseline (always pick the word at offset o). Each relation
is scored in both directions: ``det`` (the dependent attends to its head) and
``det (head->dep)`` (the head attends to that dependent).

Heads are scored twice from one pass: by the argmax of their raw attention (Clark et al.) and of
attention × value norm (``norm`` of :mod:`exbert_core.model.measures`, Kobayashi et al. 2020),
where the values of the model's family can be read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from exbert_core import atomic
from exbert_core.corpus.search.store import Corpus
from exbert_core.model import forward, measures
from exbert_core.model.loading import LoadedModel

log = logging.getLogger(__name__)

MIN_COUNT = 10  # relations seen fewer times are left out: their accuracies are noise
OFFSETS = (-3, -2, -1, 1, 2, 3)
SKIP_RELATIONS = {"ROOT", "punct", ""}
REVERSE = " (head->dep)"  # suffix of the head-to-dependent direction of a relation
CACHE_VERSION = 3
SCORED_BY = ("raw", "norm")  # the measures a head is scored by (norm: only where values are known)


@dataclass(frozen=True)
class HeadAtlas:
    """accuracy[rel]: ``[layers, heads]`` in [0, 1] by raw attention; accuracy_norm[rel]: the
    same by attention × value norm (empty where the family's values cannot be read);
    count[rel]: dependents seen; baseline[rel]: (best offset, its accuracy)."""

    sentences: int
    accuracy: dict[str, np.ndarray]
    count: dict[str, int]
    baseline: dict[str, tuple[int, float]]
    accuracy_norm: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def measures(self) -> tuple[str, ...]:
        """The measures this atlas scored heads by."""
        return SCORED_BY if self.accuracy_norm else ("raw",)

    def scores(self, measure: str = "raw") -> dict[str, np.ndarray]:
        """accuracy per relation under ``measure`` (``raw`` or ``norm``; ``contrib``, which is per
        layer, reads as ``norm``, and ``norm`` as ``raw`` where it was not scored)."""
        return self.accuracy_norm if measure != "raw" and self.accuracy_norm else self.accuracy

    def best_heads(self, measure: str = "raw") -> list[tuple[str, int, int, float, int, float]]:
        """Per relation, most frequent first: (rel, layer (1-based), head, accuracy, baseline
        offset, baseline accuracy), heads scored by ``measure``."""
        rows = []
        scores = self.scores(measure)
        for rel in sorted(scores, key=lambda r: -self.count[r]):
            acc = scores[rel]
            layer, head = np.unravel_index(int(np.argmax(acc)), acc.shape)
            offset, base = self.baseline[rel]
            rows.append((rel, int(layer) + 1, int(head), float(acc[layer, head]), offset, base))
        return rows

    def to_dict(self) -> dict:
        """The ``head_atlas --json`` contract: relations (layers x heads accuracies) and baselines."""
        return {
            "sentences": self.sentences,
            "relations": {rel: np.round(acc, 4).tolist() for rel, acc in self.accuracy.items()},
            "relations_norm": {rel: np.round(acc, 4).tolist() for rel, acc in self.accuracy_norm.items()},
            "counts": self.count,
            "baselines": {rel: {"offset": o, "accuracy": round(a, 4)} for rel, (o, a) in self.baseline.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "HeadAtlas":
        return cls(
            sentences=data["sentences"],
            accuracy={rel: np.array(acc, dtype=np.float64) for rel, acc in data["relations"].items()},
            count={rel: int(c) for rel, c in data["counts"].items()},
            baseline={rel: (int(b["offset"]), float(b["accuracy"])) for rel, b in data["baselines"].items()},
            accuracy_norm={rel: np.array(acc, dtype=np.float64) for rel, acc in data.get("relations_norm", {}).items()},
        )


def sample_sentences(corpus: Corpus, n: int, seed: int = 0) -> list[int]:
    """A deterministic random sample of ``n`` sentence ids (all of them if fewer)."""
    total = corpus.num_sentences
    if n >= total:
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, size=n, replace=False).tolist())


def compute(
    corpus: Corpus,
    loaded: LoadedModel,
    sentences: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    batch_tokens: int = 4096,
) -> HeadAtlas:
    """Head atlas over a sample of ``sentences`` corpus sentences (attention and values recomputed;
    heads scored by raw attention and, where the values can be read, by attention × value norm)."""
    corpus.check_model(loaded)
    info = loaded.info
    chosen = sample_sentences(corpus, sentences)
    ids = [corpus.sentence_ids(s) for s in chosen]
    scored = SCORED_BY if loaded.value_projections else ("raw",)
    hits: dict[str, dict[str, np.ndarray]] = {m: {} for m in scored}
    seen: dict[str, int] = {}
    offset_hits: dict[str, np.ndarray] = {}
    done = 0

    def attention(input_ids, mask):
        if "norm" not in scored:
            return forward.all_attention(loaded, input_ids, mask), None
        out = forward.run(loaded, input_ids, mask, logits=False)  # attention and values
        norms = measures.value_norms(loaded, out.values)  # [batch, layers, heads, T]
        return out.attention, norms

    for group, (batch_attention, batch_norms) in forward.in_batches(loaded, ids, batch_tokens, attention):
        for row, i in enumerate(group):
            rows = corpus.rows_of_sentence(chosen[i])
            meta = corpus.token_rows(np.arange(rows.start, rows.stop))
            words = _words(meta)
            if len(words) < 2:
                continue
            n_tokens = len(ids[i])
            att = batch_attention[row, :, :, :n_tokens, :n_tokens].numpy()  # [layers, heads, T, T]
            by_measure = {"raw": att}
            if batch_norms is not None:
                by_measure["norm"] = measures.head_weights(att, batch_norms[row, :, :, :n_tokens])
            # [layers, heads, W] per measure: the word each head's strongest word attention lands on
            predicted = {m: _word_attention(a, words, n_tokens).argmax(-1) for m, a in by_measure.items()}
            index_of = {w: k for k, (w, _, _, _) in enumerate(words)}
            for k, (word, head, dep, _) in enumerate(words):
                if dep in SKIP_RELATIONS or head == word or head not in index_of:
                    continue
                target = index_of[head]
                # dependent -> head, and head -> dependent (Clark et al. score both directions)
                for rel, source, goal, offset in ((dep, k, target, head - word), (f"{dep}{REVERSE}", target, k, word - head)):
                    for m in scored:
                        hits[m].setdefault(rel, np.zeros((info.layers, info.heads)))
                        hits[m][rel] += predicted[m][:, :, source] == goal
                    seen[rel] = seen.get(rel, 0) + 1
                    offset_hits.setdefault(rel, np.zeros(len(OFFSETS)))
                    offset_hits[rel] += [offset == o for o in OFFSETS]
        done += len(group)
        if progress:
            progress(done, len(ids))
    kept = [rel for rel in seen if seen[rel] >= MIN_COUNT]
    baseline = {}
    for rel in kept:
        best = int(np.argmax(offset_hits[rel]))
        baseline[rel] = (OFFSETS[best], float(offset_hits[rel][best] / seen[rel]))
    return HeadAtlas(
        sentences=len(chosen),
        accuracy={rel: hits["raw"][rel] / seen[rel] for rel in kept},
        count={rel: seen[rel] for rel in kept},
        baseline=baseline,
        accuracy_norm={rel: hits["norm"][rel] / seen[rel] for rel in kept} if "norm" in hits else {},
    )


def cached(corpus: Corpus, loaded: LoadedModel, sentences: int = 1000, progress=None) -> HeadAtlas:
    """:func:`compute`, stored beside the corpus (``head_atlas_<n>.json``) after the first run."""
    path = corpus.path / f"head_atlas_{sentences}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("cache_version") == CACHE_VERSION and data.get("built") == corpus.manifest.built:
                return HeadAtlas.from_dict(data)
        except (ValueError, KeyError, TypeError):
            log.warning("Ignoring unreadable %s", path)
    atlas = compute(corpus, loaded, sentences, progress)
    payload = {**atlas.to_dict(), "cache_version": CACHE_VERSION, "built": corpus.manifest.built}
    try:
        atomic.write_text(path, json.dumps(payload))
    except OSError as err:  # a read-only corpus folder still gets its atlas, uncached
        log.warning("Could not cache the head atlas: %s", err)
    return atlas


def _words(meta: dict) -> list[tuple[int, int, str, list[int]]]:
    """(word index, head word index, relation, token positions) per word of a sentence."""
    words: dict[int, tuple[int, str, list[int]]] = {}
    for position, word, head, dep in zip(meta["position"], meta["word_index"], meta["head"], meta["dep"]):
        if word < 0:
            continue
        entry = words.setdefault(word, (head, dep, []))
        entry[2].append(position)
    return [(w, h, d, p) for w, (h, d, p) in sorted(words.items())]


def _word_attention(att: np.ndarray, words: list, n_tokens: int) -> np.ndarray:
    """Token attention ``[layers, heads, T, T]`` -> word attention ``[layers, heads, W, W]``:
    rows averaged over a word's tokens, columns summed over them."""
    from_words = np.zeros((len(words), n_tokens), dtype=np.float32)
    to_words = np.zeros((n_tokens, len(words)), dtype=np.float32)
    for k, (_, _, _, positions) in enumerate(words):
        from_words[k, positions] = 1.0 / len(positions)
        to_words[positions, k] = 1.0
    return from_words @ att @ to_words
