"""Every error the core raises for bad input, damaged files or missing resources (a leaf module:
it imports nothing of the project).

Each message says what to do. Front ends catch :data:`USER_ERRORS` (every subclass of
:class:`ExbertError`) and show the message; anything else is a bug and may surface.
"""

from __future__ import annotations


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


USER_ERRORS: tuple[type[Exception], ...] = (ExbertError,)
