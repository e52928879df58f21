"""Shared set-up for the app tests (AppTest pages and the browser): an isolated data dir and
the default corpus, built once per test session whichever module needs it first."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from unittest import mock
from pathlib import Path

from exbert_core import paths

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@functools.cache
def app_data_dir() -> Path:
    """A data dir of the app tests' own: an empty ``corpora/`` (builds never touch the user's
    corpora), and the configured data dir's ``sources/`` and ``models/`` shared through symlinks
    (fetched texts and the converted SmolLM2 are large and only read here).

    ``$EXBERT_APP_TEST_DIR`` names a directory to reuse between runs instead (its corpora are
    kept: a quicker local loop; the tests then find the default corpus built).
    """
    base = paths.data_dir()
    reuse = os.environ.get("EXBERT_APP_TEST_DIR")
    if reuse:
        root = Path(reuse).expanduser()
        (root / "corpora").mkdir(parents=True, exist_ok=True)
        for sub in ("sources", "models"):
            if not (root / sub).exists():
                (base / sub).mkdir(parents=True, exist_ok=True)
                (root / sub).symlink_to(base / sub, target_is_directory=True)
        return root
    root = Path(tempfile.mkdtemp(prefix="exbert-app-tests-"))
    for sub in ("sources", "models"):
        target = base / sub
        target.mkdir(parents=True, exist_ok=True)
        (root / sub).symlink_to(target, target_is_directory=True)
    (root / "corpora").mkdir()
    atexit.register(shutil.rmtree, root, True)  # unlinks the symlinks, never follows them
    return root


@contextlib.contextmanager
def app_environment() -> Iterator[Path]:
    """The environment the app runs in during the tests: the isolated data dir, and the hub
    switched off so that an unknown model fails fast and the same way everywhere."""
    wanted = {"EXBERT_DATA_DIR": str(app_data_dir()), "HF_HUB_OFFLINE": "1"}
    with mock.patch.dict(os.environ, wanted):
        yield app_data_dir()


def alice_dir() -> Path:
    return app_data_dir() / "corpora" / "alice"


def ensure_alice() -> Path:
    """The default corpus in the app data dir. The AppTest module builds it through the app's
    first-run path; when it has not run (a module run alone), build it here with the core."""
    if not (alice_dir() / "manifest.json").is_file():
        from exbert_core.corpus.build import pipeline as build, sources
        from exbert_core.model import loading

        with app_environment():
            text = sources.fetch_source("alice").read_text(encoding="utf-8")
            build.build(text, "alice", app_data_dir() / "corpora", loading.load("minilm"),
                               source={"name": "alice"})
    return alice_dir()
