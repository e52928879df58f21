"""What a build will take, told before it starts: time, disk and memory for a model and a text,
and whether it fits the memory budget and the free disk (the app refuses what does not)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from exbert_core import memory
from exbert_core.corpus import embed
from exbert_core.corpus.build import CHARS_PER_TOKEN, BuildOptions, sample_tokens
from exbert_core.model.loading import ModelInfo
from exbert_core.progress import format_seconds


@dataclass(frozen=True)
class BuildEstimate:
    """What a build of a text will take, told before it starts (figures from measurement on the
    project's 2-core machine, see scripts/benchmark.py)."""

    tokens: int
    seconds: float
    disk_bytes: int
    memory_bytes: int  # what the build adds to the process: the model's weights and one batch
    budget_bytes: int
    free_disk_bytes: int
    measured_here: bool = False  # seconds from earlier builds with this model on this server
    slowdown: float = 1.0  # how much the machine's current load stretches the time (included in seconds)

    @property
    def problem(self) -> str | None:
        """Why the build would not fit (memory budget or free disk), or None."""
        if self.memory_bytes > self.budget_bytes:
            return (f"Building with this model needs about {self.memory_bytes / 1e9:.1f} GB of memory, more than the "
                    f"{self.budget_bytes / 1e9:.1f} GB budget (EXBERT_MEMORY_BUDGET). Use a smaller model, or raise "
                    "the budget on a machine that has the memory.")
        if self.disk_bytes * 1.1 > self.free_disk_bytes:
            return (f"The corpus would take about {self.disk_bytes / 1e9:.1f} GB on disk; only "
                    f"{self.free_disk_bytes / 1e9:.1f} GB are free. Use a shorter text.")
        return None

    def summary(self) -> str:
        """One sentence for a reader: tokens, time, disk, memory."""
        where = "going by earlier builds on this server" if self.measured_here else "on a 2-core CPU"
        if self.slowdown > 1.05:
            where += f" at its current load ({self.slowdown:.1f}x slower than idle)"
        return (f"about {self.tokens:,} tokens: {format_seconds(self.seconds)} {where}, "
                f"{self.disk_bytes / 1e6:,.0f} MB on disk, {self.memory_bytes / 1e6:,.0f} MB of memory while it runs")


# Fitted to scripts/benchmark.py's build section on the project's 2-core machine (MiniLM on
# moby-dick 1,724 tokens/s, SmolLM2 on alice 223 tokens/s): per token, spaCy's parse, a fixed
# cost (quantising and writing every layer's codes, metadata) and the model's multiply-adds,
# which scale with its non-embedding weights (11M for MiniLM, 106M for SmolLM2).
PARSE_CHARS_PER_S = 60_000
START_S = 3.0  # loading spaCy, writing manifests and checksums: alice took 24.9 s where the rates give 22 s
TOKEN_OVERHEAD_S = 70e-6
MODEL_PARAM_TOKENS_PER_S = 28e9
METADATA_BYTES_PER_TOKEN = 130


def bytes_per_token(info: ModelInfo) -> int:
    """Disk per indexed token: every layer's codes (embeddings 6 bits, heads 8 bits) + metadata."""
    embedding = -(-info.hidden * 6 // 8)
    return (info.layers + 1) * embedding + info.layers * info.heads * info.head_dim + METADATA_BYTES_PER_TOKEN


def estimate(info: ModelInfo, text_chars: int, out_dir: Path, options: BuildOptions = BuildOptions(),
             tokens_per_s: float | None = None, slowdown: float = 1.0) -> BuildEstimate:
    """Time, disk and memory of building ``text_chars`` characters of text with the model ``info``;
    ``tokens_per_s``: the whole-build rate measured on this machine for this model, when known
    (else the time comes from the model's size and the rates measured on the project's machine);
    ``slowdown``: the machine's current load (:func:`exbert_core.progress.busy_factor`), which
    stretches the time."""
    tokens = int(text_chars / CHARS_PER_TOKEN)
    weights, embedding = info.parameters, info.embedding_parameters
    again = 1 + sample_tokens(tokens) / max(tokens, 1)  # the quantiser's sample is parsed and run once more
    seconds = tokens / tokens_per_s if tokens_per_s else START_S + \
        again * (text_chars / PARSE_CHARS_PER_S
                 + tokens * (TOKEN_OVERHEAD_S + max(weights - embedding, 1) / MODEL_PARAM_TOKENS_PER_S))
    batch = embed.activation_bytes(info, options.rows_per_batch(info) * options.max_tokens)
    out_dir.mkdir(parents=True, exist_ok=True)
    return BuildEstimate(
        tokens=tokens,
        seconds=seconds * max(1.0, slowdown),
        disk_bytes=tokens * bytes_per_token(info),
        memory_bytes=weights * 4 + batch,
        budget_bytes=memory.budget_bytes(),
        free_disk_bytes=shutil.disk_usage(out_dir).free,
        measured_here=bool(tokens_per_s),
        slowdown=max(1.0, slowdown),
    )
