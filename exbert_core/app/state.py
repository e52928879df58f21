"""The app's shareable state, declared once.

Each field of :class:`AppState` is one row of the table of URL parameters: its name (the URL
key), type and default, and in its :class:`Param` how a link's text is parsed, what is shown
instead of a refused value, which pages' links carry it, and how it is checked against what is
loaded (the model, the sentence's tokens, the head atlas's relations). Everything else is
derived from that table:

- :func:`from_params`: a link -> (state, warnings); syntax only, nothing raises;
- :func:`fit`: the state checked against :class:`ModelFacts`, :class:`TokenFacts` or
  :class:`Relations` (of the first or the second side of a comparison) -> (state, warnings);
- :func:`to_params` / :func:`share_url`: state -> link; :func:`page_params`: a page's own keys;
- the widgets' initial values are the state's fields (``app_pages/common/state.py``).

Adding a URL parameter is one field here and the page that draws its widget.

Why not Streamlit's ``bind="query-params"``: a bound widget drops its value from the URL when it
equals the default (a link would change meaning when a default changes) and silently drops a
value it cannot use (a reader must be told why the view differs from the link); values that
depend on the loaded model or the sentence (layer, heads, masks, token) can only be checked after
loading, which a widget binding cannot express; and a control a page does not draw would lose
its value on a page switch. So the URL is read and written here, from the table.

Pure and light (no streamlit, torch, faiss or spaCy). Positions (``masks``, ``token``) count
every model token, special tokens included, as in the core API. ``layer`` runs 1..L: the
attention of block L, the embeddings it outputs and the head contexts inside it (the paper's
numbering, :func:`exbert_core.model.selection.layer_range` of ``heads``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import quote, urlencode

from exbert_core.corpus.format import names as corpus_names
from exbert_core.corpus.format.names import DEFAULT_CORPUS
from exbert_core.errors import InputError
from exbert_core.limits import MAX_K, MAX_SENTENCE_CHARS
from exbert_core.model.measure_names import AGGREGATES, DEFAULT_AGGREGATE, DEFAULT_MEASURE, MEASURES
from exbert_core.model.measure_names import LABELS as MEASURE_LABELS
from exbert_core.model.names import DEFAULT_MODEL, OFFLINE_MODELS, resolve_name
from exbert_core.model.selection import Heads, canonical_kind, layer_range
from exbert_core.views.labels import clean_piece  # noqa: F401 (the app's token labels)
from exbert_core.views.tokens import default_token

DEFAULT_SENTENCE = "The girl ran to a local pub to escape the din of her city."
DEFAULT_SENTENCE_B = "The prisoner planned a daring escape from the old castle."
DEFAULT_LAYER = 2
DEFAULT_THRESHOLD = 90  # percent of each row's attention kept in the curves view
DEFAULT_K = 50
DEFAULT_CONTEXT = 1  # tokens shown each side of a match in the match table
MAX_CONTEXT = 10
SEARCH_KINDS = ("embedding", "heads")
# The attention view: "auto" is the curves up to LONG_INPUT_TOKENS tokens and the matrix beyond.
ATTENTION_VIEWS = ("auto", "curves", "matrix", "heads")
LONG_INPUT_TOKENS = 64
IMAGE_FORMATS = ("png", "svg")  # what the charts' camera button downloads
FEATURES = ("pos", "dep", "ner")  # the layer sweep's chart and the comparison's summaries
HISTOGRAMS = ("pos", "dep", "ner", "offset")  # the attention page's summary tabs
RESULT_TABS = ("matches", "summary")
ATLAS_SAMPLES = (100, 250, 500, 1000, 2000)  # corpus sentences the head atlas reads
DEFAULT_ATLAS_SAMPLE = 1000
COMPARE_MODES = ("sentences", "models")
# Hub ids shown in the model list after the offline models (they need internet).
SUGGESTED_HUB_MODELS = ("bert-base-uncased", "distilbert-base-uncased", "roberta-base", "gpt2")
PAGES = ("attention", "model_view", "layers", "head_atlas", "compare", "corpora")

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")
_RELATION = re.compile(r"[A-Za-z][A-Za-z:_]{0,31}( \(head->dep\))?")  # head atlas labels
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


# ---------------------------------------------------------------------------------------------
# What a state is checked against


@dataclass(frozen=True)
class ModelFacts:
    """What a loaded model allows: layers 1..``layers``, heads 0..``heads``-1, masking."""

    name: str
    layers: int
    heads: int
    can_mask: bool  # the tokenizer has a mask token (causal models have none)


@dataclass(frozen=True)
class TokenFacts:
    """A sentence's tokens as the model reads it: each token's text and whether it is special."""

    texts: tuple[str, ...]
    special: tuple[bool, ...]

    @property
    def words(self) -> list[int]:
        """Positions of the word (non-special) tokens."""
        return [i for i, s in enumerate(self.special) if not s]

    def is_word(self, position: int) -> bool:
        return 0 <= position < len(self.texts) and not self.special[position]


@dataclass(frozen=True)
class Relations:
    """The dependency relations a head atlas measured, most frequent first."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class CorpusFacts:
    """The selected corpus as this server has it: its build checksum
    (:attr:`~exbert_core.corpus.search.catalog.CorpusEntry.build_id`; None while it is not built), and
    whether the state comes from a link being opened."""

    name: str
    build: str | None
    from_link: bool


