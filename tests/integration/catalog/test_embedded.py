"""The embedded PostgreSQL default (no DSN): start, migrate, load, serve; the database stopping
under a running server gives UNAVAILABLE + NOT_SERVING, and the server recovers when it returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recsys.catalog.v1 import catalog_pb2 as pb
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys_catalog.servicer import SERVICE_NAME
from recsys_catalog.testing import catalog_server
from recsys_core.testing import health_status
from recsys_data import Dataset

from .conftest import initialised_embedded_dir

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return initialised_embedded_dir(tmp_path_factory.mktemp("embedded") / "pg")


async def test_embedded_serves_and_recovers(embedded_dir: Path, dataset_dir: Path, dataset: Dataset) -> None:
    async with catalog_server(
        None, dataset=dataset_dir, data_dir=embedded_dir, health_check_interval_s=0.2
    ) as (app, port):
        assert app.embedded is not None and app.embedded.running
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = catalog_pb2_grpc.CatalogStub(ch)
            info = await stub.Describe(pb.DescribeRequest(), timeout=10)
            assert info.movie_count == len(dataset.movies) and info.schema_version >= 1

            await app.embedded.stop()  # the database goes away under the running server
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[1]), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "postgresql" in (err.value.details() or "")
            await asyncio.sleep(0.6)
            assert await health_status(ch, SERVICE_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING

            await app.embedded.start()  # it comes back: no restart of the catalog needed
            for _ in range(50):
                if await health_status(ch, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.1)
            assert await health_status(ch, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
            resp = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[1]), timeout=10)
            assert [m.movie_id for m in resp.movies] == [1]
    assert not app.embedded.running  # stopped on drain
