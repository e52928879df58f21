"""Widgets and helpers every page and the sidebar use: the one error boundary (:func:`attempt`),
the bar at the top (copy link, reset), the token picker, chart settings, opening a head, and
seeding a widget from the state.

Messages are plain text (the core's errors, the link's warnings): they are Markdown-escaped here,
where they are shown, so a value from a link or a corpus is never read as markup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from app_pages.common import components
from app_pages.common import state as session
from exbert_core.app import state as app_state
from exbert_core.errors import USER_ERRORS
from exbert_core.model.selection import Heads
from exbert_core.views.charts import chart_style
from exbert_core.views.labels import clean_piece, markdown_text, told_apart

if TYPE_CHECKING:
    from exbert_core.model.analysis import Analysis

log = logging.getLogger(__name__)
T = TypeVar("T")
SWITCH_TO = "exbert_switch_to"
K_TOKEN = "token_pick"
K_RESET = "reset_view"


def seed(key: str, value: Any) -> None:
    """Give a widget its value from the state before it is drawn."""
    st.session_state[key] = value


# ---------------------------------------------------------------------------------------------
# The error boundary


def attempt(call: Callable[[], T], failed: str, *, problems: list[str] | None = None, hint: str = "") -> T | None:
    """Run ``call`` (a load, an analysis, a search): the one error boundary of the pages.

    A user error (:data:`~exbert_core.errors.USER_ERRORS`) is shown with its own message; any
    other exception is a bug: logged with its traceback and shown as ``failed`` with the error's
    type. Shown in place, or added to ``problems`` (listed at the top of the page). Returns None
    after a failure.
    """
    try:
        return call()
    except USER_ERRORS as err:
        message = f"{err} {hint}".strip()
    except Exception as err:
        log.exception(failed)
        message = f"{failed} ({type(err).__name__}: {err}) {hint}".strip()
    if problems is not None:
        problems.append(message)
    else:
        st.error(markdown_text(message), icon=":material/error:")
    return None


# ---------------------------------------------------------------------------------------------
# The top of every page


def top_bar() -> Any:
    """Copy link and Reset at the top of the page; returns the container for the messages under
    them."""
    with st.container(key="top_bar", horizontal=True, vertical_alignment="center", gap="small"):
        components.copy_link()
        st.button("Reset to defaults", key=K_RESET, icon=":material/restart_alt:", on_click=session.reset,
                  help="Every control back to its default (the browser's Back button returns to this view).")
    return st.container()


def link_warning(box: Any, warnings: list[str]) -> None:
    """The link's problems, listed in ``box`` (the view differs from the link)."""
    box.warning("**This link had problems, so the view differs from it:**\n\n"
                + "\n".join(f"- {markdown_text(w)}" for w in warnings), icon=":material/warning:")


# ---------------------------------------------------------------------------------------------
# Widgets shared by pages


def chart_config(name: str, *, zoom: bool = False) -> dict:
    """Plotly's config for a chart: its camera button saves ``exbert-<name>`` in the format chosen
    in the sidebar (PNG or SVG)."""
    return chart_style.plot_config(f"exbert-{name}", session.get_state().image, zoom=zoom)


def token_picker(analysis: Analysis, label: str, *, selected: int | None, key: str = K_TOKEN,
                 on_pick: Callable[[int], None] | None = None, can_mask: bool | None = None) -> None:
    """The row of the sentence's tokens that picks one (pills, or a menu for long inputs), and,
    when ``can_mask`` is not None, the button that masks it. Picks exactly the token clicked, also
    when its word repeats (Streamlit matches a pill by its label: a repeated one carries its
    position, ``to (4)``).

    ``selected``: the selected position; ``on_pick(position)``: what a pick does (default:
    select it as the state's token).
    """
    tokens = analysis.tokens
    pickable = [t.position for t in tokens if not t.special]
    if selected is None or not pickable:
        return
    shown = told_apart(["[MASK]" if p in analysis.masked else markdown_text(clean_piece(tokens[p].text))
                        for p in pickable], pickable)
    label_of = dict(zip(pickable, shown))
    seed(key, selected)
    pick = on_pick or (lambda position: session.set_state(token=position))

    def picked() -> None:
        value = st.session_state.get(key)
        if value is not None:
            pick(int(value))

    with st.container(key=f"{key}_row"):
        if len(tokens) <= app_state.LONG_INPUT_TOKENS:
            # wrap: on a phone every token stays in sight (a scrolled row hides tokens)
            st.pills(label, pickable, key=key, required=True, format_func=label_of.get, on_change=picked,
                     wrap=True)
        else:  # hundreds of pills are hard to scan: a menu that can be searched
            st.selectbox(label, pickable, key=key, format_func=lambda p: f"{p} · {clean_piece(tokens[p].text)}",
                         on_change=picked, width=320)
        if can_mask is not None:
            masked = selected in analysis.masked
            word = markdown_text(analysis.sentence[tokens[selected].start:tokens[selected].end].strip())
            st.button(
                f"Unmask “{word}”" if masked else f"Mask “{word}”", key="toggle_mask",
                on_click=toggle_mask, args=(selected,), disabled=not can_mask,
                help="Replace the token by the mask token and run the model again."
                if can_mask else "This model reads left to right and has no mask token.",
            )


def toggle_mask(position: int) -> None:
    masks = set(session.get_state().masks) ^ {int(position)}
    session.set_state(masks=tuple(sorted(masks)))


def open_head(layer: int, head: int) -> None:
    """Show ``head`` of ``layer`` in the attention view (the page switches after the callback)."""
    session.set_state(layer=int(layer), heads=Heads.of((int(head),)), view="auto")
    st.session_state[SWITCH_TO] = "app_pages/attention.py"


def open_picked_head(chart_key: str) -> None:
    """``on_select`` callback of a chart whose points carry ``customdata = [layer, head]``:
    open the clicked head in the attention view."""
    event = st.session_state.get(chart_key) or {}
    for point in (event.get("selection") or {}).get("points") or []:
        data = point.get("customdata")
        if isinstance(data, list) and len(data) == 2 and all(isinstance(v, (int, float)) for v in data):
            open_head(int(data[0]), int(data[1]))
            return


def follow_switch() -> None:
    """Switch page if a callback asked for it (``st.switch_page`` cannot run inside one)."""
    target = st.session_state.pop(SWITCH_TO, None)
    if target:
        st.switch_page(target)
