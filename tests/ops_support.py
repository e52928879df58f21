"""A fresh server's data dir for the tests of background builds: no corpus yet, and an `alice`
source that is the first paragraphs of the real one (so the real first-run build takes seconds,
not minutes; the model and spaCy are the real ones)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from unittest import mock
from pathlib import Path

from exbert_core import paths
from exbert_core.corpus.build import sources


def make_fresh_data_dir(root: Path, characters: int) -> Path:
    """``root`` as a data dir with an empty ``corpora/``, ``sources/alice.txt`` holding the first
    paragraphs of Alice (at least ``characters`` characters; Alice again from its start past its
    end) and the real ``models/`` linked."""
    text = sources.fetch_source("alice").read_text(encoding="utf-8")
    paragraphs, kept, size = text.split("\n\n"), [], 0
    while size < characters:
        for paragraph in paragraphs:
            kept.append(paragraph)
            size += len(paragraph)
            if size >= characters:
                break
    (root / "corpora").mkdir(parents=True)
    (root / "sources").mkdir()
    (root / "sources" / "alice.txt").write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    models = paths.data_dir() / "models"
    models.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(models, target_is_directory=True)
    return root


@contextlib.contextmanager
def environment(root: Path, **extra: str) -> Iterator[Path]:
    """The app's environment with ``root`` as data dir (the hub off, ``extra`` variables set)."""
    wanted = {"EXBERT_DATA_DIR": str(root), "HF_HUB_OFFLINE": "1", **extra}
    with mock.patch.dict(os.environ, wanted):
        yield root
