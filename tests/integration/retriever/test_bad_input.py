"""Hostile input against the retriever's real servicer on a kit server (the in-memory store):
undecodable bodies on every RPC (the client-streaming Upsert included) and oversized genres get a
short INVALID_ARGUMENT (issue #16, findings 3 and 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.server import Server
from recsys_core.testing import serving, test_settings
from recsys_retriever.memory_store import MemoryStore
from recsys_retriever.service import RetrieverService
from recsys_retriever.servicer import SERVICE_NAME, RetrieverServicer

RETRIEVER = retriever_pb2.DESCRIPTOR.services_by_name["Retriever"]
BODIES = (bytes(range(256)), b"\x0a\xff\x01", b"\xff" * 11)


@pytest.fixture
async def retriever() -> AsyncIterator[grpc.aio.Channel]:
    server = Server(test_settings(), "retriever")
    servicer = RetrieverServicer(RetrieverService(MemoryStore()))
    server.add_service(retriever_pb2_grpc.add_RetrieverServicer_to_server, servicer, SERVICE_NAME)
    async with serving(server) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel


@pytest.mark.parametrize("method", sorted(RETRIEVER.methods_by_name))
async def test_every_rpc_refuses_undecodable_bodies(retriever: grpc.aio.Channel, method: str) -> None:
    desc = RETRIEVER.methods_by_name[method]
    path = f"/{RETRIEVER.full_name}/{method}"
    for body in BODIES:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            if desc.client_streaming:
                call = retriever.stream_unary(path, request_serializer=None, response_deserializer=None)
                await call(iter([body]), timeout=5)
            else:
                unary = retriever.unary_unary(path, request_serializer=None, response_deserializer=None)
                await unary(body, timeout=5)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, exc.value)
        details = exc.value.details() or ""
        assert details.startswith(f"request body is not a valid {desc.input_type.full_name}"), details


async def test_a_huge_genre_gets_a_short_invalid_argument(retriever: grpc.aio.Channel) -> None:
    stub = retriever_pb2_grpc.RetrieverStub(retriever)
    req = retriever_pb2.SearchRequest(
        queries=[retriever_pb2.SearchQuery(vector=common_pb2.Vector(values=[1.0, 0.0]))],
        k=5,
        filter=common_pb2.MovieFilter(genres_any=["G" * 7000]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Search(req, timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    details = exc.value.details() or ""
    assert len(details) < 200 and "G" * 64 + "'…" in details, details
