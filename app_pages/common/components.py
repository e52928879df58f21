"""Two small browser components (``st.components.v2``) for what Streamlit's widgets cannot do:

- :func:`copy_link`: one button that copies the page's address (always a link to the current
  view) to the clipboard, also on plain-HTTP deployments (``navigator.clipboard`` needs HTTPS;
  the fallback is a selected text field and the browser's copy command). On every page, it also
  makes the app's own URL writes before the reader's first input replace the history entry
  instead of adding one, so one Back from a first visit leaves the app.
- :func:`replace_url`: writes a visit's first canonical URL in place of the history entry (the
  server sets it without Streamlit's message, which would push an entry: see
  :func:`app_pages.common.state.finish_run`).
- :func:`head_picker`: the per-head attention maps as buttons. Clicks change the selection in the
  browser at once; the selection is sent to the server once the clicks pause, so choosing heads
  0 and 3 out of all is two clicks and one rerun. From "all heads", a click keeps only the head
  clicked; after that a click adds or removes a head. The browser's selection outlives redraws:
  a run that started before a click redraws the maps with the selection it knew, and until the
  server says it has applied the reader's clicks, the reader's selection is shown and sent (a
  click during a rerun was lost: the redraw reset the selection, and the next click started from
  it).

Only our own markup is rendered: the data are numbers and ``data:image/png`` URIs made by
:func:`exbert_core.views.head_maps.head_thumbnails`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

_BUTTON_CSS = """
button {
  font: inherit; font-size: 0.95rem; color: var(--st-text-color, #31333f);
  background: var(--st-background-color, #fff); cursor: pointer;
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.2)); border-radius: 0.5rem;
  padding: 0.25rem 0.75rem; min-height: 2.5rem; white-space: nowrap;
  display: inline-flex; align-items: center; gap: 0.4rem;
}
button:hover { border-color: var(--st-primary-color, #e4572e); color: var(--st-primary-color, #e4572e); }
"""

# Whether the reader has pressed, tapped or typed in this page since the component's code ran.
# (Not navigator.userActivation.hasBeenActive: in the tests' Chromium it is true before any input.)
_TOUCHED_JS = """
function readerTouched() {
  let touched = false;
  const mark = () => { touched = true; };
  for (const type of ["pointerdown", "keydown", "touchstart"]) {
    window.addEventListener(type, mark, { capture: true, once: true });
  }
  return () => touched;
}
"""

_COPY_JS = _TOUCHED_JS + """
// Streamlit pushes a history entry whenever the app writes the URL, also for the app's own first
// canonical URL of a visit: Back would then return to the same view. Until the reader first
// presses, taps or types in this document, a push replaces the current entry instead.
function keepFirstVisitOneEntry() {
  if (window.__exbertHistory) return;
  window.__exbertHistory = true;
  const touched = readerTouched();
  const push = window.history.pushState.bind(window.history);
  window.history.pushState = (state, title, url) =>
    touched() ? push(state, title, url) : window.history.replaceState(state, title, url);
}

export default function (component) {
  keepFirstVisitOneEntry();
  const { parentElement } = component;
  const button = parentElement.querySelector("button");
  const label = button.querySelector("span");
  const field = parentElement.querySelector("input");
  const say = (text) => { label.textContent = text; setTimeout(() => { label.textContent = "Copy link"; }, 2000); };
  button.onclick = async () => {
    const link = window.location.href;
    try {
      await navigator.clipboard.writeText(link);
      say("Link copied");
      return;
    } catch (err) {
      // plain HTTP: no clipboard API; copy from a selected field instead
    }
    field.hidden = false;
    field.value = link;
    field.select();
    say(document.execCommand("copy") ? "Link copied" : "Press Ctrl+C to copy");
  };
}
"""

_COPY_HTML = """
<button type="button" title="Copy a link to this view: it opens exactly what you see">
  <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor"
    d="M3.9 12a3.1 3.1 0 0 1 3.1-3.1h4V7H7a5 5 0 0 0 0 10h4v-1.9H7A3.1 3.1 0 0 1 3.9 12zM8 13h8v-2H8v2zm9-6h-4v1.9h4a3.1
    3.1 0 0 1 0 6.2h-4V17h4a5 5 0 0 0 0-10z"/></svg>
  <span>Copy link</span></button>
<input type="text" readonly hidden aria-label="Link to this view" size="40">
"""

_HEADS_CSS = _BUTTON_CSS + """
.grid { display: flex; flex-wrap: wrap; gap: 6px; }
button.head { padding: 3px; min-height: 0; display: flex; flex-direction: column; align-items: center;
  border: 2px solid transparent; border-radius: 6px; opacity: 0.45; }
button.head[aria-pressed="true"] { border-color: #e4572e; opacity: 1; }
button.head:hover { opacity: 0.9; }
button.head img { width: var(--tile); height: var(--tile); image-rendering: pixelated; display: block; }
button.head span { font-size: 0.75rem; line-height: 1.2; color: var(--st-text-color, #31333f); }
"""

_HEADS_JS = """
// The reader's selection, per picker (data.key), for as long as the page lives. Streamlit calls
// the function below again whenever a run redraws the picker (new data) and builds it anew when
// elements above it come or go; a run that started before a click draws the selection it knew.
// So clicks are numbered: a burst is sent with the number of its last click, the server returns
// the last number it applied (data.applied), and until then the reader's selection is kept.
// data.visit is new for each visit to the page (and each session): a burst the server never
// applied (the reader left the page) is then forgotten.
const pickers = (window.__exbertHeadPickers = window.__exbertHeadPickers || new Map());

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const grid = parentElement.querySelector(".grid");
  grid.style.setProperty("--tile", `${data.tile}px`);
  const n = data.maps.length;
  let mine = pickers.get(data.key);
  if (!mine || mine.visit !== data.visit || mine.n !== n || mine.clicks <= data.applied) {
    if (mine) clearTimeout(mine.timer);
    mine = { visit: data.visit, n, clicks: data.applied, timer: null, all: data.all,
             chosen: new Set(data.all ? [...Array(n).keys()] : data.selected) };
    pickers.set(data.key, mine);
  }
  // A burst's timer may outlive this call: it sends through the newest one.
  mine.send = () => setTriggerValue("heads", { heads: [...mine.chosen].sort((a, b) => a - b), burst: mine.clicks });
  const paint = () => grid.querySelectorAll("button").forEach((b) => {
    b.setAttribute("aria-pressed", String(mine.chosen.has(Number(b.dataset.head))));
    b.title = `head ${b.dataset.head}: click to show ${mine.all ? "only this head" : "or hide it"}`;
  });
  const click = (head) => {
    if (mine.all) { mine.chosen = new Set([head]); mine.all = false; }
    else if (mine.chosen.has(head)) { mine.chosen.delete(head); }
    else { mine.chosen.add(head); mine.all = mine.chosen.size === n; }
    mine.clicks += 1;
    paint();
    clearTimeout(mine.timer);  // one rerun for a burst of clicks
    mine.timer = setTimeout(() => { mine.timer = null; mine.send(); }, data.delay);
  };
  grid.replaceChildren(...data.maps.map((src, head) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "head";
    button.dataset.head = String(head);
    const img = document.createElement("img");
    img.src = src;
    img.alt = `attention map of head ${head}`;
    const label = document.createElement("span");
    label.textContent = `head ${head}`;
    button.append(img, label);
    button.onclick = () => click(head);
    return button;
  }));
  paint();
  // No clean-up: when Streamlit builds the picker anew, a pending burst is still sent.
}
"""

_URL_JS = _TOUCHED_JS + """
// Written in place of the history entry; Streamlit's frontend, which was not told, may write the
// address the visit opened with back during the first seconds: until the reader's first input,
// put ours over that address, and only over that one: a view the reader chose before this code
// ran (a click while it loaded) has another address, which stays (ours used to replace it).
export default function ({ data }) {
  if (!data || typeof data.query !== "string" || typeof data.opened !== "string") return;
  const wanted = window.location.pathname + (data.query ? `?${data.query}` : "") + window.location.hash;
  const touched = readerTouched();
  const keep = () => {
    if (!touched() && window.location.search.replace(/^\\?/, "") === data.opened) {
      window.history.replaceState(window.history.state, "", wanted);
    }
  };
  keep();
  const timer = setInterval(keep, 100);
  const stop = setTimeout(() => clearInterval(timer), 5000);
  return () => { clearInterval(timer); clearTimeout(stop); };
}
"""

_copy = st.components.v2.component("exbert_copy_link", html=_COPY_HTML, css=_BUTTON_CSS, js=_COPY_JS)
_url = st.components.v2.component("exbert_first_url", html="<span hidden></span>", js=_URL_JS)
_heads = st.components.v2.component("exbert_head_picker", html='<div class="grid"></div>', css=_HEADS_CSS,
                                    js=_HEADS_JS)

COMMIT_DELAY_MS = 900  # clicks within this pause are sent together


def copy_link() -> None:
    """The "Copy link" button (the page's address is kept equal to the view)."""
    _copy(key="copy_link", width="content")


def replace_url(query: str, *, opened: str) -> None:
    """Make ``query`` (an encoded query string, without ``?``) the address of the current history
    entry, in place: a visit's first canonical URL, which Streamlit would push as a new entry.
    ``opened``: the query string the visit opened with (the browser's, as sent to the server)."""
    _url(key="first_url", data={"query": query, "opened": opened}, width="content", height="content")


def head_picker(maps: Sequence[str], *, selected: Sequence[int], all_heads: bool, key: str, visit: str,
                on_change: Callable[[list[int]], None], tile: int = 64) -> None:
    """Per-head maps as toggles. ``maps``: one image URI per head; ``on_change(heads)`` gets the
    new selection (sorted head indices, possibly empty); ``visit``: an id of this visit to the
    page (:func:`app_pages.common.state.page_visit`).

    The browser numbers the reader's clicks and sends the number with each selection; the last
    number applied goes back to the browser with the picker's data, so that a redraw from a run
    that started before a click does not undo it."""
    applied = f"{key}__applied"

    def changed() -> None:
        value = (st.session_state.get(key) or {}).get("heads")
        if not isinstance(value, dict):
            return
        burst, heads = value.get("burst"), value.get("heads")
        if isinstance(burst, int):  # also for a selection refused below: the browser's is then obsolete
            st.session_state[applied] = max(burst, st.session_state.get(applied, 0))
        if isinstance(heads, list) and all(isinstance(h, int) and not isinstance(h, bool) for h in heads):
            on_change(heads)

    _heads(key=key, data={"maps": list(maps), "selected": list(selected), "all": all_heads, "tile": tile,
                          "delay": COMMIT_DELAY_MS, "key": key, "visit": visit,
                          "applied": st.session_state.get(applied, 0)}, on_heads_change=changed)