Facts = ModelFacts | TokenFacts | Relations | CorpusFacts
Check = Callable[[Any, Any], tuple[Any, str | None]]  # (value, facts) -> (value, warning)


# ---------------------------------------------------------------------------------------------
# The table


class Refused(ValueError):
    """A link's value cannot be used; the message says why ("is not a layer number")."""


@dataclass(frozen=True)
class Note:
    """A link's value used with a warning (``problem``: "is longer than ...; it was cut")."""

    value: Any
    problem: str


@dataclass(frozen=True)
class Param:
    """How one field of :class:`AppState` travels in a link.

    parse: the link's text -> value (or a :class:`Note`); raises :class:`Refused`.
    instead: what is shown when the link's value is refused (ends the warning).
    write: (value, state) -> the link's text; None leaves the key out of the link.
    pages: the pages whose links carry it (None: every page).
    side: ``a``, or ``b`` for the second side of a comparison (checked against its facts).
    checks: per kind of facts, (value, facts) -> (value, warning or None).
    what: the value's name in warnings (default: the key).
    refused: the value shown instead of a refused one (default: the field's default).
    """

    parse: Callable[[str], Any]
    instead: str
    write: Callable[[Any, Any], str | None] = lambda value, state: str(value)
    pages: tuple[str, ...] | None = None
    side: str = "a"
    checks: Mapping[type, Check] = field(default_factory=dict)
    what: str | None = None
    refused: Any = None


def _param(default: Any, parse: Callable[[str], Any], instead: str, **options: Any) -> Any:
    return field(default=default, metadata={"param": Param(parse, instead, **options)})


# --- parsers (text -> value; Refused says why not) ---------------------------------------------


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"[+-]?\d{1,6}", text) else None


