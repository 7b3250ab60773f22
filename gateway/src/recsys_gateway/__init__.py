"""recsys_gateway."""
