"""Shared command-line plumbing: import path, logging, numeric options checked against their
ranges (``type=int_in(lo, hi)``, the bounds from ``exbert_core.limits``), turning known errors
into messages."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

# Scripts run as `python scripts/x.py` from a clone: make `exbert_core` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads sleep when idle instead of spinning (read when torch loads), as in app.py: a build's
# spaCy workers share the cores with the model, and spinning threads took their CPU (MiniLM on alice,
# 2 cores: 20.7 s with spinning threads, 17.3 s without).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: a whole number from ``lo`` to ``hi`` (inclusive; no upper bound
    when None). Anything else stops the script with argparse's one-line error and exit code 2."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            span = f"from {lo:,} to {hi:,}" if hi is not None else f"at least {lo:,}"
            raise argparse.ArgumentTypeError(f"{value:,} is out of range: give a number {span}")
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 text file given on the command line; InputError (one ``error:`` line)
    for a missing file, a folder or bytes that are not UTF-8."""
    from exbert_core.errors import InputError

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file (give a UTF-8 text file, one sentence per line).")
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (bad byte at offset {err.start}).") from None


def run_main(main: Callable[[], int]) -> None:
    """Run ``main`` and turn the core's expected errors into a one-line message, exit code 2."""
    from exbert_core.errors import USER_ERRORS

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(main())
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
