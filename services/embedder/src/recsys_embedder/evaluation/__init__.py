"""Offline evaluation: metrics, baselines, the protocol table."""
