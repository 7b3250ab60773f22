"""recsys_catalog."""
