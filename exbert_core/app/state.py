"""The app's shareable state: every control as a typed value, parsed from and written to a URL.

Pure (no streamlit). A link is read in three steps, because what is valid depends on what is
loaded:

1. :func:`from_params` checks syntax: numbers are numbers, names are names. A model given as a
   local path is refused (a link must not make a server open its files).
2. :func:`fit_model` checks layer, heads and masking against the loaded model's
   :class:`~exbert_core.model.loading.ModelInfo`.
3. :func:`fit_tokens` checks masked and selected positions against the sentence's tokens.

Each step returns the corrected state and a list of warnings (one sentence each, saying what was
wrong and what is shown instead); nothing raises for bad input.

URL parameters (all optional)::

    model=minilm  corpus=alice  corpus_build=d099f45e  sentence=The girl ran ...  layer=2  heads=all|none|0,3,7
    masks=9,10  token=9  threshold=90  hide_special=0|1  by=embedding|heads  k=50

and the parameters of single pages (written only by the page that uses them, see
:data:`EXTRA_PARAMS`)::

    view=auto|curves|matrix|heads  image=png|svg  feature=pos|dep|ner  relation=nsubj
    sample=500  compare=sentences|models  sentence_b=...  model_b=smollm2  layer_b=4  token_b=3

Positions (``masks``, ``token``) count every model token, special tokens included, as in the
core API. ``corpus_build`` is the checksum of the corpus's build the link was made with
(:attr:`~exbert_core.corpus.catalog.CorpusEntry.build_id`). ``layer`` runs 1..L: the attention of block L, the embeddings it outputs and the head
contexts inside it (the paper's layer numbering).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode

from exbert_core.corpus import names as corpus_names
from exbert_core.corpus.names import DEFAULT_CORPUS
from exbert_core.limits import MAX_K, MAX_SENTENCE_CHARS
from exbert_core.model.names import DEFAULT_MODEL, OFFLINE_MODELS, resolve_name
from exbert_core.views.labels import clean_piece

DEFAULT_SENTENCE = "The girl ran to a local pub to escape the din of her city."
DEFAULT_LAYER = 2
DEFAULT_THRESHOLD = 90  # percent of each row's attention kept in the curves view
DEFAULT_K = 50
SEARCH_KINDS = ("embedding", "heads")
PARAMS = ("model", "corpus", "corpus_build", "sentence", "layer", "heads", "masks", "token", "threshold",
          "hide_special", "by", "k")
# Parameters of single pages: a page writes the base PARAMS and the extras it uses.
EXTRA_PARAMS = ("view", "image", "feature", "relation", "sample", "compare", "sentence_b", "model_b",
                "layer_b", "token_b")
# The attention view: "auto" is the curves up to LONG_INPUT_TOKENS tokens and the matrix beyond.
ATTENTION_VIEWS = ("auto", "curves", "matrix", "heads")
LONG_INPUT_TOKENS = 64
IMAGE_FORMATS = ("png", "svg")  # what the charts' camera button downloads
FEATURES = ("pos", "dep", "ner")  # the layer sweep's chart and the comparison's summaries
ATLAS_SAMPLES = (100, 250, 500, 1000, 2000)  # corpus sentences the head atlas reads
DEFAULT_ATLAS_SAMPLE = 1000
COMPARE_MODES = ("sentences", "models")
DEFAULT_SENTENCE_B = "The prisoner planned a daring escape from the old castle."
# Hub ids shown in the model list after the offline models (they need internet).
SUGGESTED_HUB_MODELS = ("bert-base-uncased", "distilbert-base-uncased", "roberta-base", "gpt2")

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")
_BUILD_ID = re.compile(r"[0-9a-f]{8}")  # catalog.BUILD_ID_CHARS hex digits
_RELATION = re.compile(r"[A-Za-z][A-Za-z:_]{0,31}( \(head->dep\))?")  # head atlas labels
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class AppState:
    """Every control of the app. ``layer`` and ``token`` are None until fitted to a model and a
    sentence (then the defaults are filled in); ``heads`` None means all heads, () none."""

    model: str = DEFAULT_MODEL
    corpus: str = DEFAULT_CORPUS
    corpus_build: str | None = None  # the build of ``corpus`` the view was made with; None until known
    sentence: str = DEFAULT_SENTENCE
    layer: int | None = None
    heads: tuple[int, ...] | None = None
    masks: tuple[int, ...] = ()
    token: int | None = None
    threshold: int = DEFAULT_THRESHOLD
    hide_special: bool = False
    by: str = "embedding"
    k: int = DEFAULT_K
    # Single pages (see EXTRA_PARAMS). ``relation`` None: the atlas's most frequent relation;
    # ``model_b`` None: the other offline model; ``layer_b`` / ``token_b`` None until fitted.
    view: str = "auto"
    image: str = "png"
    feature: str = "pos"
    relation: str | None = None
    sample: int = DEFAULT_ATLAS_SAMPLE
    compare: str = "sentences"
    sentence_b: str = DEFAULT_SENTENCE_B
    model_b: str | None = None
    layer_b: int | None = None
    token_b: int | None = None

    def selected_heads(self, n_heads: int) -> tuple[int, ...]:
        """The selected heads as explicit indices."""
        return tuple(range(n_heads)) if self.heads is None else self.heads


# ---------------------------------------------------------------------------------------------
# Step 1: syntax


def from_params(params: Mapping[str, str | Sequence[str]]) -> tuple[AppState, list[str]]:
    """Parse URL query parameters; unknown parameters are ignored, bad values replaced by
    defaults with a warning."""
    warnings: list[str] = []
    values = {key: _last(value) for key, value in params.items()}
    state = AppState()
    fields: dict[str, object] = {}

    if "model" in values:
        model, problem = check_model_name(values["model"])
        fields["model"] = model
        if problem:
            warnings.append(problem)
    if "corpus" in values:
        name = values["corpus"].strip()
        if corpus_names.is_valid(name):
            fields["corpus"] = name
        else:
            warnings.append(f"The link's corpus {_show(name)} is not a corpus name (letters, digits, "
                            f"'-' or '_'); showing corpus '{DEFAULT_CORPUS}'.")
    if "corpus_build" in values and values["corpus_build"].strip():
        build = values["corpus_build"].strip().lower()
        if _BUILD_ID.fullmatch(build):
            fields["corpus_build"] = build
        else:
            warnings.append(f"The link's corpus_build {_show(values['corpus_build'])} is not a build "
                            "checksum (8 hex digits); it was ignored.")
    for key in ("sentence", "sentence_b"):
        if key in values:
            sentence = " ".join(values[key].split())
            if not sentence:
                warnings.append(f"The link's {key} is empty; showing the example sentence.")
            elif len(sentence) > MAX_SENTENCE_CHARS:
                warnings.append(f"The link's {key} is longer than {MAX_SENTENCE_CHARS} characters; "
                                "it was cut.")
                fields[key] = sentence[:MAX_SENTENCE_CHARS]
            else:
                fields[key] = sentence
    if "layer" in values:
        layer = _int(values["layer"])
        if layer is None or layer < 0:
            warnings.append(f"The link's layer {_show(values['layer'])} is not a layer number; "
                            "showing the default layer.")
        else:
            fields["layer"] = layer
    if "heads" in values:
        heads = parse_heads(values["heads"])
        if heads is False:
            warnings.append(f"The link's heads {_show(values['heads'])} are not 'all', 'none' or "
                            "numbers like 0,3,7; showing all heads.")
        else:
            fields["heads"] = heads
    if "masks" in values:
        masks = _int_list(values["masks"])
        if masks is None:
            warnings.append(f"The link's masks {_show(values['masks'])} are not token positions "
                            "like 9,10; no token is masked.")
        else:
            fields["masks"] = tuple(sorted(set(masks)))
    if "token" in values:
        token = _int(values["token"])
        if token is None or token < 0:
            warnings.append(f"The link's token {_show(values['token'])} is not a token position; "
                            "the default token is selected.")
        else:
            fields["token"] = token
    if "threshold" in values:
        threshold = _int(values["threshold"].rstrip("%"))
        if threshold is None or not 1 <= threshold <= 100:
            warnings.append(f"The link's threshold {_show(values['threshold'])} is not a "
                            f"percentage from 1 to 100; using {DEFAULT_THRESHOLD}.")
        else:
            fields["threshold"] = threshold
    if "hide_special" in values:
        flag = values["hide_special"].strip().lower()
        if flag in _TRUE or flag in _FALSE:
            fields["hide_special"] = flag in _TRUE
        else:
            warnings.append(f"The link's hide_special {_show(values['hide_special'])} is not 0 or 1; "
                            "special tokens are shown.")
    if "by" in values:
        by = {"token": "embedding", "embeddings": "embedding", "head": "heads"}.get(
            values["by"].strip().lower(), values["by"].strip().lower())
        if by in SEARCH_KINDS:
            fields["by"] = by
        else:
            warnings.append(f"The link's search kind {_show(values['by'])} is not 'embedding' or "
                            "'heads'; searching by token embedding.")
    if "k" in values:
        k = _int(values["k"])
        if k is None or not 1 <= k <= MAX_K:
            warnings.append(f"The link's k {_show(values['k'])} is not a number from 1 to {MAX_K}; "
                            f"showing {DEFAULT_K} matches.")
        else:
            fields["k"] = k
    fields.update(_page_params(values, warnings))
    return replace(state, **fields), warnings


def _page_params(values: Mapping[str, str], warnings: list[str]) -> dict[str, object]:
    """The parameters of single pages (:data:`EXTRA_PARAMS`), checked for syntax."""
    fields: dict[str, object] = {}
    choices = {
        "view": (ATTENTION_VIEWS, {"heatmap": "matrix", "heat map": "matrix", "grid": "heads"},
                 "attention view", "choosing by the input's length"),
        "image": (IMAGE_FORMATS, {}, "image format", "charts download as PNG"),
        "feature": (FEATURES, {}, "feature", "showing part of speech"),
        "compare": (COMPARE_MODES, {"sentence": "sentences", "model": "models"}, "comparison",
                    "comparing two sentences"),
    }
    for key, (allowed, aliases, what, fallback) in choices.items():
        if key in values:
            value = values[key].strip().lower()
            value = aliases.get(value, value)
            if value in allowed:
                fields[key] = value
            else:
                warnings.append(f"The link's {what} {_show(values[key])} is not "
                                f"{_or(allowed)}; {fallback}.")
    if "relation" in values:
        relation = values["relation"].strip()
        if _RELATION.fullmatch(relation):
            fields["relation"] = relation
        elif relation:
            warnings.append(f"The link's relation {_show(relation)} is not a dependency label (like "
                            "nsubj); showing the most frequent relation.")
    if "sample" in values:
        sample = _int(values["sample"])
        if sample in ATLAS_SAMPLES:
            fields["sample"] = sample
        else:
            warnings.append(f"The link's sample {_show(values['sample'])} is not one of "
                            f"{', '.join(map(str, ATLAS_SAMPLES))} sentences; reading "
                            f"{DEFAULT_ATLAS_SAMPLE}.")
    if "model_b" in values and values["model_b"].strip():
        model, problem = check_model_name(values["model_b"])
        fields["model_b"] = model
        if problem:
            warnings.append(problem.replace("Model ", "The second model ", 1))
    for key, what in (("layer_b", "layer"), ("token_b", "token position")):
        if key in values and values[key].strip():
            number = _int(values[key])
            if number is None or number < 0:
                warnings.append(f"The link's {key} {_show(values[key])} is not a {what}; "
                                f"the default is used.")
            else:
                fields[key] = number
    return fields


def check_model_name(text: str) -> tuple[str, str | None]:
    """A model name usable from the UI or a link: an offline short name or a hub id.

    Returns (name, problem): a refused name gives the default model and a sentence saying why.
    Local paths are refused here (the core accepts them, but a link or a text box on a shared
    server must not make it read its disk).
    """
    name = (text or "").strip()
    if not name:
        return DEFAULT_MODEL, None
    if name.startswith((".", "/", "~", "\\")) or ".." in name or "\\" in name or ":" in name:
        return DEFAULT_MODEL, (f"Model {_show(name)} looks like a file path; the app opens only "
                               f"hub ids (like bert-base-uncased) and the offline models "
                               f"{', '.join(OFFLINE_MODELS)}. Showing '{DEFAULT_MODEL}'.")
    if not _HUB_ID.fullmatch(name):
        return DEFAULT_MODEL, (f"Model {_show(name)} is not a model id (like bert-base-uncased or "
                               f"org/name); showing '{DEFAULT_MODEL}'.")
    return resolve_name(name), None


def parse_heads(text: str) -> tuple[int, ...] | None | bool:
    """``all`` -> None, ``none`` -> (), ``0,3`` -> (0, 3); False when malformed."""
    text = text.strip().lower()
    if text in ("all", "*", ""):
        return None
    if text in ("none", "-"):
        return ()
    heads = _int_list(text)
    if heads is None or any(h < 0 for h in heads):
        return False
    return tuple(sorted(set(heads)))


# ---------------------------------------------------------------------------------------------
# Step 2: the model


def default_layer(n_layers: int) -> int:
    return min(DEFAULT_LAYER, n_layers)


def fit_model(state: AppState, *, layers: int, heads: int, can_mask: bool,
              model_label: str | None = None) -> tuple[AppState, list[str]]:
    """Clamp layer, heads and masks to a model with ``layers`` x ``heads`` and say what changed.

    ``can_mask`` is whether the tokenizer has a mask token (causal models have none).
    """
    name = model_label or state.model
    warnings: list[str] = []
    fields: dict[str, object] = {}
    if state.layer is None:
        fields["layer"] = default_layer(layers)
    elif not 1 <= state.layer <= layers:
        fields["layer"] = default_layer(layers)
        warnings.append(f"Layer {state.layer} does not exist in {name} (layers 1-{layers}); "
                        f"showing layer {fields['layer']}.")
    if state.heads is not None:
        valid = tuple(h for h in state.heads if 0 <= h < heads)
        if len(valid) != len(state.heads):
            bad = [h for h in state.heads if h not in valid]
            warnings.append(f"{name} has heads 0-{heads - 1}; head{'s' if len(bad) > 1 else ''} "
                            f"{', '.join(map(str, bad))} ignored.")
            if not valid and state.heads:
                valid = tuple(range(heads))
        fields["heads"] = None if len(valid) == heads else valid
    if state.masks and not can_mask:
        warnings.append(f"{name} reads left to right and has no mask token, so tokens cannot be "
                        "masked; the masks were removed.")
        fields["masks"] = ()
    return replace(state, **fields), warnings


# ---------------------------------------------------------------------------------------------
# Step 3: the sentence's tokens


def default_token(texts: Sequence[str], special: Sequence[bool]) -> int | None:
    """The paper's "escape" when the sentence has it, else the first non-special token."""
    candidates = [i for i, s in enumerate(special) if not s]
    for i in candidates:
        if clean_piece(texts[i]).lower() == "escape":
            return i
    return candidates[0] if candidates else None


