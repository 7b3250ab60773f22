"""Fixtures for the embedder's unit tests: a tiny generated data set and a random artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_ds(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from recsys_embedder.backends.synthetic import tiny_dataset

    return tiny_dataset(tmp_path_factory.mktemp("emb-data"))


@pytest.fixture(scope="session")
def artifact_root(tmp_path_factory: pytest.TempPathFactory, tiny_ds: Any) -> Path:
    from recsys_embedder.backends.synthetic import make_artifact

    root = tmp_path_factory.mktemp("emb-artifacts")
    make_artifact(root, "v1", tiny_ds, seed=1)
    return root
