"""Streamlit helpers shared by the pages, bottom to top (a module imports only those before it;
``tests/test_layering.py`` checks it):

- ``components``: two small browser components (copy link, head picker; the URL written in place);
- ``state``: the session's state and the URL; ``background``: the jobs this session follows;
- ``style``: the app's own style rules; ``widgets``: the error boundary, the top bar, the token
  picker, chart settings;
- ``cache``: models, corpora, analyses and searches, cached by name;
- ``sidebar``: the shared controls and the messages at the top; ``page``: the frame after them;
- ``banner``: background work, above every page; ``build``: corpus builds started from a page.

UI only: every computation is a call into ``exbert_core``.
"""
