"""Degraded answers, said so (issue #16 item 1), through the real gateway server.

1. The catalog down (its target a dead port): a real retriever (Milvus Lite) and a fake embedder
   still answer quiz Recommends and SimilarMovies, flagged ``catalog: movie metadata`` with
   id-only cards; the catalog's circuit opens; Recommend by user id and ListGenres (never read)
   are UNAVAILABLE naming the catalog.
2. The retriever hangs (a fake that never answers): a Recommend with a 2 s deadline is answered
   with the catalog's popular movies, flagged ``retriever: popular list served``, within its
   deadline; once the retriever's circuit is open the fallback is immediate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.testing import free_port
from recsys_gateway.server import GatewayApp

from .fakes import FakeEmbedder, fake_server, gateway_settings, load_vectors, quick_retriever

N_MOVIES, DIM = 50, 8
LIKED = (1, 2, 3)
QUIZ = gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=m) for m in LIKED], k=5)


def _vectors() -> np.ndarray:
    rng = np.random.default_rng(16)
    v = rng.normal(size=(N_MOVIES + 1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _circuit(upstream: str) -> float | None:
    return REGISTRY.get_sample_value("recsys_gateway_upstream_circuit_state", {"upstream": upstream})


def _degraded(rpc: str, reason: str) -> float:
    labels = {"rpc": rpc, "reason": reason}
    return REGISTRY.get_sample_value("recsys_gateway_degraded_responses_total", labels) or 0.0


@dataclass
class FakeCatalog(catalog_pb2_grpc.CatalogServicer):
    """Popular = ascending ids; every movie known."""

    @staticmethod
    def _movie(m: int) -> common_pb2.Movie:
        return common_pb2.Movie(movie_id=m, title=f"Movie {m}", year=2001)

    async def GetPopular(self, request: catalog_pb2.GetPopularRequest, context: Any) -> Any:
        excluded = set(request.exclude_ids)
        ids = [m for m in range(1, N_MOVIES + 1) if m not in excluded][: request.k]
        return catalog_pb2.GetPopularResponse(
            movies=[self._movie(m) for m in ids], scores=[1.0 / m for m in ids]
        )

    async def GetMovies(self, request: catalog_pb2.GetMoviesRequest, context: Any) -> Any:
        return catalog_pb2.GetMoviesResponse(movies=[self._movie(m) for m in request.movie_ids])


class HangingRetriever(retriever_pb2_grpc.RetrieverServicer):
    """A retriever that takes every Search and never answers (e.g. SIGSTOPped)."""

    def __init__(self) -> None:
        self.searches = 0

    async def Search(self, request: retriever_pb2.SearchRequest, context: Any) -> Any:
        self.searches += 1
        await asyncio.sleep(3600)


@pytest.fixture
def vectors() -> Iterator[np.ndarray]:
    yield _vectors()


@pytest.fixture
async def no_catalog(tmp_path: Path, vectors: np.ndarray) -> AsyncIterator[gateway_pb2_grpc.GatewayStub]:
    """Real retriever, fake embedder, the catalog a dead port."""
    retriever = quick_retriever(tmp_path / "retriever")
    embedder, embedder_port = await fake_server(
        "embedder",
        embedder_pb2_grpc.add_EmbedderServicer_to_server,
        FakeEmbedder(vectors),
        "recsys.embedder.v1.Embedder",
    )
    gateway = None
    try:
        retriever_port = await retriever.start()
        await load_vectors(retriever_port, vectors)
        gateway = await GatewayApp.started(
            gateway_settings(
                free_port(),
                embedder_port,
                retriever_port,
                upstream_timeout_s=5.0,
                breaker_failures=2,
                breaker_cooldown_s=60.0,
            ),
            wait_for_upstreams=False,
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
            yield gateway_pb2_grpc.GatewayStub(ch)
    finally:
        if gateway is not None:
            await gateway.stop(0)
        await embedder.stop(0)
        await retriever.server.stop(0)


async def test_quiz_and_similar_are_served_without_the_catalog(
    no_catalog: gateway_pb2_grpc.GatewayStub, vectors: np.ndarray
) -> None:
    before = _degraded("Recommend", "catalog: movie metadata")
    resp = await no_catalog.Recommend(QUIZ, timeout=10)
    # The retriever's answer (nearest to e0, liked movies excluded), cards with the id alone.
    nearest = [int(i) for i in np.argsort(-vectors[1:, 0]) + 1 if int(i) not in LIKED][:5]
    assert [r.movie.movie_id for r in resp.recommendations] == nearest
    assert all(r.movie == common_pb2.Movie(movie_id=r.movie.movie_id) for r in resp.recommendations)
    assert list(resp.degraded) == ["catalog: movie metadata"]
    assert resp.strategy == gateway_pb2.STRATEGY_PERSONALIZED and resp.model_version == "fake-1"
    assert _degraded("Recommend", "catalog: movie metadata") == before + 1

    similar = await no_catalog.SimilarMovies(gateway_pb2.SimilarMoviesRequest(movie_id=10, k=5), timeout=10)
    assert len(similar.movies) == 5 and 10 not in [r.movie.movie_id for r in similar.movies]
    assert list(similar.degraded) == ["catalog: movie metadata"]

    # Two failures: the catalog's circuit is open, and the next answers do not wait for it.
    assert _circuit("catalog") == 2
    started = time.monotonic()
    again = await no_catalog.Recommend(QUIZ, timeout=10)
    assert time.monotonic() - started < 0.5
    assert list(again.degraded) == ["catalog: movie metadata"]


async def test_what_needs_the_catalog_is_unavailable_naming_it(
    no_catalog: gateway_pb2_grpc.GatewayStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await no_catalog.Recommend(gateway_pb2.RecommendRequest(user_id=42), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    details = exc.value.details() or ""
    assert details.startswith("catalog: unavailable") and "needs the user's history" in details
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await no_catalog.ListGenres(gateway_pb2.ListGenresRequest(), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (exc.value.details() or "").startswith("catalog: unavailable")


@pytest.fixture
async def hanging_retriever() -> AsyncIterator[tuple[gateway_pb2_grpc.GatewayStub, HangingRetriever]]:
    """Fake catalog and embedder, a retriever that never answers."""
    hanging = HangingRetriever()
    servers = [
        await fake_server(
            "catalog",
            catalog_pb2_grpc.add_CatalogServicer_to_server,
            FakeCatalog(),
            "recsys.catalog.v1.Catalog",
        ),
        await fake_server(
            "embedder",
            embedder_pb2_grpc.add_EmbedderServicer_to_server,
            FakeEmbedder(_vectors()),
            "recsys.embedder.v1.Embedder",
        ),
        await fake_server(
            "retriever",
            retriever_pb2_grpc.add_RetrieverServicer_to_server,
            hanging,
            "recsys.retriever.v1.Retriever",
        ),
    ]
    (_, catalog_port), (_, embedder_port), (_, retriever_port) = servers
    gateway = await GatewayApp.started(
        gateway_settings(
            catalog_port,
            embedder_port,
            retriever_port,
            upstream_timeout_s=5.0,
            breaker_failures=2,
            breaker_cooldown_s=60.0,
        ),
        wait_for_upstreams=False,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
            yield gateway_pb2_grpc.GatewayStub(ch), hanging
    finally:
        await gateway.stop(0)
        for server, _ in servers:
            await server.stop(0)


async def test_a_hanging_retriever_gets_popular_movies_within_the_deadline(
    hanging_retriever: tuple[gateway_pb2_grpc.GatewayStub, HangingRetriever],
) -> None:
    gateway, retriever = hanging_retriever
    for _ in range(2):
        started = time.monotonic()
        resp = await gateway.Recommend(QUIZ, timeout=2.0)
        elapsed = time.monotonic() - started
        # The search had its slice (half the deadline), then the popular list answered.
        assert 0.8 < elapsed < 1.8, elapsed
        assert resp.strategy == gateway_pb2.STRATEGY_POPULAR
        assert list(resp.degraded) == ["retriever: popular list served"]
        assert [r.movie.movie_id for r in resp.recommendations] == [4, 5, 6, 7, 8]  # liked excluded
        assert all(r.movie.title for r in resp.recommendations)
    assert retriever.searches == 2
    # The retriever's circuit is open: the fallback is immediate, nothing is sent to it.
    assert _circuit("retriever") == 2
    started = time.monotonic()
    resp = await gateway.Recommend(QUIZ, timeout=2.0)
    assert time.monotonic() - started < 0.5
    assert list(resp.degraded) == ["retriever: popular list served"] and retriever.searches == 2
