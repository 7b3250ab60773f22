"""Fixtures: a generated data set, random artifacts, and a real embedder server on 127.0.0.1:0."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from recsys.embedder.v1 import embedder_pb2_grpc
from recsys_core.testing import test_settings

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_ds(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from recsys_embedder.backends.synthetic import tiny_dataset

    return tiny_dataset(tmp_path_factory.mktemp("emb-int-data"))


@pytest.fixture(scope="session")
def base_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_ds: Any) -> Path:
    """``<root>/v1`` (PinSage + two-tower)."""
    from recsys_embedder.backends.synthetic import make_artifact

    root = tmp_path_factory.mktemp("emb-int-art")
    return make_artifact(root, "v1", tiny_ds, seed=1)


def copy_version(src: Path, root: Path, version: str, *, latest: bool = True) -> Path:
    """A copy of an artifact folder under another version name (same weights)."""
    dst = root / version
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["version"] = version
    (dst / "manifest.json").write_text(json.dumps(m))
    if latest:
        (root / "latest").write_text(version + "\n")
    return dst


@pytest.fixture
def artifact_root(tmp_path: Path, base_artifact: Path) -> Path:
    root = tmp_path / "artifacts"
    root.mkdir()
    copy_version(base_artifact, root, "v1")
    return root


@pytest.fixture
async def embedder(artifact_root: Path) -> AsyncIterator[tuple[Any, Any, embedder_pb2_grpc.EmbedderStub]]:
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    settings = test_settings(
        EmbedderSettings, artifact_dir=str(artifact_root), device="cpu", batch_max_wait_ms=2.0
    )
    app = EmbedderApp(settings)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app.server, app.service, embedder_pb2_grpc.EmbedderStub(channel)
    finally:
        await app.stop(0)
