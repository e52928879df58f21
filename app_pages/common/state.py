"""The session's :class:`~exbert_core.app.state.AppState`, read from and written to the URL.

- The state lives in ``st.session_state[STATE]``. It is read from the URL when the session starts
  (opening a link) and when the reader goes Back or Forward in the browser (each change of the
  view is a new history entry); otherwise only widget callbacks change it (:func:`set_state`).
- After the controls are drawn, the URL is rewritten from the state (only when it changed), so
  the address bar is always a link to the current view.
- A link's problems are kept together and shown while the view is still the link's; problems
  found later are shown once (:func:`note`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Any
from urllib import parse

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.state.session_state_proxy import get_session_state

from app_pages.common import components

from exbert_core.app import state as app_state
from exbert_core.app.state import AppState

STATE = "exbert_state"
URL_WARNINGS = "exbert_url_warnings"
URL_VIEW = "exbert_url_view"
STARTING = "exbert_starting"
NOTES = "exbert_notes"
FIRST_VIEW = "exbert_first_view"  # this run is the session's first (no Back/Forward): its URL is written in place
PAGE_VISIT = "exbert_page_visit"  # (the page's script hash, an id of this visit to it)
log = logging.getLogger(__name__)


def _read_url() -> None:
    state, warnings = app_state.from_params(st.query_params.to_dict())
    st.session_state[STATE] = state
    st.session_state[URL_WARNINGS] = list(warnings)
    st.session_state[STARTING] = True


def begin_run() -> AppState:
    """The state for this run: read from the URL on the session's first run and after the
    browser's Back or Forward, else the session's."""
    ctx = get_script_run_ctx()
    st.session_state[FIRST_VIEW] = STATE not in st.session_state and not (ctx is not None and ctx.is_history_navigation)
    page = ctx.page_script_hash if ctx is not None else ""
    if st.session_state.get(PAGE_VISIT, (None,))[0] != page:
        st.session_state[PAGE_VISIT] = (page, secrets.token_hex(4))
    if STATE not in st.session_state or (ctx is not None and ctx.is_history_navigation):
        _read_url()
    return get_state()


def page_visit() -> str:
    """An id of this visit to the page: new in each session and each time the reader comes to
    the page from another (what the browser keeps for a page's widgets, it keeps per visit)."""
    return st.session_state[PAGE_VISIT][1]


def get_state() -> AppState:
    if STATE not in st.session_state:
        _read_url()
    return st.session_state[STATE]


def set_state(**changes: Any) -> AppState:
    state = replace(get_state(), **changes)
    st.session_state[STATE] = state
    return state


def reset() -> None:
    """Every control back to its default (a new history entry: Back returns to the view before)."""
    st.session_state[STATE] = AppState()
    st.session_state[URL_WARNINGS] = []


def starting() -> bool:
    """Whether this run opens a link (the session's first run, or Back/Forward)."""
    return bool(st.session_state.get(STARTING))


def note(message: str, kind: str = "warning") -> None:
    """A plain-text message shown once, at the top of the next page drawn (``kind``: warning or
    success)."""
    st.session_state.setdefault(NOTES, []).append((kind, message))


def take_notes() -> list[tuple[str, str]]:
    return st.session_state.pop(NOTES, [])


def fitted(state: AppState, warnings: list[str]) -> AppState:
    """Store a state checked against what is loaded; a link's problems are kept with the link,
    later ones shown once."""
    st.session_state[STATE] = state
    if starting():
        st.session_state[URL_WARNINGS].extend(warnings)
    else:
        for warning in warnings:
            note(warning)
    return state


def link_warnings(params: tuple[str, ...]) -> list[str]:
    """The link's problems while the view is still the link's (they go once the reader changes
    something)."""
    warnings = st.session_state.get(URL_WARNINGS) or []
    if warnings and not starting() and st.session_state.get(URL_VIEW) != app_state.to_params(get_state(), params):
        st.session_state[URL_WARNINGS] = warnings = []
    return list(warnings)


def finish_run(params: tuple[str, ...]) -> None:
    """Write the URL from the state; the first run of a link remembers the view it opened."""
    wanted = app_state.to_params(get_state(), params)
    if starting():
        st.session_state[URL_VIEW] = wanted
    # to_dict() leaves out, and from_dict() keeps, Streamlit's own embed parameters.
    if st.query_params.to_dict() != wanted:
        ctx = get_script_run_ctx()
        opened = ctx.query_string if ctx is not None else ""  # as the browser sent it (before _set_quietly)
        if st.session_state.get(FIRST_VIEW) and _set_quietly(wanted):
            with st.sidebar:  # out of the page's way
                components.replace_url(parse.urlencode(wanted, doseq=True), opened=opened)
            st.session_state[FIRST_VIEW] = False
        else:
            st.query_params.from_dict(wanted)


def _set_quietly(wanted: dict[str, str]) -> bool:
    """Set the session's query parameters without Streamlit's message to the browser, which
    pushes a history entry (the browser's address is then written in place by
    :func:`components.replace_url`, so one Back from a first visit leaves the app). Streamlit's
    internals (1.67): False, and nothing changed, where they differ."""
    try:
        with get_session_state().query_params() as qp:
            qp.clear_with_no_forward_msg(preserve_embed=True)
            for key, value in wanted.items():
                qp.set_with_no_forward_msg(key, value)
            query = parse.urlencode(qp._query_params, doseq=True)
        ctx = get_script_run_ctx()
        if ctx is not None:
            ctx.query_string = query  # what the session reports as its URL
        return True
    except (AttributeError, TypeError) as err:
        log.warning("Writing the first URL in place is not possible with this Streamlit: %s", err)
        return False


def end_start() -> None:
    st.session_state[STARTING] = False
    st.session_state[FIRST_VIEW] = False


def link(params: tuple[str, ...]) -> str:
    """The link to the current view (absolute in a browser; relative under AppTest)."""
    return app_state.share_url(st.context.url, app_state.to_params(get_state(), params))
