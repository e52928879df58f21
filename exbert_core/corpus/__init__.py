"""Reference corpora: source texts, sentences, the build, the store on disk, vectors, search and
the summaries of matches."""
