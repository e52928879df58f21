"""How the nearest corpus tokens of one token change across layers (exBERT's Figure 4 at once).

    python scripts/layer_sweep.py --corpus NAME --sentence TEXT --position POS [--mask POS ...]
        [--by embedding|heads] [--heads 0,3] [--k 50] [--json]
"""

from __future__ import annotations

import argparse
import json

import _cli


def main() -> int:
    from search import heads_list

    from exbert_core.limits import MAX_K, MAX_TOKENS_CAP

    position = _cli.int_in(0, MAX_TOKENS_CAP - 1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--sentence", required=True)
    parser.add_argument("--position", type=position, required=True, help="token position (specials counted)")
    parser.add_argument("--mask", type=position, nargs="*", default=[], metavar="POS")
    parser.add_argument("--by", choices=["embedding", "heads"], default="embedding")
    parser.add_argument("--heads", type=heads_list, default=None)
    parser.add_argument("--k", type=_cli.int_in(1, MAX_K), default=50, help=f"matches per layer (1-{MAX_K})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()  # before the heavy imports: a bad option answers at once

    from exbert_core.corpus.search import store as corpus
    from exbert_core.model import analysis, loading
    from exbert_core.views import sweep

    reference = corpus.load(args.corpus)
    loaded = loading.load(reference.manifest.model)
    result = analysis.analyze(loaded, args.sentence, args.mask)
    summaries = sweep.layer_sweep(reference, loaded, result, args.position, kind=args.by, heads=args.heads, k=args.k)
    data = sweep.sweep_dict(summaries)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    print(f"token {result.tokens[args.position].text!r}, {args.by}, k={args.k}: share of the neighbours' POS per layer")
    labels = sorted({p for s in summaries for p in s.histograms["pos"]}, key=lambda p: -sum(s.histograms["pos"].get(p, 0) for s in summaries))[:8]
    print(f"{'layer':>5} " + "".join(f"{p:>8}" for p in labels))
    for s in summaries:
        total = sum(s.histograms["pos"].values()) or 1
        print(f"{s.layer:>5} " + "".join(f"{s.histograms['pos'].get(p, 0) / total:>8.2f}" for p in labels))
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
