"""Where models and corpora are cached on disk: one setting for the whole tool."""

from __future__ import annotations

import os
from pathlib import Path

from exbert_core.errors import disk_error

DATA_DIR_ENV = "EXBERT_DATA_DIR"


def data_dir() -> Path:
    """The data directory: ``$EXBERT_DATA_DIR`` or ``~/.cache/exbert-streamlit``.

    Created on first use. Models converted for offline use live under ``models/``,
    fetched source texts under ``sources/`` and built corpora under ``corpora/``.
    """
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        path = Path(root).expanduser()
    else:
        cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(cache_home) / "exbert-streamlit"
    _make(path)
    return path


def _make(path: Path) -> None:
    """Create folder ``path``; a read-only or full disk is a DiskError naming the setting to change."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = disk_error(err, f"the data folder ({DATA_DIR_ENV})", path)
        if problem is None:
            raise
        raise problem from err


def _subdir(name: str) -> Path:
    path = data_dir() / name
    _make(path)
    return path


def models_dir() -> Path:
    """Folder for model files converted for offline use (e.g. SmolLM2 as safetensors)."""
    return _subdir("models")


def sources_dir() -> Path:
    """Folder for fetched corpus source texts (never committed to the repository)."""
    return _subdir("sources")


def corpora_dir() -> Path:
    """Folder holding one sub-folder per built corpus."""
    return _subdir("corpora")
