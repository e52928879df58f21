"""What visitors of a shared app may do to the corpora on disk (no streamlit): the operator's two
settings, the names uploads are built under, and the disk quota.

- ``EXBERT_ALLOW_REPLACE=1``: visitors may replace an existing corpus (rebuild it under its
  name). Unset (the default), existing corpora are read-only from the app: a link keeps showing
  what its author saw. Building a *missing* corpus is always allowed (the first run builds the
  default corpus by itself); the command line is not bound by this setting.
- ``EXBERT_CORPUS_QUOTA_MB`` (default 2048): the disk all corpora may use before the app refuses
  a new build from the Corpora page (the built-in corpora of the offered models are exempt).

An upload is built under ``<name>-<digest>``, the digest of the model and the text: no visitor can
choose a name that another visitor's corpus already has, and the same text uploaded twice is
built once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from exbert_core.corpus.build import build_memory, estimate
from exbert_core.corpus.build.pipeline import CHARS_PER_TOKEN
from exbert_core.corpus.format import names
from exbert_core.corpus.search import catalog
from exbert_core.errors import BuildError
from exbert_core.model.loading import ModelInfo
from exbert_core.paths import corpora_dir
from exbert_core.progress import busy_factor

ALLOW_REPLACE_ENV = "EXBERT_ALLOW_REPLACE"
QUOTA_ENV = "EXBERT_CORPUS_QUOTA_MB"
DEFAULT_QUOTA_MB = 2000
MB = 1_000_000  # the app's sizes are decimal megabytes, as on the Corpora page and in the estimates
DIGEST_CHARS = 10  # 40 bits: names of different texts do not meet by chance
_TRUE = ("1", "true", "yes", "on")


def allow_replace() -> bool:
    """Whether the operator lets visitors replace existing corpora (``EXBERT_ALLOW_REPLACE``)."""
    return os.environ.get(ALLOW_REPLACE_ENV, "").strip().lower() in _TRUE


def quota_bytes() -> int:
    """The disk all corpora may use (``EXBERT_CORPUS_QUOTA_MB``, in MB); a bad value is an error
    that names the setting."""
    raw = os.environ.get(QUOTA_ENV, "").strip()
    if not raw:
        return DEFAULT_QUOTA_MB * MB
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < 2**40:  # also nan and inf
        raise BuildError(f"{QUOTA_ENV}={raw!r} is not a size in MB; set it to a number such as 2000.")
    return int(megabytes * MB)


def used_bytes(folder: Path | None = None) -> int:
    """Bytes of every file under the corpora folder (partial builds included)."""
    total = 0
    for path in (folder or corpora_dir()).rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # removed while walking (a build swapping folders)
            continue
    return total


def upload_name(base: str, text: str, model: str) -> str:
    """The corpus name of an uploaded ``text`` built with ``model``: ``base`` (made a valid name)
    and a digest of model and text, e.g. ``my-notes-3f9a0c51d2``."""
    digest = hashlib.sha256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    stem = names.slug(base)[: names.MAX_NAME_LENGTH - DIGEST_CHARS - 1].strip("-") or "upload"
    return f"{stem}-{digest}"


def bytes_per_token(info: ModelInfo, entries: Iterable[catalog.CorpusEntry] | None = None) -> float:
    """Disk per indexed token for ``info``'s model: measured on the corpora of that model on this
    server when there are some, else from the model's size (every layer stored: 6-bit token
    embeddings and 8-bit head embeddings)."""
    same = [e for e in (catalog.entries() if entries is None else entries) if e.fits(info.name) and e.tokens]
    if same:
        return sum(e.bytes for e in same) / sum(e.tokens for e in same)
    return estimate.bytes_per_token(info)


def tokens_per_s(info: ModelInfo, entries: Iterable[catalog.CorpusEntry] | None = None) -> float | None:
    """The build rate of ``info``'s model measured on this server (its corpora's tokens over their
    build times, from their manifests), or None before the first build with it."""
    same = [e for e in (catalog.entries() if entries is None else entries)
            if e.fits(info.name) and e.tokens and e.manifest.get("build_seconds")]
    seconds = sum(float(e.manifest["build_seconds"]) for e in same)
    return sum(e.tokens for e in same) / seconds if same and seconds > 0 else None


def plan(info: ModelInfo, characters: int) -> estimate.BuildEstimate:
    """What building ``characters`` of text with ``info``'s model will take on this server: time
    and memory from this server's own builds with the model when there are some, the time
    stretched by its current load; refused when its memory would not fit beside the server even
    with no other build running."""
    peak = build_memory.measured_peak(info.name)
    problem = build_memory.too_big(peak or estimate.child_peak_bytes(info))
    return estimate.estimate(info, characters, corpora_dir(), tokens_per_s=tokens_per_s(info), peak_bytes=peak,
                             memory_problem=problem, slowdown=busy_factor())


def estimated_bytes(characters: int, info: ModelInfo) -> int:
    """Disk a corpus of a text of ``characters`` characters takes with ``info``'s model."""
    return int(characters / CHARS_PER_TOKEN * bytes_per_token(info))


def check_build(name: str, *, exists: bool, replace: bool, characters: int, info: ModelInfo,
                reserved: int = 0, quota: bool = True) -> int:
    """Whether a visitor may build corpus ``name`` (``exists``: it is on disk; ``replace``: the
    visitor asked to replace it) from a text of ``characters`` characters; ``reserved``: bytes
    that builds still running will write. Returns the estimated bytes; raises BuildError saying
    why not and what to do."""
    reason = names.problem(name)
    if reason:
        raise BuildError(reason)
    if exists and not (replace and allow_replace()):
        if allow_replace():
            raise BuildError(f"A corpus named '{name}' exists. Tick “Replace it” to rebuild it, or pick another name.")
        # Said to a visitor: what to do, not the server's settings (those are in the README).
        raise BuildError(f"A corpus named '{name}' exists, and this server keeps existing corpora as they are "
                         "(links to them must keep showing what their authors saw). Pick another name.")
    problem = plan(info, characters).problem  # memory beside the server, free disk
    if problem:
        raise BuildError(problem)
    needed = estimated_bytes(characters, info)
    if quota:
        limit, used = quota_bytes(), used_bytes() + reserved
        if used + needed > limit:
            raise BuildError(
                f"This corpus would take about {_mb(needed)} of disk, and the corpora on this server "
                f"already use {_mb(used)} of the {_mb(limit)} this server allows. Use a shorter text.")
    return needed


def _mb(size: float) -> str:
    return f"{size / MB:,.0f} MB"
