"""Toy servicers with controllable behaviour, served through the kit on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.client import remaining_timeout
from recsys_core.logs import get_request_id
from recsys_core.server import Server
from recsys_core.testing import serving, test_settings

CATALOG = "recsys.catalog.v1.Catalog"
RETRIEVER = "recsys.retriever.v1.Retriever"
ECHO = "kit.test.Echo"


class Toy:
    """Shared knobs: ``errors[method]`` is raised, ``fail_times[method]`` raises UNAVAILABLE n times,
    ``delay[method]`` sleeps first; ``calls``, ``request_ids`` and ``budgets`` record what happened."""

    def __init__(self) -> None:
        self.errors: dict[str, BaseException] = {}
        self.fail_times: collections.Counter[str] = collections.Counter()
        self.delay: dict[str, float] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.request_ids: list[str] = []
        self.budgets: list[float] = []
        self.entered: asyncio.Event = asyncio.Event()
        self.downstream: catalog_pb2_grpc.CatalogStub | None = None

    async def enter(self, method: str) -> None:
        from recsys_core.errors import DependencyUnavailable

        self.calls[method] += 1
        self.request_ids.append(get_request_id())
        self.budgets.append(remaining_timeout(1000.0))
        self.entered.set()
        if method in self.delay:
            await asyncio.sleep(self.delay[method])
        if self.fail_times[method] > 0:
            self.fail_times[method] -= 1
            raise DependencyUnavailable("toy-db", "connection refused")
        if method in self.errors:
            raise self.errors[method]


class ToyCatalog(catalog_pb2_grpc.CatalogServicer):
    def __init__(self, toy: Toy) -> None:
        self.toy = toy

    async def GetMovies(self, request: Any, context: Any) -> Any:
        await self.toy.enter("GetMovies")
        if self.toy.downstream is not None:  # a second hop through an open_channel client
            return await self.toy.downstream.GetMovies(request, timeout=remaining_timeout(5.0))
        movies = [common_pb2.Movie(movie_id=i, title=f"movie {i}") for i in request.movie_ids if i < 1000]
        missing = [i for i in request.movie_ids if i >= 1000]
        return catalog_pb2.GetMoviesResponse(movies=movies, missing_ids=missing)

    async def Describe(self, request: Any, context: Any) -> Any:
        await self.toy.enter("Describe")
        return catalog_pb2.DescribeResponse(movie_count=3, genres=["Drama"])


class ToyRetriever(retriever_pb2_grpc.RetrieverServicer):
    """Client streaming Upsert (as the real retriever's)."""

    def __init__(self, toy: Toy) -> None:
        self.toy = toy

    async def Upsert(self, request_iterator: Any, context: Any) -> Any:
        await self.toy.enter("Upsert")
        n = 0
        async for req in request_iterator:
            n += len(req.items)
            if "Upsert-mid" in self.toy.errors:
                raise self.toy.errors["Upsert-mid"]
        return retriever_pb2.UpsertResponse(upserted=n, total=n)


def _echo_handler(toy: Toy) -> grpc.GenericRpcHandler:
    """A server-streaming method (no such RPC in our protos): bytes in, n chunks out."""

    async def chunks(request: bytes, context: Any) -> AsyncIterator[bytes]:
        await toy.enter("Chunks")
        for i in range(3):
            if i == 2 and "Chunks-mid" in toy.errors:
                raise toy.errors["Chunks-mid"]
            yield request + str(i).encode()

    async def echo(request_iterator: Any, context: Any) -> AsyncIterator[bytes]:
        await toy.enter("Echo")
        async for item in request_iterator:
            if item == b"boom":
                raise ValueError("boom")
            yield item.upper()

    async def own_status(request: bytes, context: Any) -> bytes:
        await toy.enter("OwnStatus")
        if request == b"abort":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "own abort")
        if request == b"sleep":
            await asyncio.sleep(30)
        context.set_code(grpc.StatusCode.ALREADY_EXISTS)
        context.set_details("set code")
        return b""

    return grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Chunks": grpc.unary_stream_rpc_method_handler(chunks),
            "Echo": grpc.stream_stream_rpc_method_handler(echo),
            "OwnStatus": grpc.unary_unary_rpc_method_handler(own_status),
        },
    )


def build_server(toy: Toy, **overrides: Any) -> Server:
    server = Server(test_settings(**overrides), "kit-test")
    server.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, ToyCatalog(toy), CATALOG)
    server.add_service(retriever_pb2_grpc.add_RetrieverServicer_to_server, ToyRetriever(toy), RETRIEVER)
    server.add_service(
        lambda _servicer, srv: srv.add_generic_rpc_handlers((_echo_handler(toy),)),
        None,
        ECHO,
    )
    return server


@pytest.fixture
def toy() -> Toy:
    return Toy()


@pytest.fixture
async def kit(toy: Toy) -> AsyncIterator[tuple[Server, grpc.aio.Channel, Toy]]:
    """A running (SERVING) toy server and a plain channel to it."""
    async with serving(build_server(toy)) as (server, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield server, channel, toy


@pytest.fixture
def make_server(toy: Toy) -> Any:
    """``make_server(toy=None, **settings_overrides) -> Server`` (not started) serving toy servicers
    (the fixture's ``toy`` unless another is given)."""

    def make(toy_: Toy | None = None, **overrides: Any) -> Server:
        return build_server(toy_ or toy, **overrides)

    return make
