"""Degraded answers, said so (issue #16): the gateway's fallbacks against the in-memory fakes."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from prometheus_client import REGISTRY
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys_core.client import reset_deadline, set_deadline
from recsys_core.errors import UpstreamError
from recsys_gateway.batching import BatchingUpstreams
from recsys_gateway.resilience import (
    CATALOG_GENRES,
    CATALOG_METADATA,
    EMBEDDER_BECAUSE,
    EMBEDDER_POPULAR,
    RETRIEVER_POPULAR,
    HopBudget,
)
from recsys_gateway.service import GatewayOptions, GatewayService
from recsys_gateway.upstreams import _Upstream

from .test_gateway_service import FakeUpstreams

QUIZ = gateway_pb2.RecommendRequest(
    liked=[common_pb2.RatedMovie(movie_id=m) for m in (1, 2, 3)], disliked_movie_ids=[4], k=10
)
DEMO = gateway_pb2.RecommendRequest(demographics=common_pb2.Demographics(gender=1, age=25), k=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _svc(fake: FakeUpstreams, clock: Clock | None = None, **opts: object) -> GatewayService:
    options = GatewayOptions(fallbacks=True, **opts)  # type: ignore[arg-type]
    return GatewayService(fake, options, clock=clock or Clock())


def _degraded(rpc: str, reason: str) -> float:
    labels = {"rpc": rpc, "reason": reason}
    return REGISTRY.get_sample_value("recsys_gateway_degraded_responses_total", labels) or 0.0


async def test_quiz_without_catalog_is_served_with_ids_only_and_flagged() -> None:
    fake = FakeUpstreams()
    healthy = await _svc(FakeUpstreams()).recommend(QUIZ)
    fake.fail["catalog.GetMovies"] = grpc.StatusCode.UNAVAILABLE
    before = _degraded("Recommend", CATALOG_METADATA)
    resp = await _svc(fake).recommend(QUIZ)
    assert list(resp.degraded) == [CATALOG_METADATA]
    assert _degraded("Recommend", CATALOG_METADATA) == before + 1
    # The same movies, in the same order, as with the catalog up; cards hold the id alone.
    assert [r.movie.movie_id for r in resp.recommendations] == [
        r.movie.movie_id for r in healthy.recommendations
    ]
    assert all(r.movie == common_pb2.Movie(movie_id=r.movie.movie_id) for r in resp.recommendations)
    # "because you liked" still comes from the embedder, without a title to show.
    assert all(r.because_movie_id in {1, 2, 3} and not r.because_title for r in resp.recommendations)
    assert resp.strategy == gateway_pb2.STRATEGY_PERSONALIZED and not healthy.degraded


async def test_expired_cached_cards_are_served_while_the_catalog_is_down() -> None:
    fake = FakeUpstreams()
    fake.metadata_version = 1  # a versioned catalog: its cards are cached
    clock = Clock()
    svc = _svc(fake, clock, movie_cache_ttl_s=10.0)
    first = await svc.recommend(QUIZ)
    assert not first.degraded
    clock.now += 3600  # far past the TTL
    fake.fail["catalog.GetMovies"] = grpc.StatusCode.UNAVAILABLE
    resp = await svc.recommend(QUIZ)
    assert list(resp.degraded) == [CATALOG_METADATA]
    assert [r.movie for r in resp.recommendations] == [r.movie for r in first.recommendations]
    assert all(r.movie.title for r in resp.recommendations)
    assert [r.because_title for r in resp.recommendations] == [r.because_title for r in first.recommendations]


async def test_demographics_without_catalog_is_served() -> None:
    fake = FakeUpstreams()
    fake.fail["catalog.GetMovies"] = grpc.StatusCode.DEADLINE_EXCEEDED
    resp = await _svc(fake).recommend(DEMO)
    assert resp.strategy == gateway_pb2.STRATEGY_DEMOGRAPHIC
    assert len(resp.recommendations) == 10 and list(resp.degraded) == [CATALOG_METADATA]


async def test_user_id_without_catalog_is_unavailable_saying_why() -> None:
    fake = FakeUpstreams()
    fake.fail["catalog.GetUserHistory"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError) as exc:
        await _svc(fake).recommend(gateway_pb2.RecommendRequest(user_id=7))
    assert exc.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert exc.value.message.startswith("catalog: boom")
    assert "Recommend by user_id needs the user's history" in exc.value.message


async def test_without_retriever_popular_movies_are_served_flagged() -> None:
    fake = FakeUpstreams()
    fake.fail["retriever.Search"] = grpc.StatusCode.UNAVAILABLE
    before = _degraded("Recommend", RETRIEVER_POPULAR)
    resp = await _svc(fake).recommend(QUIZ)
    assert resp.strategy == gateway_pb2.STRATEGY_POPULAR
    assert list(resp.degraded) == [RETRIEVER_POPULAR]
    ids = [r.movie.movie_id for r in resp.recommendations]
    assert len(ids) == 10 and not set(ids) & {1, 2, 3, 4}  # liked and disliked still excluded
    assert all(r.movie.title for r in resp.recommendations)
    assert _degraded("Recommend", RETRIEVER_POPULAR) == before + 1
    # By user id too: the seen movies are excluded from the popular list.
    resp = await _svc(fake).recommend(gateway_pb2.RecommendRequest(user_id=7))
    assert list(resp.degraded) == [RETRIEVER_POPULAR]
    assert not {r.movie.movie_id for r in resp.recommendations} & {1, 2, 3, 4, 5}


async def test_without_retriever_and_catalog_the_retriever_failure_is_reported() -> None:
    fake = FakeUpstreams()
    fake.fail["retriever.Search"] = grpc.StatusCode.UNAVAILABLE
    fake.fail["catalog.GetPopular"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError) as exc:
        await _svc(fake).recommend(QUIZ)
    assert exc.value.upstream == "retriever" and exc.value.status_code == grpc.StatusCode.UNAVAILABLE


async def test_a_caller_error_from_an_upstream_is_not_degraded() -> None:
    fake = FakeUpstreams()
    fake.fail["retriever.Search"] = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(UpstreamError) as exc:
        await _svc(fake).recommend(QUIZ)
    assert exc.value.status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert "catalog.GetPopular" not in fake.calls


async def test_without_embedder_popular_movies_are_served_flagged() -> None:
    fake = FakeUpstreams()
    fake.fail["embedder.EmbedQuery"] = grpc.StatusCode.UNAVAILABLE
    resp = await _svc(fake).recommend(QUIZ)
    assert resp.strategy == gateway_pb2.STRATEGY_POPULAR and list(resp.degraded) == [EMBEDDER_POPULAR]
    assert len(resp.recommendations) == 10


async def test_without_item_vectors_the_answer_has_no_explanations() -> None:
    fake = FakeUpstreams()
    fake.fail["embedder.EmbedItems"] = grpc.StatusCode.UNAVAILABLE
    resp = await _svc(fake).recommend(QUIZ)
    assert resp.strategy == gateway_pb2.STRATEGY_PERSONALIZED and list(resp.degraded) == [EMBEDDER_BECAUSE]
    assert len(resp.recommendations) == 10
    assert all(r.movie.title and not r.because_movie_id for r in resp.recommendations)


async def test_similar_movies_without_catalog_and_without_retriever() -> None:
    fake = FakeUpstreams()
    healthy = await _svc(FakeUpstreams()).similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=3, k=7))
    fake.fail["catalog.GetMovies"] = grpc.StatusCode.UNAVAILABLE
    resp = await _svc(fake).similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=3, k=7))
    assert list(resp.degraded) == [CATALOG_METADATA] and not healthy.degraded
    assert [r.movie.movie_id for r in resp.movies] == [r.movie.movie_id for r in healthy.movies]
    assert all(r.because_movie_id == 3 for r in resp.movies)

    fake = FakeUpstreams()
    fake.fail["retriever.Search"] = grpc.StatusCode.DEADLINE_EXCEEDED
    resp = await _svc(fake).similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=3, k=7))
    assert list(resp.degraded) == [RETRIEVER_POPULAR]
    ids = [r.movie.movie_id for r in resp.movies]
    assert len(ids) == 7 and 3 not in ids and not any(r.because_movie_id for r in resp.movies)


async def test_list_genres_serves_the_last_list_while_the_catalog_is_down() -> None:
    fake = FakeUpstreams()
    clock = Clock()
    svc = _svc(fake, clock)
    fresh = await svc.list_genres(gateway_pb2.ListGenresRequest())
    clock.now += 3600  # long past genres_ttl_s
    fake.fail["catalog.Describe"] = grpc.StatusCode.UNAVAILABLE
    stale = await svc.list_genres(gateway_pb2.ListGenresRequest())
    assert list(stale.genres) == list(fresh.genres) and list(stale.degraded) == [CATALOG_GENRES]
    # Never read: UNAVAILABLE naming the catalog.
    with pytest.raises(UpstreamError) as exc:
        await _svc(fake).list_genres(gateway_pb2.ListGenresRequest())
    assert exc.value.upstream == "catalog" and exc.value.status_code == grpc.StatusCode.UNAVAILABLE


async def test_fallbacks_off_passes_failures_through() -> None:
    fake = FakeUpstreams()
    fake.fail["catalog.GetMovies"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError):
        await GatewayService(fake).recommend(QUIZ)


async def _hang(request: object, timeout: float, metadata: object = None) -> object:
    """A gRPC call to an upstream that never answers: DEADLINE_EXCEEDED at its timeout."""
    await asyncio.sleep(timeout)
    raise grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded"
    )


class HangingRetriever(FakeUpstreams):
    """The retriever's calls go through the real upstream client, with its hop budget."""

    def __init__(self, budget: HopBudget) -> None:
        super().__init__()
        self.client = _Upstream("retriever", channel=None, max_in_flight=4, budget=budget)  # type: ignore[arg-type]

    async def search(self, req):  # type: ignore[no-untyped-def]
        self.calls.append("retriever.Search")
        return await self.client.call(_hang, req)


@pytest.mark.parametrize("batched", [False, True])
async def test_a_hanging_retriever_costs_one_slice_and_popular_answers_in_time(batched: bool) -> None:
    """With a per-hop budget the hanging search gives up after its share of the caller's deadline
    (through the batching layer too: a caller queued behind the hanging call waits its own slice
    at most), and the popular list answers within the deadline."""
    budget = HopBudget(default_s=30.0, fraction=0.4, min_s=0.1)
    fake = HangingRetriever(budget)
    up = BatchingUpstreams(fake, max_in_flight=1, budget=budget) if batched else fake
    svc = GatewayService(up, GatewayOptions(fallbacks=True))
    token = set_deadline(1.0)
    started = time.monotonic()
    try:
        out = await asyncio.gather(*(svc.recommend(QUIZ) for _ in range(3)))
    finally:
        reset_deadline(token)
    elapsed = time.monotonic() - started
    assert elapsed < 0.7, elapsed  # one slice (0.4 of the deadline) plus the popular list
    assert all(r.strategy == gateway_pb2.STRATEGY_POPULAR for r in out)
    assert all(list(r.degraded) == [RETRIEVER_POPULAR] for r in out)
    assert all(len(r.recommendations) == 10 for r in out)
