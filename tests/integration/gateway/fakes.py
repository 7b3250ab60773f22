"""Fake upstreams shared by the gateway's integration tests, and the retriever load they use.

``FakeEmbedder`` answers every query signal with the unit vector e0 and every trained movie
(row ``m`` of its table, ``1 <= m < len(vectors)``) with that row, as model ``fake-1``; it keeps
the EmbedQuery requests it received. ``load_vectors`` puts the same table into a real retriever
as version ``fake_1`` (what the gateway asks for: ``vector_version("fake-1")``) and activates it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.server import Server
from recsys_core.settings import ServerSettings
from recsys_core.testing import test_settings, wait_serving
from recsys_gateway.settings import GatewaySettings
from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings

MODEL = "fake-1"
VERSION = "fake_1"  # vector_version(MODEL)


@dataclass
class FakeEmbedder(embedder_pb2_grpc.EmbedderServicer):
    vectors: np.ndarray
    #: the query form it reports (0 = unspecified)
    form: int = 0
    queries: list[embedder_pb2.EmbedQueryRequest] = field(default_factory=list)

    async def EmbedQuery(self, request: embedder_pb2.EmbedQueryRequest, context: Any) -> Any:
        self.queries.append(request)
        q = np.eye(self.vectors.shape[1], dtype=np.float32)[0]
        out = [
            embedder_pb2.QueryVector(
                vector=common_pb2.Vector(values=q.tolist()),
                space=common_pb2.VECTOR_SPACE_PINSAGE,
                form=self.form,  # type: ignore[arg-type]
            )
            for _ in request.signals
        ]
        return embedder_pb2.EmbedQueryResponse(vectors=out, model_version=MODEL)

    async def EmbedItems(self, request: embedder_pb2.EmbedItemsRequest, context: Any) -> Any:
        found = [m for m in request.movie_ids if 1 <= m < len(self.vectors)]
        return embedder_pb2.EmbedItemsResponse(
            found_ids=found,
            vectors=[common_pb2.Vector(values=self.vectors[m].tolist()) for m in found],
            model_version=MODEL,
        )


async def fake_server(name: str, add: Any, servicer: Any, service: str) -> tuple[Server, int]:
    """A kit Server on an ephemeral port serving ``servicer``, health SERVING."""
    server = Server(test_settings(ServerSettings), name)
    server.add_service(add, servicer, service)
    port = await server.start()
    server.set_serving(True)
    return server, port


async def load_vectors(port: int, vectors: np.ndarray, *, chunk: int = 1000) -> None:
    """Upsert movies 1..len(vectors)-1 (row m = movie m; year 2001, Drama) into the retriever
    on ``port`` as version ``fake_1``, ``chunk`` a message, and activate it."""
    n_movies, dim = len(vectors) - 1, vectors.shape[1]

    async def chunks() -> AsyncIterator[retriever_pb2.UpsertRequest]:
        for start in range(1, n_movies + 1, chunk):
            items = [
                retriever_pb2.VectorItem(
                    movie_id=m,
                    vector=common_pb2.Vector(values=vectors[m].tolist()),
                    year=2001,
                    genres=["Drama"],
                )
                for m in range(start, min(start + chunk, n_movies + 1))
            ]
            first = start == 1
            yield retriever_pb2.UpsertRequest(
                space=common_pb2.VECTOR_SPACE_PINSAGE if first else common_pb2.VECTOR_SPACE_UNSPECIFIED,
                version=VERSION,
                dimension=dim if first else 0,
                items=items,
            )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        await wait_serving(ch, "", timeout=60)
        stub = retriever_pb2_grpc.RetrieverStub(ch)
        assert (await stub.Upsert(chunks(), timeout=60)).total == n_movies
        await stub.ActivateVersion(
            retriever_pb2.ActivateVersionRequest(space=common_pb2.VECTOR_SPACE_PINSAGE, version=VERSION),
            timeout=30,
        )


def quick_retriever(data_dir: Path) -> RetrieverApp:
    """A real retriever (Milvus Lite in ``data_dir``) that batches for at most 1 ms and notices
    its store's health within 0.2 s."""
    return RetrieverApp(
        test_settings(
            RetrieverSettings,
            data_dir=data_dir,
            batch_max_wait_ms=1.0,
            health_check_interval_s=0.2,
            connect_retry_initial_s=0.05,
            connect_retry_max_s=0.5,
        )
    )


def gateway_settings(catalog: int, embedder: int, retriever: int, **overrides: Any) -> GatewaySettings:
    """The gateway's test settings with its three upstreams on these local ports."""
    return test_settings(
        GatewaySettings,
        catalog_target=f"127.0.0.1:{catalog}",
        embedder_target=f"127.0.0.1:{embedder}",
        retriever_target=f"127.0.0.1:{retriever}",
        **overrides,
    )
