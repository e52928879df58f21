"""Analyse one sentence: tokens with POS/DEP/NER, and LM predictions; with --measure, every
layer's token-to-token weights under that measure and their rollout.

    python scripts/analyze.py --sentence TEXT [--model NAME] [--mask POS ...] [--top-k K]
        [--measure raw|norm|contrib [--per-head]] [--json]
    python scripts/analyze.py --input FILE [...] --jsonl     (one sentence per line, one object per line)
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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sentence")
    source.add_argument("--input", metavar="FILE", help="one sentence per line; prints one JSON object per line (--jsonl)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="minilm (default), smollm2, a hub id or a directory")
    parser.add_argument("--mask", type=_cli.int_in(0, MAX_TOKENS_CAP - 1), nargs="*", default=[], metavar="POS",
                        help="token positions to mask")
    parser.add_argument("--top-k", type=_cli.int_in(1, MAX_TOP_K), default=5, help=f"predictions per token (1-{MAX_TOP_K})")
    parser.add_argument("--measure", choices=("raw", "norm", "contrib"),
                        help="add every layer's weights under this measure and their rollout (attention.layers, .rollout)")
    parser.add_argument("--per-head", action="store_true", help="with --measure: also each head's (attention.heads)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jsonl", action="store_true", help="with --input: one JSON object per line of FILE")
    args = parser.parse_args()  # before the heavy imports: a bad option answers at once
    if args.input and not args.jsonl:
        parser.error("--input prints one JSON object per line: add --jsonl")
    if args.per_head and not args.measure:
        parser.error("--per-head needs --measure")

    from exbert_core.errors import USER_ERRORS
    from exbert_core.model import loading

    lines = _cli.read_lines(args.input) if args.input else None
    loaded = loading.load(args.model, progress=lambda step: print(step.message, file=sys.stderr))
    if lines is not None:
        for number, line in enumerate(lines, start=1):
            try:
                data = _analysis_data(loaded, line, args)
            except USER_ERRORS as err:  # one bad line is reported in place, never fatal
                data = {"line": number, "error": str(err)}
            print(json.dumps(data, ensure_ascii=False), flush=True)
        return 0
    data = _analysis_data(loaded, args.sentence, args)
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
    if args.measure:
        print(f"(--measure {args.measure}: the weights are in --json output, attention.layers and attention.rollout)")
    return 0


def _analysis_data(loaded, sentence: str, args: argparse.Namespace) -> dict:
    from exbert_core.model import analysis, annotate, measures
    from exbert_core.views import serialize

    result = analysis.analyze(loaded, sentence, args.mask, top_k=args.top_k, logit_lens=False)
    data = serialize.analysis_dict(loaded.info, result, annotate.annotate_analysis(result))
    if args.measure:
        data["attention"] = serialize.measure_dict(measures.compute(loaded, result, args.measure), result.attention,
                                                   args.per_head)
    return data


if __name__ == "__main__":
    _cli.run_main(main)
