"""The app's own style rules, added to every page by :func:`apply` (app.py calls it
before any page is drawn).

Phones (Streamlit folds the sidebar away below 768 px): every button and link is at least 32 px
a side, so a finger can hit it (Streamlit's help icons, header buttons and small pills are
smaller), and a line under the page title says where the controls went.
"""

from __future__ import annotations

import streamlit as st

PHONE_MAX_PX = 767  # Streamlit's own breakpoint: below it the sidebar is folded away
TAP_PX = 32
STYLE_KEY = "exbert_style"

_CSS = f"""<style>
.exbert-phone-only, div:has(> .st-key-{STYLE_KEY}) {{ display: none; }}
/* Before the top bar's buttons are drawn, Streamlit holds their places with empty grey boxes,
   for seconds while a build loads the server: a reader took "Copy link" for a broken box. */
.st-key-top_bar .stElementContainer > div:empty {{ visibility: hidden; }}
@media (max-width: {PHONE_MAX_PX}px) {{
  .exbert-phone-only {{ display: block; }}
  [data-testid="stMain"] button, [data-testid="stSidebar"] button, [data-testid="stHeader"] button,
  [data-testid="stMain"] a[href], [data-testid="stSidebar"] a[href], [role="tab"] {{
    min-width: {TAP_PX}px; min-height: {TAP_PX}px;
  }}
  [data-testid="stTooltipHoverTarget"] {{
    display: inline-flex; align-items: center; justify-content: center;
  }}
  .modebar-btn {{ padding: 6px !important; }}
}}
</style>"""


def apply() -> None:
    """The app's style rules, as the first element of the page (:func:`phone_hint` is the phone line)."""
    # Markdown, not st.html: Streamlit draws Markdown at once, other elements once their code has
    # loaded, and these rules must hold from the first frame. Its container is not displayed (the
    # rules still apply), so it adds no gap to the page.
    with st.container(key=STYLE_KEY):
        st.markdown(_CSS, unsafe_allow_html=True)


def phone_hint() -> None:
    """A line shown only on phones: where the controls are."""
    st.html(f'<p class="exbert-phone-only" style="margin:0;font-size:0.9rem;opacity:0.8">'
            "On a phone, the sentence, layer, heads and search settings are in the menu: tap "
            "<b>»</b> at the top left.</p>")
