"""issue #18: two model versions through a swap under load; no response mixes them.

A real retriever (Milvus Lite) holds the item vectors of two models, published as
vector_version("m-a") and vector_version("m-b"), with different vectors. The embedder (a fake
that answers as model a or model b, switched every few milliseconds, like embedder pods picking
up a new artifact one by one) and the retriever's alias (moved back and forth) change while 32
callers send Recommends through a real gateway. Every answer must be exactly the top k of the
model it names: a query vector of one model never meets the item vectors of the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.testing import test_settings, wait_serving
from recsys_core.validation import vector_version
from recsys_gateway.server import GatewayApp
from recsys_gateway.settings import GatewaySettings
from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings

from .fakes import fake_server

N_MOVIES, DIM, K = 60, 8, 5
LIKED = (1, 2, 3)
MODELS = ("m-a", "m-b")


def _vectors(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(N_MOVIES + 1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


ITEMS = {"m-a": _vectors(1), "m-b": _vectors(2)}
QUERY = {"m-a": np.eye(DIM, dtype=np.float32)[0], "m-b": np.eye(DIM, dtype=np.float32)[1]}


def _expected(model: str) -> list[int]:
    scores = ITEMS[model][1:] @ QUERY[model]
    return [int(i) + 1 for i in np.argsort(-scores) if int(i) + 1 not in LIKED][:K]


class SwitchingEmbedder(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self) -> None:
        self.model = MODELS[0]

    async def EmbedQuery(self, request: embedder_pb2.EmbedQueryRequest, context: Any) -> Any:
        model = self.model
        await asyncio.sleep(0)  # the switch may happen while a call is in flight
        out = [
            embedder_pb2.QueryVector(
                vector=common_pb2.Vector(values=QUERY[model].tolist()), space=common_pb2.VECTOR_SPACE_PINSAGE
            )
            for _ in request.signals
        ]
        return embedder_pb2.EmbedQueryResponse(vectors=out, model_version=model)

    async def EmbedItems(self, request: embedder_pb2.EmbedItemsRequest, context: Any) -> Any:
        model = self.model
        found = [m for m in request.movie_ids if 1 <= m <= N_MOVIES]
        return embedder_pb2.EmbedItemsResponse(
            found_ids=found,
            vectors=[common_pb2.Vector(values=ITEMS[model][m].tolist()) for m in found],
            model_version=model,
        )


class Catalog(catalog_pb2_grpc.CatalogServicer):
    async def GetMovies(self, request: catalog_pb2.GetMoviesRequest, context: Any) -> Any:
        return catalog_pb2.GetMoviesResponse(
            movies=[common_pb2.Movie(movie_id=m, title=f"Movie {m}", year=2001) for m in request.movie_ids]
        )


async def _publish(stub: retriever_pb2_grpc.RetrieverStub, model: str) -> None:
    async def chunks() -> AsyncIterator[retriever_pb2.UpsertRequest]:
        yield retriever_pb2.UpsertRequest(
            space=common_pb2.VECTOR_SPACE_PINSAGE,
            version=vector_version(model),
            dimension=DIM,
            items=[
                retriever_pb2.VectorItem(
                    movie_id=m, vector=common_pb2.Vector(values=ITEMS[model][m].tolist()), year=2001
                )
                for m in range(1, N_MOVIES + 1)
            ],
        )

    assert (await stub.Upsert(chunks(), timeout=60)).total == N_MOVIES


async def _activate(stub: retriever_pb2_grpc.RetrieverStub, model: str) -> None:
    await stub.ActivateVersion(
        retriever_pb2.ActivateVersionRequest(
            space=common_pb2.VECTOR_SPACE_PINSAGE, version=vector_version(model)
        ),
        timeout=30,
    )


@pytest.mark.slow
async def test_no_response_mixes_two_models_during_a_swap(tmp_path: Path) -> None:
    assert _expected("m-a") != _expected("m-b")  # the two models disagree, so a mix would show
    retriever = RetrieverApp(
        test_settings(RetrieverSettings, data_dir=tmp_path / "retriever", alias_refresh_s=0.05)
    )
    embedder = SwitchingEmbedder()
    emb_server, emb_port = await fake_server(
        "embedder", embedder_pb2_grpc.add_EmbedderServicer_to_server, embedder, "recsys.embedder.v1.Embedder"
    )
    cat_server, cat_port = await fake_server(
        "catalog", catalog_pb2_grpc.add_CatalogServicer_to_server, Catalog(), "recsys.catalog.v1.Catalog"
    )
    gateway = None
    try:
        retriever_port = await retriever.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{retriever_port}") as rch:
            await wait_serving(rch, "", timeout=60)
            rstub = retriever_pb2_grpc.RetrieverStub(rch)
            for model in MODELS:
                await _publish(rstub, model)
            await _activate(rstub, "m-a")
            gateway = await GatewayApp.started(
                test_settings(
                    GatewaySettings,
                    catalog_target=f"127.0.0.1:{cat_port}",
                    embedder_target=f"127.0.0.1:{emb_port}",
                    retriever_target=f"127.0.0.1:{retriever_port}",
                    upstream_timeout_s=10.0,
                ),
                wait_for_upstreams=False,
            )
            quiz = gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=m) for m in LIKED], k=K)
            answers: list[gateway_pb2.RecommendResponse] = []
            stop = asyncio.Event()

            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as gch:
                stub = gateway_pb2_grpc.GatewayStub(gch)

                async def caller() -> None:
                    while not stop.is_set():
                        answers.append(await stub.Recommend(quiz, timeout=10))

                async def swapper() -> None:
                    for i in range(40):  # embedders and alias move, not in step with each other
                        embedder.model = MODELS[i % 2]
                        await asyncio.sleep(0.005)
                        if i % 3 == 0:
                            await _activate(rstub, MODELS[(i // 3) % 2])
                        await asyncio.sleep(0.01)
                    stop.set()

                await asyncio.gather(swapper(), *(caller() for _ in range(32)))
    finally:
        if gateway is not None:
            await gateway.stop(0)
        await emb_server.stop(0)
        await cat_server.stop(0)
        await retriever.server.stop(0)

    seen = {a.model_version for a in answers}
    assert seen == set(MODELS), f"the swap was not exercised: {seen}"
    mixed = [
        (a.model_version, [r.movie.movie_id for r in a.recommendations])
        for a in answers
        if [r.movie.movie_id for r in a.recommendations] != _expected(a.model_version)
    ]
    assert not mixed, f"{len(mixed)} of {len(answers)} answers mix models: {mixed[:3]}"
    assert all(not a.degraded for a in answers)
