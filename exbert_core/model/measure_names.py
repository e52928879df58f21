"""The attention measures by name: what a URL, a CLI option and a label may say (light: no torch,
so URL parsing uses it too). The measures themselves are in :mod:`exbert_core.model.measures`.

The default is ``norm`` per layer: on our own 40 sentences (``docs/faithfulness-sentences.txt``,
``python scripts/faithfulness.py``) its weights track leave-one-out erasure better than raw
attention on both offline models (see README, "Which measure"); ``raw`` is the exBERT paper's.
"""

from __future__ import annotations

from exbert_core.errors import InputError

MEASURES = ("raw", "norm", "contrib")
AGGREGATES = ("layer", "rollout")
DEFAULT_MEASURE = "norm"
DEFAULT_AGGREGATE = "layer"

# Short names for labels and menus, and one plain sentence each (the sidebar's help, README).
LABELS = {
    "raw": "Raw attention",
    "norm": "Attention × value",
    "contrib": "Contribution",
}
EXPLANATIONS = {
    "raw": "the attention weights themselves (the exBERT paper's measure): how strongly a token looks at "
           "another, whether or not anything passes between them.",
    "norm": "each attention weight times the size of what the other token passes on (Kobayashi et al. "
            "2020): looking hard at a token that passes almost nothing counts for little.",
    "contrib": "how much of each token ends up in this token's output, including what it keeps of itself "
               "(ALTI, Ferrando et al. 2022). It is measured for a whole layer; single heads show "
               "attention × value.",
}
AGGREGATE_LABELS = {"layer": "This layer", "rollout": "Layers 1 to here"}
AGGREGATE_EXPLANATIONS = {
    "layer": "what each token takes from the others in the chosen layer alone.",
    "rollout": "what each token has taken, through every layer up to the chosen one, from the tokens "
               "of the input (rollout, Abnar & Zuidema 2020; every head).",
}


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise InputError(f"The measure must be one of {', '.join(MEASURES)}, got {measure!r}.")
    return measure


def check_aggregate(aggregate: str) -> str:
    if aggregate not in AGGREGATES:
        raise InputError(f"Aggregate by 'layer' or 'rollout', got {aggregate!r}.")
    return aggregate
