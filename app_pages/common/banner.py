"""The banner at the top of every page: work running in the background for every visitor of this
server (a corpus build, a model's first preparation), with its stage, progress and time left.

While a job runs the banner is a fragment that polls the registry (:mod:`exbert_core.corpus.build.jobs`)
every :data:`POLL_S` seconds; when a job this session saw running ends, it reruns the whole
page (a new corpus can be searched, a model is ready) and says once how the job ended.
"""

from __future__ import annotations

import streamlit as st

from app_pages.common import controls
from exbert_core.corpus.build import jobs
from exbert_core.corpus.build.jobs import JobStatus
from exbert_core.progress import format_seconds
from exbert_core.views.labels import markdown_text

POLL_S = 1.5
SEEN = "exbert_jobs_seen"  # key -> start time of the jobs this session saw running
SELECT = "exbert_select_when_built"  # corpora to select in this session when their build is done
# What comes after a stage, so a reader knows the time left is the stage's, not the whole job's.
NEXT_STAGE = {
    "fetch": "then spaCy parses the text and the model reads every token",
    "parse": "then the model reads every token",
    "download": "then the weights are converted",
    "extract": "then the weights are converted",
}
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
        parts.append(f"about {format_seconds(status.eta_s)} left in this step")
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


def show() -> None:
    """Draw the banner (call it at the top of every page, before the page's own content)."""
    _announce_ended()
    if jobs.running():
        _live()


@st.fragment(run_every=POLL_S)
def _live() -> None:
    seen = st.session_state.setdefault(SEEN, {})
    running = jobs.running()
    if running:
        with st.container(key="job_banner", border=True):
            for status in running:
                seen.setdefault(status.key, status.started)
                st.markdown(f"**{md(status.label)}** · running for {format_seconds(status.elapsed_s)}")
                fraction = status.step.fraction if status.step is not None else None
                if fraction is not None:
                    st.progress(fraction, text=describe(status))
                else:
                    st.caption(describe(status))
            st.caption("This runs on the server for every visitor: you can keep using the app, and "
                       "nothing you click restarts it.")
    if any(_ended(key, started) for key, started in seen.items()):
        st.rerun()  # the whole page: what the job made can now be used


def _ended(key: str, started: float) -> bool:
    status = jobs.status(key)
    return status is None or status.started != started or not status.running


def _announce_ended() -> None:
    """Say once how each job this session saw running has ended; select built corpora asked for."""
    seen = st.session_state.setdefault(SEEN, {})
    selected = st.session_state.setdefault(SELECT, set())
    for key, started in list(seen.items()):
        status = jobs.status(key)
        if status is not None and status.started == started and status.running:
            continue
        del seen[key]
        if status is None or status.started != started:
            continue
        took = format_seconds(status.elapsed_s)
        if status.state == jobs.DONE:
            st.success(f"{md(status.label)}: done in {took}.", icon=":material/check_circle:")
            if key in selected:
                controls.set_state(corpus=key)
        else:
            st.error(f"{md(status.label)}: failed after {took}. {md(status.error or '')}", icon=":material/error:")
        selected.discard(key)
