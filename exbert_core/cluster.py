"""Joining a Ray cluster (or starting a local one), once per process: the build's Ray Data
pipeline and the search's shard actors both run on it. The project's package travels to the
workers through Ray's runtime environment, with the environment variables that locate data and
bound memory.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from exbert_core.errors import InputError

PACKAGE = Path(__file__).resolve().parent  # exbert_core/
_ENV_KEYS = ("EXBERT_DATA_DIR", "HF_HUB_OFFLINE", "EXBERT_MEMORY_BUDGET", "EXBERT_HUB_MODELS", "HF_HOME",
             "XDG_CACHE_HOME")


ADDRESS_TIMEOUT_S = 5.0


def check_address(address: str | None) -> None:
    """Raise InputError unless something answers at ``address`` (``host:port`` or
    ``ray://host:port``; ``auto`` and none are Ray's own to find). Ray itself retries an address
    where nothing listens for minutes on end (measured: still retrying after 5 minutes)."""
    if not address or address == "auto":
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise InputError(f"The Ray address {address!r} is not host:port or ray://host:port.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_S):
            pass
    except OSError as err:
        raise InputError(f"Nothing answers at the Ray address {address} ({err.strerror or err}). Start the "
                         "cluster there (ray start --head), or leave out --address to run on this machine.") from err


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (``num_cpus`` CPUs); once per process."""
    import ray

    if ray.is_initialized():
        return
    check_address(address)
    env = {key: os.environ[key] for key in _ENV_KEYS if key in os.environ}
    env["TOKENIZERS_PARALLELISM"] = "false"
    kwargs: dict = {"runtime_env": {"py_modules": [str(PACKAGE)], "env_vars": env},
                    "include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as err:  # "auto" with no cluster running, a cluster that went away
            raise InputError(f"No Ray cluster at {address!r} ({str(err).splitlines()[0][:200]}).") from err
    else:
        ray.init(num_cpus=num_cpus, object_store_memory=256 * 2**20, **kwargs)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # progress goes through our own Progress steps
    logging.getLogger("ray.data").setLevel(logging.WARNING)
