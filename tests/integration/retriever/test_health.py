"""Health follows the store's reachability (in-memory store switched off and on): no Milvus needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.testing import health_status, test_settings, wait_serving
from recsys_retriever.memory_store import MemoryStore
from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings

SERVICE = "recsys.retriever.v1.Retriever"


async def wait_for(channel: grpc.aio.Channel, want: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while await health_status(channel, SERVICE) != want:
        assert time.monotonic() < deadline, f"health never became {want}"
        await asyncio.sleep(0.02)


async def test_not_serving_until_reachable_unavailable_then_recovered() -> None:
    store = MemoryStore()
    store.available = False
    settings = test_settings(
        RetrieverSettings,
        health_check_interval_s=0.05,
        connect_retry_initial_s=0.02,
        connect_retry_max_s=0.05,
    )
    app = RetrieverApp(settings, store=store)
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retriever_pb2_grpc.RetrieverStub(channel)
            await asyncio.sleep(0.2)
            assert await health_status(channel, SERVICE) == 2  # NOT_SERVING while it retries
            store.available = True
            await wait_serving(channel, SERVICE, timeout=20)

            v = common_pb2.Vector(values=[1.0, 0.0, 0.0, 0.0])
            item = retriever_pb2.VectorItem(movie_id=1, vector=v)

            async def one() -> AsyncIterator[retriever_pb2.UpsertRequest]:
                yield retriever_pb2.UpsertRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE, version="v1", dimension=4, items=[item]
                )

            await stub.Upsert(one())
            await stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v1"))
            req = retriever_pb2.SearchRequest(queries=[retriever_pb2.SearchQuery(vector=v)], k=1)
            assert (await stub.Search(req)).results[0].hits[0].movie_id == 1

            store.available = False
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.Describe(retriever_pb2.DescribeRequest())
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "milvus" in (exc.value.details() or "")
            await wait_for(channel, 2)

            store.available = True
            await wait_for(channel, 1)
            assert (await stub.Search(req)).results[0].hits[0].score == pytest.approx(1.0)
    finally:
        await app.stop(0)
