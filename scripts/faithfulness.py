"""Which attention measure tracks what the model uses? Leave-one-out erasure of each word token,
scored against each measure's relevance (Spearman per sentence, mean per measure; see
exbert_core/model/faithfulness.py for the tasks).

    python scripts/faithfulness.py --model NAME --input FILE [--json]

FILE holds one sentence per line; a bad line is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys

import _cli


def main() -> int:
    from exbert_core.model.names import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--input", required=True, metavar="FILE", help="one sentence per line (UTF-8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from exbert_core.model import faithfulness, loading

    lines = _cli.read_lines(args.input)
    loaded = loading.load(args.model, progress=lambda step: print(step.message, file=sys.stderr))
    errors = []
    scores = faithfulness.score_lines(loaded, lines, lambda n, msg: errors.append({"line": n, "error": msg}))
    summary = faithfulness.summarise(scores)
    if args.json:
        print(json.dumps({
            "model": loaded.info.name,
            "task": faithfulness.task_of(loaded),
            "sentences": len(scores),
            "mean_spearman": [{"measure": m, "aggregate": a, "rho": None if rho != rho else round(rho, 4), "sentences": n}
                              for (m, a), (rho, n) in summary.items()],
            "errors": errors,
        }))
        return 0
    for e in errors:
        print(f"skipped line {e['line']}: {e['error']}", file=sys.stderr)
    print(f"{loaded.info.name}, task {faithfulness.task_of(loaded)}, {len(scores)} sentences: mean Spearman rho")
    for (measure, aggregate), (rho, n) in summary.items():
        print(f"  {measure:<8} {aggregate:<11} {rho:+.3f}  ({n} sentences)")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