def _count(problem: str, low: int = 0, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = _int(text)
        if number is None or number < low or (high is not None and number > high):
            raise Refused(problem)
        return number

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parameter whose empty value means "unset" (None)."""
    return lambda text: parse(text) if text.strip() else None


def _choice(allowed: Sequence[Any], aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    spelled = ", ".join(f"'{c}'" for c in allowed[:-1]) + f" or '{allowed[-1]}'" if len(allowed) > 1 else f"'{allowed[0]}'"

    def parse(text: str) -> str:
        value = text.strip().lower()
        value = (aliases or {}).get(value, value)
        if value not in allowed:
            raise Refused(f"is not {spelled}")
        return value

    return parse


def _positions(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    values = [_int(p) for p in parts]
    if any(v is None or v < 0 for v in values):
        raise Refused("are not token positions like 9,10")
    return tuple(sorted({v for v in values if v is not None}))


def _heads(text: str) -> Heads:
    try:
        return Heads.parse(text)
    except InputError:
        raise Refused("are not 'all', 'none' or numbers like 0,3,7") from None


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in _TRUE + _FALSE:
        raise Refused("is not 0 or 1")
    return value in _TRUE


def _kind(text: str) -> str:
    kind = canonical_kind(text)
    if kind is None:
        raise Refused("is not 'embedding' or 'heads'")
    return kind


def _corpus(text: str) -> str:
    name = text.strip()
    if not corpus_names.is_valid(name):
        raise Refused("is not a corpus name (letters, digits, '-' or '_')")
    return name


def _sentence(text: str) -> str | Note:
    sentence = " ".join(text.split())
    if not sentence:
        raise Refused("is empty")
    if len(sentence) > MAX_SENTENCE_CHARS:
        return Note(sentence[:MAX_SENTENCE_CHARS], f"is longer than {MAX_SENTENCE_CHARS} characters; it was cut")
    return sentence


def model_problem(name: str) -> str | None:
    """Why ``name`` cannot be opened from the UI or a link, or None: an offline short name or a
    hub id is fine. Local paths are refused (the core accepts them, but a link or a text box on a
    shared server must not make it read its disk)."""
    if name.startswith((".", "/", "~", "\\")) or ".." in name or "\\" in name or ":" in name:
        return (f"looks like a file path; the app opens only hub ids (like bert-base-uncased) and the "
                f"offline models {', '.join(OFFLINE_MODELS)}")
    if not _HUB_ID.fullmatch(name):
        return "is not a model id (like bert-base-uncased or org/name)"
    return None


def _model(text: str) -> str:
    name = text.strip()
    if not name:
        return DEFAULT_MODEL
    problem = model_problem(name)
    if problem:
        raise Refused(problem)
    return resolve_name(name)


def _build_id(text: str) -> str:
    build = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8}", build):
        raise Refused("is not a build checksum (8 hex digits)")
    return build


def _relation(text: str) -> str | None:
    relation = text.strip()
    if not relation:
        return None
    if not _RELATION.fullmatch(relation):
        raise Refused("is not a dependency label (like nsubj)")
    return relation


def _sample(text: str) -> int:
    sample = _int(text)
    if sample not in ATLAS_SAMPLES:
        raise Refused(f"is not one of {', '.join(map(str, ATLAS_SAMPLES))} sentences")
    return sample


# --- checks against what is loaded -------------------------------------------------------------


def default_layer(n_layers: int) -> int:
    return min(DEFAULT_LAYER, n_layers)


def _layer_in(layer: int | None, model: ModelFacts) -> tuple[int, str | None]:
    allowed = layer_range("heads", model.layers)
    if layer is None:
        return default_layer(model.layers), None
    if layer in allowed:
        return layer, None
    shown = default_layer(model.layers)
    return shown, (f"Layer {layer} does not exist in {model.name} (layers {allowed.start}-{allowed.stop - 1}); "
                   f"showing layer {shown}.")


def _heads_in(heads: Heads, model: ModelFacts) -> tuple[Heads, str | None]:
    if heads.indices is None:
        return heads, None
    valid = tuple(h for h in heads.indices if h < model.heads)
    warning = None
    if len(valid) != len(heads.indices):
        bad = [h for h in heads.indices if h not in valid]
        warning = (f"{model.name} has heads 0-{model.heads - 1}; head{'s' if len(bad) > 1 else ''} "
                   f"{', '.join(map(str, bad))} ignored.")
        if not valid:
            return Heads.all(), warning
    chosen = Heads.of(valid)
    return (Heads.all() if chosen.is_all(model.heads) else chosen), warning


def _masks_allowed(masks: tuple[int, ...], model: ModelFacts) -> tuple[tuple[int, ...], str | None]:
    if masks and not model.can_mask:
        return (), (f"{model.name} reads left to right and has no mask token, so tokens cannot be "
                    "masked; the masks were removed.")
    return masks, None


def _masks_on_words(masks: tuple[int, ...], tokens: TokenFacts) -> tuple[tuple[int, ...], str | None]:
    kept = tuple(m for m in masks if tokens.is_word(m))
    if kept == masks:
        return masks, None
    bad = [m for m in masks if m not in kept]
    many = len(bad) > 1
    return kept, (f"Mask position{'s' if many else ''} {', '.join(map(str, bad))} {'are' if many else 'is'} "
                  f"not a word token of this sentence (positions {_ranges(tokens.words)}); "
                  f"{'they were' if many else 'it was'} ignored.")


def _token_on_word(token: int | None, tokens: TokenFacts) -> tuple[int | None, str | None]:
    if token is not None and tokens.is_word(token):
        return token, None
    chosen = default_token(tokens.texts, tokens.special)
    if token is None:
        return chosen, None
    return chosen, (f"Token position {token} is not a word token of this sentence (positions "
                    f"{_ranges(tokens.words)}); the default token is selected.")


def _build_current(build: str | None, corpus: CorpusFacts) -> tuple[str | None, str | None]:
    """Record the corpus's current build; a link made with another build is told so (the corpus
    was rebuilt since, so its matches may differ from what the link showed)."""
    if corpus.build is None or build == corpus.build:
        return build, None
    if not corpus.from_link or build is None:
        return corpus.build, None
    return corpus.build, (f"Corpus '{corpus.name}' was rebuilt since this link was made (the link has build "
                          f"{build}, this server has {corpus.build}), so its matches and summaries may differ "
                          "from what the link showed.")


def _layer_b_in(layer: int | None, model: ModelFacts) -> tuple[int | None, str | None]:
    if layer is None or layer in layer_range("heads", model.layers):
        return layer, None
    return None, (f"Layer {layer} does not exist in {model.name} (layers 1-{model.layers}); showing the "
                  "layer at the depth of the first side's.")


def _token_b_on_word(token: int | None, tokens: TokenFacts) -> tuple[int | None, str | None]:
    if token is None or tokens.is_word(token):
        return token, None
    return None, (f"Token position {token} is not a word token of the second side (positions "
                  f"{_ranges(tokens.words)}); the first side's token is compared.")


def _relation_seen(relation: str | None, relations: Relations) -> tuple[str | None, str | None]:
    if relation in relations.names or not relations.names:
        return relation, None
    first = relations.names[0]
    if relation is None:
        return first, None
    return first, (f"The relation {_show(relation)} was not seen often enough in this sample to be "
                   f"measured; showing '{first}'.")


def other_model(model: str) -> str:
    """The default second model of a comparison: the other offline model."""
    others = [name for name in OFFLINE_MODELS if name != model]
    return others[0] if others else DEFAULT_MODEL


def _maybe(value: Any, state: Any) -> str | None:
    return None if value is None else str(value)


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppState:
    """Every control of the app (the table: see the module docstring). ``layer`` and ``token``
    are None until fitted to a model and a sentence (then the defaults are filled in)."""

    model: str = _param(DEFAULT_MODEL, _model, f"showing '{DEFAULT_MODEL}'")
    corpus: str = _param(DEFAULT_CORPUS, _corpus, f"showing corpus '{DEFAULT_CORPUS}'")
    # The build of ``corpus`` the view was made with (None until the corpus is built).
    corpus_build: str | None = _param(None, _optional(_build_id), "it was ignored", write=lambda v, s: v,
                                      checks={CorpusFacts: _build_current})
    sentence: str = _param(DEFAULT_SENTENCE, _sentence, "showing the example sentence")
    layer: int | None = _param(None, _count("is not a layer number"), "showing the default layer",
                               write=_maybe, checks={ModelFacts: _layer_in})
    heads: Heads = _param(Heads.all(), _heads, "showing all heads", write=lambda v, s: v.format(),
                          checks={ModelFacts: _heads_in})
    masks: tuple[int, ...] = _param((), _positions, "no token is masked", write=lambda v, s: ",".join(map(str, v)),
                                    checks={ModelFacts: _masks_allowed, TokenFacts: _masks_on_words})
    token: int | None = _param(None, _count("is not a token position"), "the default token is selected",
                               write=_maybe, checks={TokenFacts: _token_on_word})
    threshold: int = _param(DEFAULT_THRESHOLD, lambda t: _count("is not a percentage from 1 to 100", 1, 100)(t.rstrip("%")),
                            f"using {DEFAULT_THRESHOLD}")
    hide_special: bool = _param(False, _flag, "special tokens are shown", write=lambda v, s: "1" if v else "0")
    # What every attention number on every page shows (exbert_core.model.measure_names).
    measure: str = _param(DEFAULT_MEASURE, _choice(MEASURES, {"attention": "raw", "value": "norm", "alti": "contrib"}),
                          f"showing {MEASURE_LABELS[DEFAULT_MEASURE].lower()}", what="attention measure")
    aggregate: str = _param(DEFAULT_AGGREGATE, _choice(AGGREGATES), "showing each layer on its own",
                            what="layer aggregate")
    by: str = _param("embedding", _kind, "searching by token embedding", what="search kind")
    k: int = _param(DEFAULT_K, _count(f"is not a number from 1 to {MAX_K}", 1, MAX_K), f"showing {DEFAULT_K} matches")
    # The attention page
    view: str = _param("auto", _choice(ATTENTION_VIEWS, {"heatmap": "matrix", "heat map": "matrix", "grid": "heads"}),
                       "choosing by the input's length", pages=("attention",), what="attention view")
    context: int = _param(DEFAULT_CONTEXT, _count(f"is not a number from 1 to {MAX_CONTEXT}", 1, MAX_CONTEXT),
                          f"showing {DEFAULT_CONTEXT} token each side", pages=("attention",), what="context width")
    tab: str = _param("matches", _choice(RESULT_TABS), "showing the matches", pages=("attention",),
                      what="results tab")
    hist: str = _param("pos", _choice(HISTOGRAMS), "showing part of speech", pages=("attention",),
                       what="histogram")
    image: str = _param("png", _choice(IMAGE_FORMATS), "charts download as PNG",
                        pages=("attention", "model_view", "layers", "head_atlas", "compare"), what="image format")
    # The layer sweep and the comparison
    feature: str = _param("pos", _choice(FEATURES), "showing part of speech", pages=("layers", "compare"))
    # The head atlas. relation None: its most frequent relation.
    relation: str | None = _param(None, _relation, "showing the most frequent relation", write=lambda v, s: v or "",
                                  pages=("head_atlas",), checks={Relations: _relation_seen})
    sample: int = _param(DEFAULT_ATLAS_SAMPLE, _sample, f"reading {DEFAULT_ATLAS_SAMPLE}", pages=("head_atlas",))
    # The comparison's second side. model_b None: the other offline model; layer_b / token_b None:
    # the first side's layer (at the same depth) and token.
    compare: str = _param("sentences", _choice(COMPARE_MODES, {"sentence": "sentences", "model": "models"}),
                          "comparing two sentences", pages=("compare",), what="comparison")
    sentence_b: str = _param(DEFAULT_SENTENCE_B, _sentence, "showing the example sentence", pages=("compare",))
    model_b: str | None = _param(None, _optional(_model), f"showing '{DEFAULT_MODEL}'", pages=("compare",),
                                 write=lambda v, s: v or other_model(s.model), what="second model",
                                 refused=DEFAULT_MODEL)
    layer_b: int | None = _param(None, _optional(_count("is not a layer")), "the default is used", pages=("compare",),
                                 side="b", write=_maybe, checks={ModelFacts: _layer_b_in})
    token_b: int | None = _param(None, _optional(_count("is not a token position")), "the default is used",
                                 pages=("compare",), side="b", write=_maybe, checks={TokenFacts: _token_b_on_word})

    def selected_heads(self, n_heads: int) -> tuple[int, ...]:
        """The selected heads as explicit indices (after :func:`fit` against the model)."""
        return self.heads.resolve(n_heads)


TABLE: dict[str, Param] = {f.name: f.metadata["param"] for f in fields(AppState)}
PARAMS = tuple(name for name, p in TABLE.items() if p.pages is None)  # in every link
EXTRA_PARAMS = tuple(name for name, p in TABLE.items() if p.pages is not None)  # in some pages' links


def page_params(page: str) -> tuple[str, ...]:
    """The parameters that only ``page``'s links carry (besides :data:`PARAMS`)."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}; see PAGES")
    return tuple(name for name in EXTRA_PARAMS if page in (TABLE[name].pages or ()))


