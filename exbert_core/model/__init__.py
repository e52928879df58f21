"""Models: loading by name, one forward pass with head contexts, the analysis of a sentence, and
spaCy annotations aligned to model tokens."""
