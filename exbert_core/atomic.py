"""Writing files and folders so that a reader never sees a half-written one (a leaf module).

Files are written beside their final name and renamed into place (``os.replace`` is atomic on
one file system); folders are built under a partial name and swapped in by :func:`replace_dir`.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

_swap_lock = threading.Lock()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary sibling, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def replace_dir(partial: Path, final: Path) -> None:
    """Move the finished folder ``partial`` to ``final``; an existing ``final`` is removed only
    after the new one is in place. Concurrent swaps of one name in this process run one after
    the other (swaps across processes are serialised by the caller's file lock)."""
    with _swap_lock:
        old = final.with_name(f"{final.name}.old-{uuid.uuid4().hex[:8]}")
        if final.exists():
            final.rename(old)
        try:
            partial.rename(final)
        except OSError:
            if old.exists() and not final.exists():
                old.rename(final)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)
