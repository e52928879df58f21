"""Find the corpus tokens whose context is most like one token of a sentence.

    python scripts/search.py --corpus NAME_OR_DIR --sentence TEXT --position POS [--mask POS ...]
        --layer L --by embedding|heads [--heads 0,3,...] [--k 50] [--model MODEL]
        [--measure raw|norm|contrib] [--aggregate layer|rollout] [--json]
"""

from __future__ import annotations

import argparse
import json

import _cli


def heads_list(text: str) -> list[int]:
    try:
        return [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("heads are comma-separated numbers, e.g. 0,3,7") from None


def main() -> int:
    from exbert_core.corpus.search import query as search, store as corpus
    from exbert_core.limits import MAX_K, MAX_TOKENS_CAP
    from exbert_core.model import analysis, loading
    from exbert_core.views import serialize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--sentence", required=True)
    parser.add_argument("--position", type=_cli.int_in(0, MAX_TOKENS_CAP - 1), required=True, help="token position (specials counted)")
    parser.add_argument("--mask", type=_cli.int_in(0, MAX_TOKENS_CAP - 1), nargs="*", default=[], metavar="POS")
    parser.add_argument("--layer", type=_cli.int_in(0), required=True)
    parser.add_argument("--by", choices=["embedding", "heads"], default="embedding")
    parser.add_argument("--heads", type=heads_list, default=None, help="e.g. 0,3 (default: all)")
    parser.add_argument("--k", type=_cli.int_in(1, MAX_K), default=50)
    parser.add_argument("--model", default=None, help="default: the corpus's model")
    parser.add_argument("--context", type=_cli.int_in(0, MAX_TOKENS_CAP), default=3, help="tokens of context each side")
    parser.add_argument("--measure", choices=["raw", "norm", "contrib"], default="norm",
                        help="what 'attends most to' means for each match (default norm, which tracks erasure; "
                             "raw is the exBERT paper's)")
    parser.add_argument("--aggregate", choices=["layer", "rollout"], default="layer",
                        help="the search layer's own weights, or rolled out over layers 1..L")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--address", default=None,
                        help="search through Ray actors on this cluster ('local' starts one on this machine)")
    args = parser.parse_args()

    reference = corpus.load(args.corpus)
    if args.address:
        from exbert_core.corpus.search import serve

        serve.serve(reference, None if args.address == "local" else args.address)
    loaded = loading.load(args.model or reference.manifest.model)
    result = analysis.analyze(loaded, args.sentence, args.mask, logit_lens=False)
    found = search.search(reference, loaded, result, args.position, args.layer, args.by, args.heads, args.k,
                          measure=args.measure, aggregate=args.aggregate)
    data = serialize.search_dict(found, context=args.context)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    label = search.layer_label(args.layer, found.heads, loaded.info.heads)
    print(f"query: {result.tokens[args.position].text!r} at {label}, by {args.by}, k={args.k}; "
          f"max attention by {args.measure} ({args.aggregate})")
    for m in data["matches"]:
        left, right = " ".join(m["context"]["before"]), " ".join(m["context"]["after"])
        att = m.get("max_attention", {})
        print(f"{m['score']:.3f}  {left:>30} [{m['token']}] {right:<30} {m['pos']:<6}{m['dep']:<10}"
              f"-> {att.get('token', '')} ({att.get('offset', '')})")
    for side, hists in data["summary"].items():
        for feature, hist in hists.items():
            top = ", ".join(f"{k} {v}" for k, v in list(hist.items())[:6])
            print(f"{side:>13} {feature:<6} {top}")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
