"""Building a corpus: input texts, spaCy, the model pass, writing shards (one process or Ray Data),
what a build will take and what visitors may build, and the background jobs that run builds."""
