"""The kNN index job: a faiss index over the score job's saved embeddings (docs/explore.md)."""
