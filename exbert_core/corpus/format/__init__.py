"""The on-disk format of a corpus, shared by the build (which writes it) and the search (which reads it):
folder layout and manifests, corpus names, the index codes layout and the stored vectors."""