def fit_tokens(state: AppState, texts: Sequence[str], special: Sequence[bool]) -> tuple[AppState, list[str]]:
    """Check masked and selected positions against a sentence's tokens (``texts``, ``special``
    flags per position). Masks must be non-special positions; the selected token too."""
    warnings: list[str] = []
    n = len(texts)
    ok = [i for i in range(n) if not special[i]]
    masks = tuple(m for m in state.masks if 0 <= m < n and not special[m])
    if masks != state.masks:
        bad = [m for m in state.masks if m not in masks]
        warnings.append(f"Mask position{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} "
                        f"{'are' if len(bad) > 1 else 'is'} not a word token of this sentence "
                        f"(positions {_ranges(ok)}); {'they were' if len(bad) > 1 else 'it was'} "
                        "ignored.")
    token = state.token
    if token is None or not (0 <= token < n and not special[token]):
        if token is not None:
            warnings.append(f"Token position {token} is not a word token of this sentence "
                            f"(positions {_ranges(ok)}); the default token is selected.")
        token = default_token(texts, special)
    return replace(state, masks=masks, token=token), warnings


def fit_corpus_build(state: AppState, current: str | None, *, from_link: bool) -> tuple[AppState, list[str]]:
    """Record the build of the selected corpus (``current``: its checksum; None while it is not
    built). When a link is opened (``from_link``) with another build, say so: the corpus was
    rebuilt since the link was made, so its matches may differ from what the link showed."""
    if current is None or state.corpus_build == current:
        return state, []
    warnings = []
    if from_link and state.corpus_build is not None:
        warnings.append(f"Corpus '{state.corpus}' was rebuilt since this link was made (the link has build "
                        f"{state.corpus_build}, this server has {current}), so its matches and summaries "
                        "may differ from what the link showed.")
    return replace(state, corpus_build=current), warnings


