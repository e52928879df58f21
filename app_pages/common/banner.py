"""The banner at the top of every page: work running in the background for every visitor of this
server (a corpus build, a model's first preparation), with its stage, progress and time left.

While a job runs the banner is a fragment that polls the registry (:mod:`exbert_core.corpus.build.jobs`)
every :data:`POLL_S` seconds; when a job this session saw running ends, it reruns the whole
page (a new corpus can be searched, a model is ready) and says once how the job ended.
"""

from __future__ import annotations

import streamlit as st

from app_pages.common import background
from app_pages.common import state as session
from app_pages.common.background import SEEN, SELECT, md
from exbert_core.corpus.build import jobs
from exbert_core.progress import format_seconds

POLL_S = 1.5


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
                    st.progress(fraction, text=background.describe(status))
                else:
                    st.caption(background.describe(status))
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
                session.set_state(corpus=key)
        else:
            st.error(f"{md(status.label)}: failed after {took}. {md(status.error or '')}", icon=":material/error:")
        selected.discard(key)
