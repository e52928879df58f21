"""Analyse one sentence: tokens with POS/DEP/NER, and LM predictions.

    python scripts/analyze.py --sentence TEXT [--model NAME] [--mask POS ...] [--top-k K] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import _cli


def main() -> int:
    from exbert_core.limits import MAX_TOKENS_CAP, MAX_TOP_K
    from exbert_core.model.names import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentence", required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="minilm (default), smollm2, a hub id or a directory")
    parser.add_argument("--mask", type=_cli.int_in(0, MAX_TOKENS_CAP - 1), nargs="*", default=[], metavar="POS",
                        help="token positions to mask")
    parser.add_argument("--top-k", type=_cli.int_in(1, MAX_TOP_K), default=5, help=f"predictions per token (1-{MAX_TOP_K})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()  # before the heavy imports: a bad option answers at once

    from exbert_core.model import analysis, annotate, loading
    from exbert_core.views import serialize

    loaded = loading.load(args.model, progress=lambda step: print(step.message, file=sys.stderr))
    result = analysis.analyze(loaded, args.sentence, args.mask, top_k=args.top_k, logit_lens=False)
    data = serialize.analysis_dict(loaded.info, result, annotate.annotate_analysis(result))
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    for warning in data["warnings"]:
        print(f"warning: {warning}")
    print(f"{data['model']} ({data['family']}): {data['layers']} layers x {data['heads']} heads")
    print(f"{'pos':>4}  {'token':<16}{'POS':<7}{'DEP':<10}{'NER':<8}{'top prediction' if data['lm_head'] else ''}")
    predictions = {p["position"]: p["top"] for p in data["predictions"]}
    for t in data["tokens"]:
        top = predictions.get(t["position"])
        guess = ", ".join(f"{c['token']!r} {c['prob']:.2f}" for c in top[:3]) if top else ""
        print(f"{t['position']:>4}  {t['text']:<16}{t['pos']:<7}{t['dep']:<10}{t['ner']:<8}{guess}")
    if not data["lm_head"]:
        print("(this model has no LM head: no predictions; 'smollm2' has one)")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
