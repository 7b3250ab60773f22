"""recsys_embedder."""
