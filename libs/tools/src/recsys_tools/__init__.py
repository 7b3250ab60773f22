"""recsys developer tools: the local stack (`recsys up`), the `recsys` CLI and the load generator."""
