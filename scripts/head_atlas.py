"""Which head tracks which syntactic relation, over a corpus sample (Clark et al., 2019).

    python scripts/head_atlas.py --corpus NAME [--sentences N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import _cli


def main() -> int:
    from exbert_core.limits import MAX_ATLAS_SENTENCES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--sentences", type=_cli.int_in(1, MAX_ATLAS_SENTENCES), default=1000,
                        help=f"sample size (default 1000, at most {MAX_ATLAS_SENTENCES:,})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()  # before the heavy imports: a bad option answers at once

    from tqdm import tqdm

    from exbert_core.corpus.search import store as corpus
    from exbert_core.model import loading
    from exbert_core.views import head_atlas

    reference = corpus.load(args.corpus)
    loaded = loading.load(reference.manifest.model)
    with tqdm(total=min(args.sentences, reference.sentences.num_rows), desc="sentences", file=sys.stderr) as bar:
        atlas = head_atlas.cached(reference, loaded, args.sentences, lambda done, total: bar.update(done - bar.n))
    if args.json:
        print(json.dumps(atlas.to_dict()))
        return 0
    print(f"{atlas.sentences} sentences; best head per relation (layer-head) by raw attention and by attention x "
          "value norm, beside the best fixed offset")
    norm = {row[0]: row for row in atlas.best_heads("norm")} if "norm" in atlas.measures else {}
    print(f"{'relation':<18}{'count':>7}{'raw head':>10}{'accuracy':>10}{'norm head':>11}{'accuracy':>10}"
          f"{'offset':>8}{'baseline':>10}")
    for rel, layer, head, acc, offset, base in atlas.best_heads("raw"):
        n = norm.get(rel)
        by_norm = f"{f'{n[1]}-{n[2]}':>11}{n[3]:>10.2f}" if n else f"{'-':>11}{'-':>10}"
        print(f"{rel:<18}{atlas.count[rel]:>7}{f'{layer}-{head}':>10}{acc:>10.2f}{by_norm}{offset:>+8d}{base:>10.2f}")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
