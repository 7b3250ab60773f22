"""Offline evaluation: metrics, baselines, the protocol table; the two-tower model's cold-start
evaluation (``two_tower``)."""
