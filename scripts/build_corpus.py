"""Build an annotated reference corpus for search.

    python scripts/build_corpus.py (--source NAME | --text FILE | --input PATH | --hf-dataset NAME)
        --name NAME [--model MODEL] [--out DIR] [--shard-tokens N] [--engine local|ray [--address ADDR]]
        [--device auto|cpu|cuda] [--dtype fp32|bf16|fp16] [--parse-workers N]

Sources: alice (default corpus), moby-dick, brown, wizard-of-oz (needs internet); any UTF-8 text
file; a folder of .txt files, or .jsonl / .csv / .parquet files (their --text-column); or, online,
a Hugging Face data set. Corpora go to DIR/NAME (default: the data dir's corpora/ folder).
Interrupted builds resume: run the same command again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _cli


def main() -> int:
    from tqdm import tqdm

    from exbert_core.corpus.build import pipeline as build, inputs, ray_pipeline as ray_build, sample, sources
    from exbert_core.corpus.search import store
    from exbert_core.errors import InvalidText
    from exbert_core.limits import MAX_TOKENS_CAP, MIN_SPLIT_TOKENS
    from exbert_core.model import loading
    from exbert_core.paths import corpora_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", choices=list(sources.SOURCES), help="a named source text")
    what.add_argument("--text", type=Path, help="a UTF-8 text file of your own")
    what.add_argument("--input", type=Path, help="a folder of .txt files, or a .jsonl, .csv or .parquet file")
    what.add_argument("--hf-dataset", help="a Hugging Face data set (needs internet), e.g. wikitext")
    parser.add_argument("--hf-config", default=None, help="its configuration, e.g. wikitext-103-raw-v1")
    parser.add_argument("--split", default="train", help="its split (default %(default)s)")
    parser.add_argument("--text-column", default="text", help="the text column of tables (default %(default)s)")
    parser.add_argument("--max-tokens-total", type=_cli.int_in(1000, 10**12), default=None,
                        help="take at most this many of the model's tokens of the input, cut at a sentence and spread over its files")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="build in this process (default) or with Ray Data")
    parser.add_argument("--address", default=None, help="the Ray cluster to build on (default: a local one)")
    parser.add_argument("--workers", type=_cli.int_in(1, 4096), default=None, help="Ray actors per stage (default: the CPUs)")
    parser.add_argument("--name", required=True, help="corpus name: letters, digits, - and _")
    parser.add_argument("--model", default=loading.DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=None, help="folder to put the corpus in")
    parser.add_argument("--max-tokens", type=_cli.int_in(MIN_SPLIT_TOKENS, MAX_TOKENS_CAP), default=build.DEFAULT_MAX_TOKENS,
                        help="split sentences longer than this many model tokens")
    parser.add_argument("--shard-tokens", type=_cli.int_in(build.MIN_SHARD_TOKENS, 10**9), default=build.DEFAULT_SHARD_TOKENS,
                        help="about this many tokens per shard (default %(default)s)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="run the model on a GPU when there is one (auto), or force one")
    parser.add_argument("--dtype", choices=list(build.DTYPES), default="fp32",
                        help="the model's float type while it embeds: bf16/fp16 for a GPU (codes are computed in fp32)")
    parser.add_argument("--parse-workers", type=_cli.int_in(0, 1024), default=None,
                        help="spaCy processes beside the model (default: every core but one; 0: parse in this process)")
    args = parser.parse_args()
    # First: a cluster address where nothing answers is refused before any reading or model loading.
    engine = ray_build.engine(args.address, args.workers, args.device) if args.engine == "ray" else None

    def load_model() -> loading.LoadedModel:
        return loading.load(args.model, progress=lambda step: print(step.message, file=sys.stderr))

    # A sample is counted in the model's tokens, so its tokenizer comes before the reading.
    loaded = load_model() if args.max_tokens_total else None
    meter = sample.TokenMeter(loaded.tokenizer) if loaded else None
    report = inputs.InputReport()
    # What chose the texts is kept in the manifest's source, so that its rebuild hint rebuilds them.
    chosen = {"max_tokens_total": args.max_tokens_total} if args.max_tokens_total else {}
    if args.source:
        path = sources.fetch_source(args.source, progress=lambda msg: print(msg, file=sys.stderr))
        text = sample.sample_text(path.read_text(encoding="utf-8"), args.max_tokens_total, meter)
        source = {"name": path.stem, **chosen}
    elif args.text:
        text = sample.sample_text(sources.read_user_text(args.text), args.max_tokens_total, meter)
        source = {"file": args.text.name, "path": str(args.text), **chosen}  # the name is shown, the path rebuilds
    elif args.input:
        text = list(inputs.read(args.input, text_column=args.text_column, max_tokens_total=args.max_tokens_total,
                                meter=meter, report=report))
        source = {"input": str(args.input), "text_column": args.text_column, **chosen, "read": report.summary()}
        print(f"Read {report.summary()}", file=sys.stderr)
    else:
        text = list(inputs.hugging_face(args.hf_dataset, args.hf_config, args.split, text_column=args.text_column,
                                        max_tokens_total=args.max_tokens_total, meter=meter, report=report))
        source = {"hf_dataset": args.hf_dataset, "config": args.hf_config, "split": args.split,
                  "text_column": args.text_column, **chosen, "read": report.summary()}
        print(f"Read {report.summary()}", file=sys.stderr)
    if not text:
        raise InvalidText("The input holds no text to build a corpus from.")
    loaded = loaded or load_model()
    device = loading.move_to_device(loaded, args.device)
    print(f"Running {loaded.info.name} on {device}", file=sys.stderr)

    bars: dict[str, tqdm] = {}

    def progress(step) -> None:
        if step.total is None:
            print(step.message, file=sys.stderr)
            return
        # One bar per stage; the build's own is in characters of text, with the model's rate and
        # the time left in its message (tqdm's ETA would follow the characters alone).
        bar = bars.get(step.stage)
        if bar is None or bar.total != step.total:
            bar = bars[step.stage] = tqdm(total=step.total, unit=f" {step.unit}", unit_scale=True, file=sys.stderr)
        bar.set_description_str(step.message.split(" · ")[0], refresh=False)
        bar.set_postfix_str(" · ".join(step.message.split(" · ")[1:]), refresh=False)
        bar.update(step.done - bar.n)
        if step.done >= step.total:
            bar.close()

    options = build.BuildOptions(max_tokens=args.max_tokens, shard_tokens=args.shard_tokens, dtype=args.dtype,
                                 parse_workers=args.parse_workers)
    folder = build.build(
        text, args.name, args.out or corpora_dir(), loaded, source=source, options=options, progress=progress,
        engine=engine,
    )
    m = store.load(str(folder)).manifest
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder}: {m.sentences:,} sentences, {m.tokens:,} tokens in {len(m.shards)} shard(s), "
          f"{size / 1e6:.1f} MB ({size / m.tokens:.0f} bytes/token), {m.build_seconds} s "
          f"({m.tokens / max(m.build_seconds, 0.1):,.0f} tokens/s)")
    stages = m.build_stages
    if stages:
        print("where the time went: " + ", ".join(f"{stage} {stages[stage]} s" for stage in
                                                  ("sample", "parse", "embed", "wait", "layout") if stage in stages)
              + f" ({stages.get('parse_workers', 0)} parse worker(s), {stages.get('parses_reused', 0)} parse(s) reused)")
    return 0


if __name__ == "__main__":
    _cli.run_main(main)
