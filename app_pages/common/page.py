"""The frame of a page after the sidebar: what a page waits for (:func:`ready`, :func:`required`)
and how it stores a state it corrected (:func:`page_fitted`), with that state's warnings shown
at the top.
"""

from __future__ import annotations

from typing import TypeVar

import streamlit as st

from app_pages.common import state as session
from app_pages.common.sidebar import View
from app_pages.common.widgets import link_warning
from exbert_core.app import state as app_state
from exbert_core.app.state import AppState
from exbert_core.model.analysis import Analysis
from exbert_core.model.loading import ModelInfo
from exbert_core.views.labels import markdown_text

T = TypeVar("T")


def ready(view: View, what: str) -> tuple[ModelInfo, Analysis]:
    """The view's model and analysis, or a line saying the page waits for the problem above to be
    fixed (then the page stops)."""
    if view.info is None or view.analysis is None:
        st.info(f"Fix the problem above to see {what}.")
        st.stop()
    return view.info, view.analysis


def required(value: T | None) -> T:
    """``value``, or stop the page here (after :func:`~app_pages.common.widgets.attempt` showed why it is missing)."""
    if value is None:
        st.stop()
    return value  # type: ignore[return-value]


def page_fitted(view: View, state: AppState, warnings: list[str]) -> AppState:
    """Store a state a page corrected after the sidebar (values only the page can check) and
    report its warnings: with the link's problems when the run opens a link, else once, here."""
    st.session_state[session.STATE] = state
    view.state = state
    if view.starting:
        st.session_state[session.URL_WARNINGS].extend(warnings)
        st.session_state[session.URL_VIEW] = app_state.to_params(state, view.params)
        if st.session_state[session.URL_WARNINGS]:
            link_warning(view.url_box, st.session_state[session.URL_WARNINGS])
    else:
        for warning in warnings:
            view.messages.warning(markdown_text(warning), icon=":material/warning:")
    session.finish_run(view.params)
    return state
