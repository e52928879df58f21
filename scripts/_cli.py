"""Shared command-line plumbing: import path, logging, turning known errors into messages."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable

# Scripts run as `python scripts/x.py` from a clone: make `exbert_core` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