def fit_relation(state: AppState, relations: Sequence[str]) -> tuple[AppState, list[str]]:
    """The head atlas's relation: one of ``relations`` (most frequent first); else the first."""
    if state.relation in relations or not relations:
        return state, []
    warnings = []
    if state.relation is not None:
        warnings.append(f"The relation {_show(state.relation)} was not seen often enough in this "
                        f"sample to be measured; showing '{relations[0]}'.")
    return replace(state, relation=relations[0]), warnings


def other_model(model: str) -> str:
    """The default second model of a comparison: the other offline model."""
    others = [name for name in OFFLINE_MODELS if name != model]
    return others[0] if others else DEFAULT_MODEL


def fit_side_b(state: AppState, *, layers: int, texts: Sequence[str], special: Sequence[bool],
               model_label: str | None = None) -> tuple[AppState, list[str]]:
    """Check the comparison's second side against its model (``layers``) and its tokens (``texts``,
    ``special`` flags). A bad ``layer_b`` or ``token_b`` becomes None: the page then follows the
    first side (its layer at the same depth, its token in the second sentence)."""
    name = model_label or "the second model"
    warnings: list[str] = []
    fields: dict[str, object] = {}
    if state.layer_b is not None and not 1 <= state.layer_b <= layers:
        warnings.append(f"Layer {state.layer_b} does not exist in {name} (layers 1-{layers}); showing "
                        "the layer at the depth of the first side's.")
        fields["layer_b"] = None
    token = state.token_b
    if token is not None and not (0 <= token < len(texts) and not special[token]):
        ok = [i for i in range(len(texts)) if not special[i]]
        warnings.append(f"Token position {token} is not a word token of the second side (positions "
                        f"{_ranges(ok)}); the first side's token is compared.")
        fields["token_b"] = None
    return replace(state, **fields), warnings


