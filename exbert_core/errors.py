"""Every error the core raises for bad input, damaged files or missing resources (a leaf module:
it imports nothing of the project).

Each message says what to do. Front ends catch :data:`USER_ERRORS` (every subclass of
:class:`ExbertError`) and show the message; anything else is a bug and may surface.
"""

from __future__ import annotations

import errno


class ExbertError(Exception):
    """Base of the errors whose message is meant for the user."""


class InputError(ExbertError, ValueError):
    """A sentence, a position, a layer, heads or an option cannot be used; the message says why."""


class ModelLoadError(ExbertError, RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


class SourceUnavailable(ExbertError, RuntimeError):
    """A named source text could not be fetched; the message says what failed and what to do."""


class InvalidText(ExbertError, ValueError):
    """A user-supplied text was rejected; the message says why and how to fix it."""


class CorpusError(ExbertError, RuntimeError):
    """A corpus is missing, damaged or does not fit the model; the message names the fix."""


class BuildError(ExbertError, RuntimeError):
    """A corpus could not be built; the message says why."""


class DiskError(ExbertError, RuntimeError):
    """A file or folder could not be written: the disk is read-only, not ours to write, or full."""


_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_error(err: OSError, what: str, folder: object, *, again: str = "Free some space and try again.") -> DiskError | None:
    """The one-line :class:`DiskError` for ``err`` when it is a read-only or full disk, met while
    writing ``what`` (e.g. "corpus 'alice'") into ``folder`` (``again``: what to do once space is
    freed); None for any other error (a bug, left to surface). Arrow reports a full disk without
    an errno, in its message."""
    code = err.errno
    if code is None and "No space left on device" in str(err):
        code = errno.ENOSPC
    if code in _NOT_WRITABLE:
        where = f"{err.filename}" if err.filename else str(folder)
        return DiskError(f"Cannot write {what}: {where} is not writable ({err.strerror or 'permission denied'}). "
                         f"Give a folder you can write: --out on the command line, or set EXBERT_DATA_DIR.")
    if code in _FULL:
        return DiskError(f"Cannot write {what} in {folder}: the disk is full ({err.strerror or 'no space left'}). "
                         f"{again}")
    return None


USER_ERRORS: tuple[type[Exception], ...] = (ExbertError,)
