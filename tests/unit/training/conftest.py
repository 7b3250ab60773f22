"""Tiny generated MovieLens data for the training/evaluation tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest.importorskip("dgl", reason="training tests need the embedder's [train] extra (DGL)")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recsys_data.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("ml") / "ml-tiny", fmt="100k", n_users=40, n_movies=60, n_ratings=900, seed=3
    )


@pytest.fixture(scope="session")
def tiny(tiny_data_dir: Path):  # type: ignore[no-untyped-def]
    from recsys_embedder.training.data import load

    return load(str(tiny_data_dir))
