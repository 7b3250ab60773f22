"""The embedder's CPU fallback with a real Triton (pytriton's bundled tritonserver): Triton stopped
mid-test, the calls keep succeeding on the in-process model with the same model version and
vectors, the gauge and ModelInfo say so; Triton back, the embedder returns to it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys_core.testing import test_settings

pytestmark = [pytest.mark.triton, pytest.mark.slow]

GAUGE = "recsys_embedder_backend_fallback"


def _request(ids: list[int]) -> embedder_pb2.EmbedQueryRequest:
    rng = np.random.default_rng(3)
    return embedder_pb2.EmbedQueryRequest(
        signals=[
            embedder_pb2.QuerySignal(
                history=[
                    common_pb2.RatedMovie(movie_id=int(m), rating=4.0, rated_at={"seconds": 100 + j})
                    for j, m in enumerate(rng.choice(ids, 6))
                ]
            )
            for _ in range(8)
        ]
    )


async def _until(cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_triton_down_falls_back_to_cpu_and_back(
    tmp_path: Path, base_artifact: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed")
    from recsys_embedder.artifacts import load_artifact
    from recsys_embedder.backends.triton_local import LocalTriton, TritonUnavailable, site_packages
    from recsys_embedder.export import write_model_repository
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    art = load_artifact(base_artifact)
    write_model_repository(art, tmp_path / "repo", kind="python", site_packages=site_packages())
    triton = LocalTriton(tmp_path / "repo", tmp_path / "run", load_models=("recsys_query",))
    try:
        triton.start()
    except TritonUnavailable as exc:
        pytest.skip(f"tritonserver cannot start here: {exc}")
    req = _request([int(m) for m in art.movie_ids])
    gauge = lambda: REGISTRY.get_sample_value(GAUGE, {"model_version": art.version})  # noqa: E731
    settings = test_settings(
        EmbedderSettings,
        artifact_dir=str(base_artifact),
        device="cpu",
        backend="triton",
        triton_url=triton.url,
        triton_timeout_s=2.0,
        triton_check_interval_s=0.2,
    )
    app = EmbedderApp(settings)
    caplog.set_level(logging.INFO, logger="recsys_embedder.backends.fallback")
    try:
        await app.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}") as ch:
            stub = embedder_pb2_grpc.EmbedderStub(ch)

            async def call() -> tuple[np.ndarray, str, str]:
                resp = await stub.EmbedQuery(req, timeout=10)
                info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)
                vecs = np.array([list(v.vector.values) for v in resp.vectors], np.float32)
                return vecs, resp.model_version, info.backend

            on_triton, version, backend = await call()
            assert (version, backend, gauge()) == (art.version, "triton", 0.0)

            triton.stop()  # mid-test: Triton goes away
            for _ in range(3):  # every call succeeds, on CPU, same model and vectors
                vecs, v, backend = await call()
                assert (v, backend, gauge()) == (art.version, "torch-cpu (triton fallback)", 1.0)
                np.testing.assert_allclose(vecs, on_triton, atol=1e-4)

            triton.start()  # same port: the embedder's channel reconnects
            await _until(lambda: gauge() == 0.0)
            vecs, v, backend = await call()
            assert (v, backend) == (art.version, "triton")
            np.testing.assert_allclose(vecs, on_triton, atol=1e-5)
        transitions = [r.getMessage() for r in caplog.records if r.name.endswith("backends.fallback")]
        assert len(transitions) == 2, transitions  # one line per switch, not per call
        assert "triton unavailable" in transitions[0] and "triton back" in transitions[1]
    finally:
        await app.server.stop(0)
        await app.close()
        triton.stop()
