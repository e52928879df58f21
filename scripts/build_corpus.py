"""Build an annotated reference corpus for search.

    python scripts/build_corpus.py (--source NAME | --text FILE) --name NAME [--model MODEL] [--out DIR]

Sources: alice (default corpus), moby-dick, brown, wizard-of-oz (needs internet), or any UTF-8
text file. Corpora go to DIR/NAME (default: the data dir's corpora/ folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _cli


def main() -> int:
    from tqdm import tqdm

    from exbert_core.corpus import build, sources
    from exbert_core.model import loading
    from exbert_core.paths import corpora_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", choices=list(sources.SOURCES), help="a named source text")
    what.add_argument("--text", type=Path, help="a UTF-8 text file of your own")
    parser.add_argument("--name", required=True, help="corpus name: letters, digits, - and _")
    parser.add_argument("--model", default=loading.DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=None, help="folder to put the corpus in")
    parser.add_argument("--max-tokens", type=int, default=build.DEFAULT_MAX_TOKENS,
                        help="split sentences longer than this many model tokens")
    args = parser.parse_args()

    if args.source:
        path = sources.fetch_source(args.source, progress=lambda msg: print(msg, file=sys.stderr))
        text, source = path.read_text(encoding="utf-8"), {"name": path.stem}
    else:
        text, source = sources.read_user_text(args.text), {"file": args.text.name}
    loaded = loading.load(args.model, progress=lambda step: print(step.message, file=sys.stderr))

    bars: dict[str, tqdm] = {}

    def progress(step) -> None:
        if step.total is None:
            print(step.message, file=sys.stderr)
            return
        bar = bars.get(step.stage)
        if bar is None:
            bar = bars[step.stage] = tqdm(total=step.total, desc=step.message, unit=f" {step.unit}",
                                          unit_scale=True, file=sys.stderr)
        bar.update(step.done - bar.n)
        if step.done >= step.total:
            bar.close()

    options = build.BuildOptions(max_tokens=args.max_tokens)
    folder = build.build(
        text, args.name, args.out or corpora_dir(), loaded, source=source, options=options, progress=progress
    )
    manifest = (folder / "manifest.json").read_text()
    import json

    m = json.loads(manifest)
    size = sum(f["bytes"] for f in m["files"].values())
    print(f"{folder}: {m['sentences']:,} sentences, {m['tokens']:,} tokens, "
          f"{size / 1e6:.1f} MB ({size / m['tokens']:.0f} bytes/token), {m['build_seconds']} s")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
