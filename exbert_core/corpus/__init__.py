"""Reference corpora, in three rooms:

- ``format/``: a corpus on disk (folder layout, manifests, names, the index codes' layout, the
  stored vectors): what the build writes and the search reads; it imports neither.
- ``build/``: source texts, inputs, sentences, the model pass, writing codes and shards (one process
  or Ray Data), what a build will take, what visitors may build, and the background jobs.
- ``search/``: opening a corpus (store), reading and scanning codes, one query from vector to
  matches, Ray actors serving the scans, the catalog of built corpora, match summaries. It never
  imports the build (``tests/test_layering.py``).

``evaluation.py`` measures one against the other (recall of the searched codes against vectors the
build's model pass computes again), for ``scripts/benchmark.py``.
"""
