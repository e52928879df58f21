"""Plain-language sentences that say what a result shows, for a reader who did not set it up.

Each function returns Markdown: the values it is given (words, corpus and model names) are
escaped with :func:`~exbert_core.views.labels.markdown_text`; only the emphasis is markup. A
``label`` is the app's own ``layer-[heads]`` (digits, commas, brackets), shown as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from exbert_core.corpus.build.sources import SOURCES
from exbert_core.views.labels import markdown_text

# The annotations the summaries count, as tab and control labels.
FEATURE_NAMES = {"pos": "Part of speech", "dep": "Grammatical role", "ner": "Named entity", "offset": "Offset"}

NOTATION = ("layer-[heads] is the exBERT paper's notation: 2-[0,3] means heads 0 and 3 of layer 2, "
            "averaged; 2-[all] means every head of layer 2.")


# Measured by `python scripts/benchmark.py --sections measures,faithfulness` on our 2-core machine
# (README, "Which measure"): what "escape" takes from the other tokens of the paper's sentence at
# layer 2 under MiniLM, and the mean Spearman rho between each measure and leave-one-out erasure.
MEASURE_GUIDE = """
**Which measure.** A head's attention weight says how strongly a token *looks at* another, not how much
*passes*: a token can look hard at `[CLS]` and take almost nothing from it, because what `[CLS]` passes on
is tiny. So the same question, *what does “escape” take most from at layer 2?*, gets different answers:

| measure | what “escape” takes most from (MiniLM, layer 2, all heads) |
| --- | --- |
| Raw attention (the exBERT paper's) | [CLS] 63 %, escape 6 %, pub 5 %, the 5 % |
| Attention × value (default) | escape 17 %, pub 13 %, the 11 %, din 11 % |
| Contribution (with what it keeps of itself) | escape 93 %, pub 2 %, din 1 %, the 1 % |

We checked each against the model itself: remove one word, see how much the output changes, and ask
whether the measure ranked that word as important (Spearman's ρ, 1 = the same order, 0 = unrelated), on
40 sentences of our own. MiniLM (how much the sentence's embedding moves): raw attention's rollout 0.05,
attention × value's 0.71, contribution's 0.85; one layer alone 0.83 / 0.90 / 0.87. SmolLM2 (how much its
next-word guess drops): one layer 0.30 / 0.35 / 0.35, but *no* rollout tracks it (−0.26 / −0.34 / +0.08):
on a left-to-right model, read *Layers 1 to here* with care.
"""
SEARCH_KINDS_HELP = ("Token embedding: the layer's output for the token, which every head feeds, so the "
                     "head selection does not change it. Head embedding: what the selected heads gathered "
                     "for the token (exBERT's head search).")


def search_heading(word: str, layer: int, by: str, label: str, heads: Sequence[int], n_heads: int) -> str:
    """The corpus search's heading, naming what the search compared: ``### Corpus tokens like
    “escape” by token embedding at layer 2`` (the heads do not change a token embedding), or ``...
    by head embedding of 2-[0,3] (heads 0 and 3 of layer 2)``."""
    if by == "embedding":
        how = f"by token embedding at layer {layer}"
    else:
        how = f"by head embedding of {label} ({heads_words(layer, heads, n_heads)})" if heads else \
            f"by head embedding of {label}"
    return f"### Corpus tokens like “{markdown_text(word)}” {how}"


def head_words(layer: int, head: int) -> str:
    """One head in words beside the paper's label: ``layer 2, head 4 (2-4)``."""
    return f"layer {layer}, head {head} ({layer}-{head})"


_FAMILIES = {"bert": "BERT", "llama": "Llama", "gpt2": "GPT-2", "roberta": "RoBERTa", "distilbert": "DistilBERT"}


def model_line(family: str, layers: int, heads: int, *, causal: bool, lm_head: bool) -> str:
    """The sidebar's line about the model, for a person: ``A BERT-type model with 6 layers of 12
    attention heads. It reads the whole sentence at once and cannot predict words.``"""
    reads = "It reads left to right" if causal else "It reads the whole sentence at once"
    predicts = (("and predicts the next word" if causal else "and predicts hidden (masked) words") if lm_head
                else "and cannot predict words (no language-model head)")
    name = _FAMILIES.get(family.lower(), family)
    return (f"A {markdown_text(name)}-type model with {layers} layers "
            f"of {heads} attention heads. {reads} {predicts}.")


def corpus_title(name: str, source: str) -> str:
    """A corpus as a reader knows it: the book's title for a named source (``alice`` ->
    *Alice's Adventures in Wonderland*), else ``corpus 'name'`` (plain text)."""
    description = SOURCES.get(source)
    if description and name:
        return description.split(" (")[0]
    return f"corpus '{name}'"


def heads_words(layer: int, heads: Sequence[int], n_heads: int) -> str:
    """``all 12 heads`` / ``head 3`` / ``heads 0 and 3`` of a layer, for a sentence."""
    if len(heads) == n_heads:
        return f"all {n_heads} heads of layer {layer}"
    if len(heads) == 1:
        return f"head {heads[0]} of layer {layer}"
    listed = ", ".join(map(str, heads[:-1])) + f" and {heads[-1]}"
    return f"heads {listed} of layer {layer}"


def attention_sentence(layer: int, heads: Sequence[int], n_heads: int, label: str) -> str:
    """What the attention chart shows."""
    return (f"How much each token of the sentence looks at (attends to) every other token, averaged over "
            f"{heads_words(layer, heads, n_heads)} ({label}).")


def matches_sentence(count: int, corpus: str, word: str, layer: int, by: str, label: str) -> str:
    """What the match table shows: ``The 50 tokens of Alice ... that the model represents most
    like "escape" at layer 2``."""
    how = ("represents most like" if by == "embedding"
           else f"gathers most like (head embedding of {label})")
    return (f"The {count} tokens of *{markdown_text(corpus)}* that the model {how} "
            f"“{markdown_text(word)}” at layer {layer}.")


def summary_sentence(count: int, corpus: str, word: str, layer: int) -> str:
    """What the two histograms show."""
    return (f"Left: what kind of words the {count} tokens of *{markdown_text(corpus)}* most like "
            f"“{markdown_text(word)}” at layer {layer} are. Right: what kind of words they attend to most.")


def masking_caveat(model: str, masked_words: Sequence[str], selected_word: str, selected_masked: bool) -> str:
    """Why masking says little with a model that has no masked-language-model head, for the
    tokens masked in this view (``masked_words``: the hidden words) and the selected token."""
    hidden = ", ".join(f"“{markdown_text(w)}”" for w in masked_words)
    plural = len(masked_words) > 1
    name = markdown_text(model)
    opening = (f"**{name} was not trained to fill in masked tokens** (it has no masked-language-model head), "
               f"and {hidden} {'are' if plural else 'is'} masked. ")
    if selected_masked:
        effect = (f"The selected token is the mask that hides “{markdown_text(selected_word)}”: its corpus "
                  f"neighbours show what {name} makes of a mask, not of “{markdown_text(selected_word)}”, so "
                  "they say little about the hidden word.")
    else:
        effect = (f"The selected token “{markdown_text(selected_word)}” is not masked, but the "
                  f"mask{'s' if plural else ''} change{'' if plural else 's'} its context in a way {name} "
                  "never saw in training: compare with the unmasked sentence before reading much into it.")
    return (opening + effect + " For the paper's masking experiments use a masked language model such as "
            "`bert-base-uncased` (needs internet).")