# ---------------------------------------------------------------------------------------------
# Writing


def to_params(state: AppState, extra: Sequence[str] = ()) -> dict[str, str]:
    """Query parameters that reproduce ``state`` (every control, so a link keeps its meaning even
    if defaults change), with the single-page parameters named in ``extra``."""
    params = {
        "model": state.model,
        "corpus": state.corpus,
        "corpus_build": state.corpus_build,
        "sentence": state.sentence,
        "layer": None if state.layer is None else str(state.layer),
        "heads": format_heads(state.heads),
        "masks": ",".join(map(str, state.masks)),
        "token": None if state.token is None else str(state.token),
        "threshold": str(state.threshold),
        "hide_special": "1" if state.hide_special else "0",
        "by": state.by,
        "k": str(state.k),
    }
    pages = {
        "view": state.view,
        "image": state.image,
        "feature": state.feature,
        "relation": state.relation or "",
        "sample": str(state.sample),
        "compare": state.compare,
        "sentence_b": state.sentence_b,
        "model_b": state.model_b or other_model(state.model),
        "layer_b": None if state.layer_b is None else str(state.layer_b),
        "token_b": None if state.token_b is None else str(state.token_b),
    }
    unknown = set(extra) - set(pages)
    if unknown:
        raise ValueError(f"unknown page parameters {sorted(unknown)}; see EXTRA_PARAMS")
    params.update({key: pages[key] for key in EXTRA_PARAMS if key in extra})
    return {key: value for key, value in params.items() if value is not None}


def format_heads(heads: tuple[int, ...] | None) -> str:
    if heads is None:
        return "all"
    return ",".join(map(str, heads)) if heads else "none"


def share_url(base_url: str | None, params: Mapping[str, str]) -> str:
    """``base_url?params`` (spaces as %20, so the link survives chat apps); a relative link
    without a base."""
    query = urlencode(dict(params), quote_via=quote, safe=",")
    return f"{(base_url or '').split('?')[0]}?{query}"


def _last(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return str(value[-1]) if len(value) else ""


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"[+-]?\d{1,6}", text) else None


def _int_list(text: str) -> list[int] | None:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    values = [_int(p) for p in parts]
    if any(v is None or v < 0 for v in values):
        return None
    return [v for v in values if v is not None]


def _ranges(values: Sequence[int]) -> str:
    if not values:
        return "none"
    return f"{values[0]}-{values[-1]}" if list(values) == list(range(values[0], values[-1] + 1)) else ", ".join(map(str, values))


def _or(choices: Sequence[str]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _show(text: str, limit: int = 40) -> str:
    """A user-given value quoted for a message, shortened."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
