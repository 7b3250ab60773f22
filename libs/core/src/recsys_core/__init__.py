"""recsys_core."""
