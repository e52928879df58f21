"""Joining a Ray cluster (or starting a local one), once per process: the build's Ray Data
pipeline and the search's shard actors both run on it. The project's package travels to the
workers through Ray's runtime environment, with the environment variables that locate data and
bound memory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # exbert_core/
_ENV_KEYS = ("EXBERT_DATA_DIR", "HF_HUB_OFFLINE", "EXBERT_MEMORY_BUDGET", "EXBERT_HUB_MODELS", "HF_HOME",
             "XDG_CACHE_HOME")


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (``num_cpus`` CPUs); once per process."""
    import ray

    if ray.is_initialized():
        return
    env = {key: os.environ[key] for key in _ENV_KEYS if key in os.environ}
    env["TOKENIZERS_PARALLELISM"] = "false"
    kwargs: dict = {"runtime_env": {"py_modules": [str(PACKAGE)], "env_vars": env},
                    "include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, object_store_memory=256 * 2**20, **kwargs)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # progress goes through our own Progress steps
    logging.getLogger("ray.data").setLevel(logging.WARNING)
