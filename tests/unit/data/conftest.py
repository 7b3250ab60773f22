from __future__ import annotations

from pathlib import Path

import pytest
from recsys_data.synthetic import generate


@pytest.fixture(scope="session")
def small_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small generated data set per format (read-only: copy before corrupting)."""
    root = tmp_path_factory.mktemp("synthetic")
    return {
        fmt: generate(root / f"syn-{fmt}", fmt=fmt, n_users=40, n_movies=60, n_ratings=800, seed=7)
        for fmt in ("100k", "1m", "latest")
    }
