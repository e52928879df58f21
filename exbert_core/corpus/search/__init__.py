"""Searching a built corpus: opening it (store), scanning its codes, one query from vector to
matches, Ray actors that serve the scans, the catalog of built corpora, and match summaries."""
