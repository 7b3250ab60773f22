"""The Triton backend for real: pytriton's bundled tritonserver (CPU, python backend running the
exported ONNX through onnxruntime) behind the embedder server; same vectors as in-process torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys_core.testing import test_settings

pytestmark = [pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory, base_artifact: Path) -> Iterator[str]:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed")
    from recsys_embedder.artifacts import load_artifact
    from recsys_embedder.backends.triton_local import LocalTriton, TritonUnavailable, site_packages
    from recsys_embedder.export import write_model_repository

    work = tmp_path_factory.mktemp("triton")
    write_model_repository(
        load_artifact(base_artifact), work / "repo", kind="python", site_packages=site_packages()
    )
    server = LocalTriton(work / "repo", work / "run")
    try:
        server.start()
    except TritonUnavailable as exc:
        pytest.skip(f"tritonserver cannot start here: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


def _requests(ids: list[int]) -> embedder_pb2.EmbedQueryRequest:
    rng = np.random.default_rng(0)
    signals = []
    for k in range(40):
        hist = [
            common_pb2.RatedMovie(
                movie_id=int(m), rating=float(rng.choice([0.0, 3.0, 4.0, 5.0])), rated_at={"seconds": 100 + j}
            )
            for j, m in enumerate(rng.choice(ids, int(rng.integers(1, 20))))
        ]
        signals.append(
            embedder_pb2.QuerySignal(
                history=hist,
                disliked_movie_ids=[int(m) for m in rng.choice(ids, int(rng.integers(0, 3)))],
                form=k % 5,  # type: ignore[arg-type]
            )
        )
    return embedder_pb2.EmbedQueryRequest(signals=signals)


async def _vectors(settings: Any, req: embedder_pb2.EmbedQueryRequest) -> tuple[np.ndarray, str]:
    from recsys_embedder.server import EmbedderApp

    app = EmbedderApp(settings)
    await app.start()
    server = app.server
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = embedder_pb2_grpc.EmbedderStub(ch)
            info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)
            resp = await stub.EmbedQuery(req, timeout=30)
            return np.array([list(v.vector.values) for v in resp.vectors], np.float32), info.backend
    finally:
        await server.stop(0)


async def test_triton_backend_gives_the_in_process_vectors(triton: str, base_artifact: Path) -> None:
    from recsys_embedder.artifacts import load_artifact
    from recsys_embedder.settings import EmbedderSettings

    art = load_artifact(base_artifact)
    req = _requests([int(m) for m in art.movie_ids])
    common = {"artifact_dir": str(base_artifact), "device": "cpu"}
    local, b1 = await _vectors(test_settings(EmbedderSettings, backend="torch", **common), req)
    remote, b2 = await _vectors(
        test_settings(
            EmbedderSettings, backend="triton", triton_url=triton, batch_max_concurrency=2, **common
        ),
        req,
    )
    assert (b1, b2) == ("torch-cpu", "triton")
    assert local.shape == remote.shape == (40, art.dimension)
    np.testing.assert_allclose(remote, local, atol=1e-5)


async def test_triton_model_from_another_version_is_refused(
    triton: str, base_artifact: Path, tmp_path: Path
) -> None:
    from recsys_core.errors import FailedPrecondition
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    from .conftest import copy_version

    root = tmp_path / "arts"
    root.mkdir()
    copy_version(base_artifact, root, "v2")
    settings = test_settings(EmbedderSettings, artifact_dir=str(root), backend="triton", triton_url=triton)
    with pytest.raises(FailedPrecondition, match="exported from artifact v1"):
        await EmbedderApp(settings).start()


async def test_triton_unreachable_is_unavailable(base_artifact: Path) -> None:
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed")
    from recsys_core.errors import DependencyUnavailable
    from recsys_embedder.backends.triton_local import _free_port
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    settings = test_settings(
        EmbedderSettings,
        artifact_dir=str(base_artifact),
        backend="triton",
        triton_url=f"127.0.0.1:{_free_port()}",
        triton_timeout_s=2.0,
    )
    with pytest.raises(DependencyUnavailable):
        await EmbedderApp(settings).start()
