"""Every limit of the tool, stated once (a leaf module). The README's "Limits" table is generated
from this file (``python -m exbert_core.limits``): each limit is an upper-case constant whose
comment lines above it say what it bounds and why.

Each is sized by measurement on the 2-core machine and Community Cloud's ~2.7 GB of memory.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Tokens of one analysed input: longer inputs are cut (most encoders read 512; longer is neither fast nor readable).
MAX_TOKENS_CAP = 512
# Characters of one typed sentence: a 512-token input is about 2,500 characters of English prose.
MAX_SENTENCE_CHARS = 5000
# Matches per search: with MiniLM on Alice, k=500 adds ~0.3 GB to the peak and takes ~2 s.
MAX_K = 500
# Predictions per token (`--top-k`): the whole vocabulary took 3 GB and printed 106 MB of JSON; the 50th is already near probability 0.
MAX_TOP_K = 50
# Shortest corpus sentence piece in model tokens (`--max-tokens` at least): room for two special tokens and a few words.
MIN_SPLIT_TOKENS = 8
# Sentences a head atlas reads (`--sentences`): ~4 s per 1,000 with MiniLM; more than the Brown corpus's ~57,000.
MAX_ATLAS_SENTENCES = 100_000
# Size of a user's text in MB (1 MB = 1,000,000 bytes, as Streamlit's browser uploader counts on Linux and macOS): `.streamlit/config.toml` has the same `maxUploadSize`.
MAX_UPLOAD_MB = 20
# The same limit in bytes, for the core's check of uploads and `--text` files: a 20 MB text is ~16x moby-dick: ~5M tokens, ~45 min of build with MiniLM, ~22 GB on disk (4.3 kB per token).
MAX_TEXT_BYTES = MAX_UPLOAD_MB * 1_000_000
# Characters spaCy parses as one document: longer paragraphs are cut at sentence ends (990,000 characters in one document took 363 s and 3.4 GB).
MAX_PARSE_CHARS = 5000
# Characters per spaCy batch: its memory grows with them (measured: 64,000 characters +0.2 GB, 320,000 +0.9 GB).
PARSE_BATCH_CHARS = 64_000
# Disk in MB for stored parses (spaCy's analysis of texts built before, reused by the next build of the same text with any model); least recently used go first.
PARSE_STORE_MB = 1000
# Parameters of a model loaded from the hub or a folder, counted from its config before any download: 400M float32 weights are 1.6 GB of ~2.7 GB.
MAX_MODEL_PARAMS = 400_000_000


def documented() -> list[tuple[str, int, str]]:
    """``(name, value, why)`` of every limit above, in file order; ``why`` is the comment above it."""
    source = Path(__file__).read_text(encoding="utf-8")
    lines = source.splitlines()
    rows = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                comments = []
                row = node.lineno - 2
                while row >= 0 and lines[row].startswith("# "):
                    comments.insert(0, lines[row][2:].strip())
                    row -= 1
                rows.append((name, globals()[name], " ".join(comments)))
    return rows


def markdown_table() -> str:
    """The README's "Limits" table."""
    out = ["| limit | value | what and why |", "| --- | --- | --- |"]
    out += [f"| `{name}` | {value:,} | {why} |" for name, value, why in documented()]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown_table())