# ---------------------------------------------------------------------------------------------
# Reading and checking


def from_params(params: Mapping[str, str | Sequence[str]]) -> tuple[AppState, list[str]]:
    """Parse URL query parameters; unknown parameters are ignored, bad values replaced by
    defaults with a warning (one sentence each). Repeated keys take the last value."""
    values = {key: _last(value) for key, value in params.items()}
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for name, param in TABLE.items():
        if name not in values:
            continue
        text = values[name]
        what = param.what or name
        try:
            value = param.parse(text)
        except Refused as refused:
            shown = f" {_show(text)}" if text.strip() else ""
            warnings.append(f"The link's {what}{shown} {refused}; {param.instead}.")
            if param.refused is not None:
                changes[name] = param.refused
            continue
        if isinstance(value, Note):
            warnings.append(f"The link's {what} {value.problem}.")
            value = value.value
        changes[name] = value
    return replace(AppState(), **changes), warnings


def fit(state: AppState, facts: Facts, side: str = "a") -> tuple[AppState, list[str]]:
    """Check the fields of ``side`` that depend on ``facts`` (a model, a sentence's tokens, a head
    atlas's relations): defaults filled in, values that do not exist replaced, each replacement
    said in one warning."""
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for name, param in TABLE.items():
        check = param.checks.get(type(facts))
        if check is None or param.side != side:
            continue
        value, warning = check(getattr(state, name), facts)
        changes[name] = value
        if warning:
            warnings.append(warning)
    return replace(state, **changes), warnings


