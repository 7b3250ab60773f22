"""The embedder gRPC server end to end on a random artifact: every RPC, invalid cases, health,
reflection, reload under load (no call lost), broken artifacts refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys_core.errors import bad_request_fields
from recsys_core.testing import health_status, reflection_file_containing, test_settings
from recsys_embedder.artifacts import load_artifact

from .conftest import copy_version

SERVICE = "recsys.embedder.v1.Embedder"
pytestmark = pytest.mark.slow


def _vec(v: common_pb2.Vector) -> np.ndarray:
    return np.asarray(v.values, dtype=np.float32)


async def _call_fails(coro: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await coro
    assert exc.value.code() == code, exc.value.details()
    return exc.value


async def test_health_reflection_and_model_info(embedder: Any, artifact_root: Path) -> None:
    server, _service, stub = embedder
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        assert await health_status(ch, "") == health_pb2.HealthCheckResponse.SERVING
        assert await health_status(ch, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        files = await reflection_file_containing(ch, f"{SERVICE}.EmbedQuery")
        assert any(f.package == "recsys.embedder.v1" for f in files)
    info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)
    art = load_artifact(artifact_root)
    assert info.version == "v1"
    assert info.dimension == art.dimension
    assert info.metric == "IP"
    assert info.backend == "torch-cpu"
    assert info.movie_count == len(art.movie_ids)
    assert info.default_form == embedder_pb2.USER_FORM_PINSAGE
    assert info.two_tower_dimension == 8
    assert info.metrics["test/hr@10"] == pytest.approx(0.1)
    assert info.trained_at.seconds > 0
    assert info.dataset == "synthetic-100k"


async def test_embed_items(embedder: Any, artifact_root: Path) -> None:
    _, _, stub = embedder
    art = load_artifact(artifact_root)
    ids = [int(art.movie_ids[3]), 999_999, int(art.movie_ids[0])]
    resp = await stub.EmbedItems(embedder_pb2.EmbedItemsRequest(movie_ids=ids), timeout=5)
    assert list(resp.found_ids) == [ids[0], ids[2]]
    assert list(resp.missing_ids) == [999_999]
    np.testing.assert_allclose(_vec(resp.vectors[0]), art.item_embeddings[3], atol=1e-6)
    assert resp.model_version == "v1"
    tt = await stub.EmbedItems(
        embedder_pb2.EmbedItemsRequest(space=common_pb2.VECTOR_SPACE_TWO_TOWER, movie_ids=ids[:1]), timeout=5
    )
    assert len(tt.vectors[0].values) == 8
    err = await _call_fails(
        stub.EmbedItems(embedder_pb2.EmbedItemsRequest(movie_ids=[]), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "movie_ids" in bad_request_fields(err)
    await _call_fails(
        stub.EmbedItems(embedder_pb2.EmbedItemsRequest(movie_ids=[1, 0]), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_embed_query_history_matches_the_artifact(embedder: Any, artifact_root: Path) -> None:
    _, _, stub = embedder
    art = load_artifact(artifact_root)
    ids = [int(m) for m in art.movie_ids[:6]]
    hist = [
        common_pb2.RatedMovie(movie_id=m, rating=4.0, rated_at={"seconds": 1_000 + k})
        for k, m in enumerate(ids)
    ]
    req = embedder_pb2.EmbedQueryRequest(
        signals=[
            embedder_pb2.QuerySignal(history=hist),
            embedder_pb2.QuerySignal(
                history=hist, form=embedder_pb2.USER_FORM_MEAN, disliked_movie_ids=[ids[0]]
            ),
            embedder_pb2.QuerySignal(history=[common_pb2.RatedMovie(movie_id=987_654)]),
            embedder_pb2.QuerySignal(
                demographics=common_pb2.Demographics(
                    gender=common_pb2.GENDER_FEMALE, age=30, occupation="writer"
                )
            ),
            embedder_pb2.QuerySignal(
                history=hist, demographics=common_pb2.Demographics(age=30, occupation="12")
            ),
        ]
    )
    resp = await stub.EmbedQuery(req, timeout=10)
    assert resp.model_version == "v1" and len(resp.vectors) == 5
    want, _ = art.embed_user(ids, [4.0] * 6, [1_000 + k for k in range(6)])
    np.testing.assert_allclose(_vec(resp.vectors[0].vector), want, atol=1e-5)
    assert resp.vectors[0].form == embedder_pb2.USER_FORM_PINSAGE
    assert resp.vectors[0].space == common_pb2.VECTOR_SPACE_PINSAGE
    want_mean, _ = art.embed_user(ids, [4.0] * 6, [1_000 + k for k in range(6)], [ids[0]], form="mean")
    np.testing.assert_allclose(_vec(resp.vectors[1].vector), want_mean, atol=1e-5)
    assert len(resp.vectors[2].vector.values) == 0 and list(resp.vectors[2].unknown_movie_ids) == [987_654]
    assert resp.vectors[3].space == common_pb2.VECTOR_SPACE_TWO_TOWER
    assert len(resp.vectors[3].vector.values) == 8
    assert resp.vectors[4].space == common_pb2.VECTOR_SPACE_PINSAGE
    assert np.linalg.norm(_vec(resp.vectors[4].vector)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "signals, field",
    [
        ([], "signals"),
        ([embedder_pb2.QuerySignal()], "signals[0]"),
        (
            [embedder_pb2.QuerySignal(history=[common_pb2.RatedMovie(movie_id=5, rating=9.0)])],
            "signals[0].history[0].rating",
        ),
        (
            [embedder_pb2.QuerySignal(demographics=common_pb2.Demographics(occupation="pilot"))],
            "signals[0].demographics.occupation",
        ),
        (
            [embedder_pb2.QuerySignal(demographics=common_pb2.Demographics(age=200))],
            "signals[0].demographics.age",
        ),
        ([embedder_pb2.QuerySignal(disliked_movie_ids=[3], form=9)], "signals[0].form"),  # type: ignore[arg-type]
    ],
)
async def test_embed_query_invalid(embedder: Any, signals: list[Any], field: str) -> None:
    _, _, stub = embedder
    err = await _call_fails(
        stub.EmbedQuery(embedder_pb2.EmbedQueryRequest(signals=signals), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in bad_request_fields(err)


async def test_embed_new_movie(embedder: Any, artifact_root: Path) -> None:
    _, _, stub = embedder
    art = load_artifact(artifact_root)
    nbrs = [int(art.movie_ids[1]), int(art.movie_ids[2])]
    resp = await stub.EmbedNewMovie(
        embedder_pb2.EmbedNewMovieRequest(
            features=embedder_pb2.MovieFeatures(title="Brand New", year=2021, genres=["Drama", "Comedy"]),
            neighbour_movie_ids=[*nbrs, 555_555],
        ),
        timeout=5,
    )
    want, _ = art.embed_new_movie("Brand New", 2021, ["Drama", "Comedy"], nbrs)
    np.testing.assert_allclose(_vec(resp.vector), want, atol=1e-5)
    assert list(resp.unknown_movie_ids) == [555_555]
    await _call_fails(
        stub.EmbedNewMovie(
            embedder_pb2.EmbedNewMovieRequest(features=embedder_pb2.MovieFeatures(title="")), timeout=5
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await _call_fails(
        stub.EmbedNewMovie(
            embedder_pb2.EmbedNewMovieRequest(
                features=embedder_pb2.MovieFeatures(title="x"), neighbour_movie_ids=list(range(1, 52))
            ),
            timeout=5,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_reload_under_load_loses_no_call(embedder: Any, artifact_root: Path) -> None:
    _, _, stub = embedder
    copy_version(artifact_root / "v1", artifact_root, "v2", latest=False)
    art = load_artifact(artifact_root)
    ids = [int(m) for m in art.movie_ids[:4]]
    req = embedder_pb2.EmbedQueryRequest(
        signals=[embedder_pb2.QuerySignal(history=[common_pb2.RatedMovie(movie_id=m) for m in ids])]
    )
    stop = asyncio.Event()
    versions: list[str] = []

    async def caller() -> int:
        n = 0
        while not stop.is_set():
            resp = await stub.EmbedQuery(req, timeout=10)  # any failure fails the test
            assert len(resp.vectors[0].vector.values) == art.dimension
            versions.append(resp.model_version)
            n += 1
        return n

    tasks = [asyncio.ensure_future(caller()) for _ in range(64)]
    await asyncio.sleep(0.3)
    info = await stub.Reload(embedder_pb2.ReloadRequest(version="v2"), timeout=30)
    assert info.version == "v2"
    await asyncio.sleep(0.3)
    info = await stub.Reload(embedder_pb2.ReloadRequest(version="v1"), timeout=30)
    await asyncio.sleep(0.2)
    stop.set()
    counts = await asyncio.gather(*tasks)
    assert all(c > 0 for c in counts)
    assert {"v1", "v2"} <= set(versions)
    assert info.version == "v1"


async def test_broken_or_missing_artifact_is_refused(embedder: Any, artifact_root: Path) -> None:
    _, _, stub = embedder
    broken = copy_version(artifact_root / "v1", artifact_root, "v3", latest=False)
    (broken / "item_embeddings.npy").write_bytes(b"not numpy")
    await _call_fails(
        stub.Reload(embedder_pb2.ReloadRequest(version="v3"), timeout=30), grpc.StatusCode.FAILED_PRECONDITION
    )
    await _call_fails(
        stub.Reload(embedder_pb2.ReloadRequest(version="v404"), timeout=30), grpc.StatusCode.NOT_FOUND
    )
    await _call_fails(
        stub.Reload(embedder_pb2.ReloadRequest(version="../v1"), timeout=30), grpc.StatusCode.NOT_FOUND
    )
    info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)
    assert info.version == "v1"


async def test_not_serving_until_the_model_is_loaded(artifact_root: Path) -> None:
    from recsys_embedder.backends.loader import ArtifactLoader
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    release = asyncio.Event()

    class SlowLoader(ArtifactLoader):
        async def load(self, version: str) -> Any:
            await release.wait()
            return await super().load(version)

    settings = test_settings(EmbedderSettings, artifact_dir=str(artifact_root), device="cpu")
    app = EmbedderApp(settings, SlowLoader(artifact_root, device="cpu"))
    task = asyncio.ensure_future(app.start())
    try:
        for _ in range(500):
            if app.server.started:
                break
            await asyncio.sleep(0.01)
        assert app.server.started, "server did not start listening"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            assert await health_status(ch, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await health_status(ch, "") == health_pb2.HealthCheckResponse.NOT_SERVING
            release.set()
            await task
            assert await health_status(ch, SERVICE) == health_pb2.HealthCheckResponse.SERVING
            stub = embedder_pb2_grpc.EmbedderStub(ch)
            assert (await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)).version == "v1"
    finally:
        release.set()
        if app.server.started:
            if not task.done():
                await asyncio.wait([task])
            await app.stop(0)


async def test_start_fails_without_an_artifact(tmp_path: Path) -> None:
    from recsys_core.errors import FailedPrecondition
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    settings = test_settings(EmbedderSettings, artifact_dir=str(tmp_path / "none"), device="cpu")
    with pytest.raises(FailedPrecondition, match="no artifact"):
        await EmbedderApp(settings).start()


async def test_file_watch_switches_to_a_new_latest(artifact_root: Path) -> None:
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings

    settings = test_settings(
        EmbedderSettings, artifact_dir=str(artifact_root), device="cpu", watch_interval_s=0.05
    )
    app = EmbedderApp(settings)
    await app.start()
    server, service = app.server, app.service
    try:
        assert app.watch_task is not None and service.version == "v1"
        copy_version(artifact_root / "v1", artifact_root, "v2")
        for _ in range(200):
            if service.version == "v2":
                break
            await asyncio.sleep(0.05)
        assert service.version == "v2"
    finally:
        await server.stop(0)
