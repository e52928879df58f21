"""Background work as this session follows it: the jobs it saw running (their end is announced
once, by the banner), the corpora to select when their build is done, and one line per job's
step for a reader.

The jobs themselves run for the whole server (:mod:`exbert_core.corpus.build.jobs`); this module
only keeps what one session knows about them, so the cache (waiting for a model's preparation),
the corpus pages and the banner share it without importing each other.
"""

from __future__ import annotations

import streamlit as st

from exbert_core.corpus.build.jobs import JobStatus
from exbert_core.progress import format_seconds
from exbert_core.views.labels import markdown_text

SEEN = "exbert_jobs_seen"  # key -> start time of the jobs this session saw running
SELECT = "exbert_select_when_built"  # corpora to select in this session when their build is done
# What comes after a stage, so a reader knows the time left is the stage's, not the whole job's.
NEXT_STAGE = {
    "fetch": "then spaCy parses the text and the model reads every token",
    "download": "then the weights are converted",
    "extract": "then the weights are converted",
}
WHOLE_BUILD = "build"  # the stage that is the whole build (sample, parse and model): its time left is the build's
# File and corpus names come from visitors: every text from a job is shown literally.
md = markdown_text


def describe(status: JobStatus) -> str:
    """One line for a reader: the step, how far it is in its own units, the time left in it."""
    step = status.step
    if step is None:
        return f"Starting… ({format_seconds(status.elapsed_s)} so far)"
    parts = [md(step.message)]
    if step.total:
        share = f" ({step.fraction:.0%})" if step.fraction is not None else ""
        parts.append(f"{step.done:,.0f} of {step.total:,.0f} {md(step.unit)}{share}")
    if status.eta_s is not None:
        parts.append(f"about {format_seconds(status.eta_s)} left" + ("" if step.stage == WHOLE_BUILD else " in this step"))
    else:  # the time spent in this step (the job's own is in the title)
        parts.append(f"{format_seconds(status.stages[-1][1] if status.stages else status.elapsed_s)} so far")
    if step.stage in NEXT_STAGE:
        parts.append(NEXT_STAGE[step.stage])
    return " · ".join(parts)


def watch(status: JobStatus) -> None:
    """Follow ``status`` in this session: its end is announced here even if it comes fast."""
    st.session_state.setdefault(SEEN, {})[status.key] = status.started


def select_when_built(name: str) -> None:
    """Make corpus ``name`` this session's corpus when its build is done."""
    st.session_state.setdefault(SELECT, set()).add(name)