def check_model_name(text: str) -> tuple[str, str | None]:
    """A model name typed in the UI: (name, problem); a refused name gives the default model and a
    sentence saying why."""
    name = (text or "").strip()
    problem = model_problem(name) if name else None
    if problem:
        return DEFAULT_MODEL, f"Model {_show(name)} {problem}. Showing '{DEFAULT_MODEL}'."
    return (resolve_name(name) if name else DEFAULT_MODEL), None


# The checks of single pages, by what they check against (kept as the pages' and tests' names).


def fit_model(state: AppState, *, layers: int, heads: int, can_mask: bool,
              model_label: str | None = None) -> tuple[AppState, list[str]]:
    return fit(state, ModelFacts(model_label or state.model, layers, heads, can_mask))


def fit_tokens(state: AppState, texts: Sequence[str], special: Sequence[bool]) -> tuple[AppState, list[str]]:
    return fit(state, TokenFacts(tuple(texts), tuple(special)))


def fit_relation(state: AppState, relations: Sequence[str]) -> tuple[AppState, list[str]]:
    return fit(state, Relations(tuple(relations)))


def fit_corpus_build(state: AppState, current: str | None, *, from_link: bool) -> tuple[AppState, list[str]]:
    return fit(state, CorpusFacts(state.corpus, current, from_link))


