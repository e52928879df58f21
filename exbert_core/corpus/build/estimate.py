"""What a build will take, told before it starts: time, disk and memory for a model and a text,
and whether it fits in memory beside the server and on the free disk (the app refuses what does not)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from exbert_core.corpus.build.pipeline import CHARS_PER_TOKEN, sample_tokens
from exbert_core.model.loading import ModelInfo
from exbert_core.progress import format_seconds


@dataclass(frozen=True)
class BuildEstimate:
    """What a build of a text will take, told before it starts (figures from measurement on the
    project's 2-core machine, see scripts/benchmark.py)."""

    tokens: int
    seconds: float
    disk_bytes: int
    memory_bytes: int  # peak memory of the build's own process (RssAnon): measured here, or estimated
    free_disk_bytes: int
    measured_here: bool = False  # seconds from earlier builds with this model on this server
    memory_measured: bool = False  # memory_bytes is the peak of earlier builds with this model here
    memory_problem: str | None = None  # why it cannot run beside the server now (build_memory.too_big)
    slowdown: float = 1.0  # how much the machine's current load stretches the time (included in seconds)

    @property
    def problem(self) -> str | None:
        """Why the build would not fit (memory or free disk), or None."""
        if self.memory_problem:
            return self.memory_problem
        if self.disk_bytes * 1.1 > self.free_disk_bytes:
            return (f"The corpus would take about {self.disk_bytes / 1e9:.1f} GB on disk; only "
                    f"{self.free_disk_bytes / 1e9:.1f} GB are free. Use a shorter text.")
        return None

    def summary(self) -> str:
        """One sentence for a reader: tokens, time, disk, memory."""
        where = "going by earlier builds on this server" if self.measured_here else "on a 2-core CPU"
        memory_words = ("as measured on earlier builds with this model here" if self.memory_measured
                        else "estimated before the first build with this model here")
        if self.slowdown > 1.05:
            where += f" at its current load ({self.slowdown:.1f}x slower than idle)"
        return (f"about {self.tokens:,} tokens: {format_seconds(self.seconds)} {where}, "
                f"{self.disk_bytes / 1e6:,.0f} MB on disk, {self.memory_bytes / 1e6:,.0f} MB of memory while it "
                f"runs in a process of its own ({memory_words})")


# Fitted to scripts/benchmark.py's build section on the project's 2-core machine (whole builds: MiniLM
# on alice 15.0 s and on moby-dick 97.4 s, SmolLM2 on alice 86.0 s): a start (spaCy's workers, the
# manifests and checksums) and per token a fixed cost (tokenizing, metadata, quantising and writing
# every layer's codes, and what spaCy's parse, which runs beside the model, adds to it on two cores)
# and the model's multiply-adds, which scale with its non-embedding weights (11M for MiniLM, 106M for
# SmolLM2); the quantiser's sample runs through the model once more.
START_S = 2.4
TOKEN_OVERHEAD_S = 98e-6
MODEL_PARAM_TOKENS_PER_S = 5.4e10
METADATA_BYTES_PER_TOKEN = 130


# The build's own process (RssAnon), fitted to the peaks of the app's alice builds measured by
# `scripts/app_probe.py --measure build` (default budget): MiniLM (6 layers) 665 MB, SmolLM2 (30
# layers) 907 MB. A fixed part (the interpreter with torch, transformers, spaCy, faiss and pyarrow,
# the model loaded with its weights memory-mapped and not counted, spaCy's parse of one batch of
# text, one forward batch of an eighth of the budget) and a part per layer (every layer's code
# writers and vectors of a batch).
CHILD_START_BYTES = 600_000_000
CHILD_LAYER_BYTES = 10_000_000


def child_peak_bytes(info: ModelInfo) -> int:
    """The peak memory of a build's own process with ``info``'s model, before any was measured."""
    return CHILD_START_BYTES + CHILD_LAYER_BYTES * info.layers


def bytes_per_token(info: ModelInfo) -> int:
    """Disk per indexed token: every layer's codes (embeddings 6 bits, heads 8 bits) + metadata."""
    embedding = -(-info.hidden * 6 // 8)
    return (info.layers + 1) * embedding + info.layers * info.heads * info.head_dim + METADATA_BYTES_PER_TOKEN


def estimate(info: ModelInfo, text_chars: int, out_dir: Path, tokens_per_s: float | None = None,
             peak_bytes: int | None = None, memory_problem: str | None = None,
             slowdown: float = 1.0) -> BuildEstimate:
    """Time, disk and memory of building ``text_chars`` characters of text with the model ``info``;
    ``tokens_per_s``: the whole-build rate measured on this machine for this model, when known
    (else the time comes from the model's size and the rates measured on the project's machine);
    ``peak_bytes``: the build process's peak measured here (else :func:`child_peak_bytes`);
    ``memory_problem``: why it would not fit in memory now (:mod:`exbert_core.corpus.build.build_memory`);
    ``slowdown``: the machine's current load (:func:`exbert_core.progress.busy_factor`), which
    stretches the time."""
    tokens = int(text_chars / CHARS_PER_TOKEN)
    weights, embedding = info.parameters, info.embedding_parameters
    again = 1 + sample_tokens(tokens) / max(tokens, 1)  # the quantiser's sample runs through the model once more
    seconds = tokens / tokens_per_s if tokens_per_s else \
        START_S + again * tokens * (TOKEN_OVERHEAD_S + max(weights - embedding, 1) / MODEL_PARAM_TOKENS_PER_S)
    out_dir.mkdir(parents=True, exist_ok=True)
    return BuildEstimate(
        tokens=tokens,
        seconds=seconds * max(1.0, slowdown),
        disk_bytes=tokens * bytes_per_token(info),
        memory_bytes=peak_bytes or child_peak_bytes(info),
        free_disk_bytes=shutil.disk_usage(out_dir).free,
        measured_here=bool(tokens_per_s),
        memory_measured=bool(peak_bytes),
        memory_problem=memory_problem,
        slowdown=max(1.0, slowdown),
    )
