"""Every limit of the tool, stated once (a leaf module). The README's "Limits" table lists them.

Each is sized by measurement on the 2-core machine and Community Cloud's ~2.7 GB of memory.
"""

from __future__ import annotations

# Interactive analysis of longer inputs is neither fast nor readable; corpora split longer sentences.
MAX_TOKENS_CAP = 512
# A 512-token input (the longest most encoders read) is about 2,500 characters of English prose.
MAX_SENTENCE_CHARS = 5000
# Matches per search: measured with MiniLM on Alice, k=500 adds ~0.3 GB to the peak and takes ~2 s
# (the max-attention pass runs in small batches), within Community Cloud's ~2.7 GB.
MAX_K = 500
# User-supplied texts (the app's uploads): 20 MiB.
MAX_TEXT_BYTES: int = 20 * 1024 * 1024