def fit_side_b(state: AppState, *, layers: int, texts: Sequence[str], special: Sequence[bool],
               model_label: str | None = None) -> tuple[AppState, list[str]]:
    """The comparison's second side against its model and its tokens. A bad ``layer_b`` or
    ``token_b`` becomes None: the page then follows the first side."""
    state, on_model = fit(state, ModelFacts(model_label or "the second model", layers, 0, False), side="b")
    state, on_tokens = fit(state, TokenFacts(tuple(texts), tuple(special)), side="b")
    return state, on_model + on_tokens


# ---------------------------------------------------------------------------------------------
# Writing


def to_params(state: AppState, extra: Sequence[str] = ()) -> dict[str, str]:
    """Query parameters that reproduce ``state``: every parameter of :data:`PARAMS` (so a link
    keeps its meaning even if defaults change) and the page parameters named in ``extra``."""
    unknown = set(extra) - set(EXTRA_PARAMS)
    if unknown:
        raise ValueError(f"unknown page parameters {sorted(unknown)}; see EXTRA_PARAMS")
    out = {}
    for name, param in TABLE.items():
        if param.pages is None or name in extra:
            text = param.write(getattr(state, name), state)
            if text is not None:
                out[name] = text
    return out


def format_heads(heads: Heads) -> str:
    return heads.format()


def share_url(base_url: str | None, params: Mapping[str, str]) -> str:
    """``base_url?params`` (spaces as %20, so the link survives chat apps); a relative link
    without a base."""
    query = urlencode(dict(params), quote_via=quote, safe=",")
    return f"{(base_url or '').split('?')[0]}?{query}"


def _last(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return str(value[-1]) if len(value) else ""


def _ranges(values: Sequence[int]) -> str:
    if not values:
        return "none"
    return f"{values[0]}-{values[-1]}" if list(values) == list(range(values[0], values[-1] + 1)) else ", ".join(map(str, values))


def _show(text: str, limit: int = 40) -> str:
    """A user-given value quoted for a message, shortened (plain text: escaped where shown)."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
