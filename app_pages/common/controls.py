"""The names the corpus pages (``corpora.py``, ``build.py``) use from the shared controls.

The controls live in :mod:`~app_pages.common.state` (the session's state and the URL),
:mod:`~app_pages.common.sidebar` (the sidebar and :class:`View`) and :mod:`~app_pages.common.page`
(the top bar, messages, the error boundary and widgets shared by pages).
"""

from __future__ import annotations

from app_pages.common.page import attempt, chart_config, follow_switch, page_fitted, seed
from app_pages.common.sidebar import View, sidebar
from app_pages.common.state import get_state, note, set_state

__all__ = ["View", "attempt", "chart_config", "follow_switch", "get_state", "note", "page_fitted", "seed",
           "set_state", "sidebar"]
