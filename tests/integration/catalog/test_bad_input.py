"""Hostile input against the catalog's real servicer on a kit server (a fake store: no PostgreSQL
needed, every refusal here happens before the store): undecodable bodies on every RPC, invalid
``rated_at`` and oversized genres get a short INVALID_ARGUMENT (issue #16, findings 3-5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys_catalog.service import CatalogService
from recsys_catalog.servicer import SERVICE_NAME, CatalogServicer
from recsys_core.server import Server
from recsys_core.testing import serving, test_settings

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["Catalog"]


class GenresOnlyStore:
    """Answers the genre vocabulary; anything else would be a test failure (AttributeError)."""

    async def genres(self) -> list[str]:
        return ["Drama", "Comedy"]


@pytest.fixture
async def catalog() -> AsyncIterator[grpc.aio.Channel]:
    server = Server(test_settings(), "catalog")
    servicer = CatalogServicer(CatalogService(GenresOnlyStore()))  # type: ignore[arg-type]
    server.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, servicer, SERVICE_NAME)
    async with serving(server) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel


@pytest.mark.parametrize("method", sorted(CATALOG.methods_by_name))
async def test_every_rpc_refuses_undecodable_bodies(catalog: grpc.aio.Channel, method: str) -> None:
    call = catalog.unary_unary(
        f"/{CATALOG.full_name}/{method}", request_serializer=None, response_deserializer=None
    )
    input_type = CATALOG.methods_by_name[method].input_type.full_name
    for body in (bytes(range(256)), b"\x0a\xff\x01", b"\xff" * 11):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(body, timeout=5)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, exc.value)
        assert (exc.value.details() or "").startswith(f"request body is not a valid {input_type}")


@pytest.mark.parametrize(
    ("seconds", "nanos", "part"),
    [(2**63 - 1, 0, "seconds"), (-(2**62), 0, "seconds"), (0, -1, "nanos"), (0, 10**9, "nanos")],
)
async def test_record_ratings_refuses_invalid_rated_at(
    catalog: grpc.aio.Channel, seconds: int, nanos: int, part: str
) -> None:
    stub = catalog_pb2_grpc.CatalogStub(catalog)
    ratings = [
        common_pb2.Rating(user_id=1, movie_id=1, rating=4, rated_at=Timestamp(seconds=881250949))
        for _ in range(3)
    ]
    ratings.append(
        common_pb2.Rating(user_id=1, movie_id=2, rating=4, rated_at=Timestamp(seconds=seconds, nanos=nanos))
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.RecordRatings(catalog_pb2.RecordRatingsRequest(ratings=ratings), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    assert (exc.value.details() or "").startswith(f"ratings[3].rated_at.{part} must be")


async def test_a_huge_genre_gets_a_short_invalid_argument(catalog: grpc.aio.Channel) -> None:
    stub = catalog_pb2_grpc.CatalogStub(catalog)
    flt = common_pb2.MovieFilter(genres_any=["G" * 7000])
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.SampleMovies(catalog_pb2.SampleMoviesRequest(n=5, filter=flt), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    details = exc.value.details() or ""
    assert len(details) < 200 and "G" * 64 + "'…" in details, details
