"""BatchingUpstreams: concurrent Recommends share upstream calls and get exactly the unbatched answers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys_core.errors import UpstreamError
from recsys_gateway.batching import BatchingUpstreams
from recsys_gateway.service import GatewayService

from .test_gateway_service import N_MOVIES, FakeUpstreams


def _requests() -> list[gateway_pb2.RecommendRequest]:
    reqs = [gateway_pb2.RecommendRequest(user_id=u, k=k) for u in range(1, 13) for k in (5, 10)]
    reqs += [
        gateway_pb2.RecommendRequest(
            liked=[common_pb2.RatedMovie(movie_id=m) for m in (m0, m0 + 7, m0 + 13)],
            disliked_movie_ids=[m0 + 1],
            k=10,
        )
        for m0 in range(1, 30, 3)
    ]
    reqs.append(gateway_pb2.RecommendRequest(user_id=5, k=10, exclude_seen=False))
    reqs.append(gateway_pb2.RecommendRequest(user_id=6, k=10, filter=common_pb2.MovieFilter(year_min=1994)))
    return reqs


def _fake() -> FakeUpstreams:
    fake = FakeUpstreams()
    for u in range(1, 13):  # histories of different lengths, newest first
        fake.history[u] = [(u * 7 + j) % N_MOVIES + 1 for j in range(u + 2)]
    return fake


async def test_concurrent_recommends_get_the_unbatched_answers_with_fewer_calls() -> None:
    reqs = _requests()
    plain_fake, batched_fake = _fake(), _fake()
    plain = GatewayService(plain_fake)
    batched = GatewayService(BatchingUpstreams(batched_fake, max_items=64, max_in_flight=1))
    # Warm both item-vector caches alike (one sequential call), then everything at once.
    await plain.recommend(reqs[0])
    await batched.recommend(reqs[0])
    expected = [await plain.recommend(r) for r in reqs]
    got = await asyncio.gather(*(batched.recommend(r) for r in reqs))
    assert [g.SerializeToString(deterministic=True) for g in got] == [
        e.SerializeToString(deterministic=True) for e in expected
    ]
    n = len(reqs)
    calls = batched_fake.calls[3:]  # after the warm-up
    for name in ("catalog.GetUserHistories", "embedder.EmbedQuery", "retriever.Search", "catalog.GetMovies"):
        assert 1 <= calls.count(name) < n / 4, (name, calls.count(name))
    assert "catalog.GetUserHistory" not in calls


async def test_an_unknown_user_is_not_found_for_that_caller_only() -> None:
    fake = _fake()
    svc = GatewayService(BatchingUpstreams(fake, max_in_flight=1))
    out = await asyncio.gather(
        *(svc.recommend(gateway_pb2.RecommendRequest(user_id=u, k=5)) for u in (1, 2, 999, 3)),
        return_exceptions=True,
    )
    assert isinstance(out[2], UpstreamError) and out[2].status_code == grpc.StatusCode.NOT_FOUND
    assert "user 999 not found" in out[2].message
    assert all(isinstance(o, gateway_pb2.RecommendResponse) and len(o.recommendations) == 5 for o in out[:2])
    assert isinstance(out[3], gateway_pb2.RecommendResponse)


class RejectingEmbedder(FakeUpstreams):
    """An embedder that refuses the whole call when one signal likes movie 13 (as a real one
    refuses a batch with one bad signal)."""

    async def embed_query(self, req):  # type: ignore[no-untyped-def]
        for i, s in enumerate(req.signals):
            if any(m.movie_id == 13 for m in s.history):
                self.calls.append("embedder.EmbedQuery")
                raise UpstreamError(
                    "embedder", grpc.StatusCode.INVALID_ARGUMENT, f"signals[{i}]: movie 13 is cursed"
                )
        return await super().embed_query(req)


async def test_a_bad_item_fails_alone_with_its_own_message() -> None:
    fake = RejectingEmbedder()
    svc = GatewayService(BatchingUpstreams(fake, max_in_flight=1))
    reqs = [
        gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=m)], k=3) for m in (1, 2, 13, 4, 5)
    ]
    out = await asyncio.gather(*(svc.recommend(r) for r in reqs), return_exceptions=True)
    assert isinstance(out[2], UpstreamError)
    assert out[2].status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert out[2].message.endswith("signals[0]: movie 13 is cursed")  # worded as if it called alone
    assert all(isinstance(o, gateway_pb2.RecommendResponse) for i, o in enumerate(out) if i != 2)


async def test_unavailability_reaches_every_caller_of_the_batch() -> None:
    fake = _fake()
    fake.fail["retriever.Search"] = grpc.StatusCode.UNAVAILABLE
    svc = GatewayService(BatchingUpstreams(fake, max_in_flight=1))
    out = await asyncio.gather(
        *(svc.recommend(gateway_pb2.RecommendRequest(user_id=u, k=5)) for u in (1, 2, 3)),
        return_exceptions=True,
    )
    assert all(isinstance(o, UpstreamError) and o.status_code == grpc.StatusCode.UNAVAILABLE for o in out)
    assert fake.calls.count("retriever.Search") == 2  # [1] then [2, 3]: no item-by-item retry


@pytest.mark.parametrize("in_flight", [1, 2, 4])
async def test_similar_movies_batched_equal_unbatched(in_flight: int) -> None:
    plain = GatewayService(_fake())
    batched = GatewayService(BatchingUpstreams(_fake(), max_in_flight=in_flight))
    reqs = [gateway_pb2.SimilarMoviesRequest(movie_id=m, k=6) for m in range(1, 25)]
    expected = [await plain.similar_movies(r) for r in reqs]
    got = await asyncio.gather(*(batched.similar_movies(r) for r in reqs))
    assert list(got) == expected


async def test_searches_of_two_model_versions_never_share_a_call() -> None:
    """issue #18: the merged Search carries one version; queries of another model go apart."""
    import asyncio

    from recsys.retriever.v1 import retriever_pb2
    from recsys_gateway.batching import BatchingUpstreams

    sent: list[retriever_pb2.SearchRequest] = []

    class Inner:
        async def search(self, req: retriever_pb2.SearchRequest) -> retriever_pb2.SearchResponse:
            sent.append(req)
            await asyncio.sleep(0.01)
            return retriever_pb2.SearchResponse(
                results=[retriever_pb2.SearchResult() for _ in req.queries], version=req.version
            )

    up = BatchingUpstreams(Inner(), max_items=8, max_in_flight=1)  # type: ignore[arg-type]

    def req(version: str) -> retriever_pb2.SearchRequest:
        return retriever_pb2.SearchRequest(
            space=1, k=5, queries=[retriever_pb2.SearchQuery()], version=version
        )

    got = await asyncio.gather(*(up.search(req(v)) for v in ("a", "a", "b", "a", "b", "b")))
    assert [g.version for g in got] == ["a", "a", "b", "a", "b", "b"]
    assert all(len({r.version}) == 1 for r in sent)
    assert sorted({r.version for r in sent}) == ["a", "b"] and len(sent) < 6  # still merged per version
    await up.aclose()


def _batch_sizes(hop: str) -> tuple[float, float]:
    """(batches, items) recsys_gateway_upstream_batch_size has seen for ``hop``."""
    from prometheus_client import REGISTRY

    labels = {"hop": hop}
    count = REGISTRY.get_sample_value("recsys_gateway_upstream_batch_size_count", labels) or 0.0
    total = REGISTRY.get_sample_value("recsys_gateway_upstream_batch_size_sum", labels) or 0.0
    return count, total


async def test_batch_sizes_are_exported_per_hop() -> None:
    """The dashboard's batch-size panel: one observation per merged call, of its item count."""
    hops = ("histories", "queries", "searches", "movies")
    before = {h: _batch_sizes(h) for h in hops}
    fake = _fake()
    batched = GatewayService(BatchingUpstreams(fake, max_items=64, max_in_flight=1))
    reqs = [gateway_pb2.RecommendRequest(user_id=u, k=5) for u in range(1, 13)]
    await asyncio.gather(*(batched.recommend(r) for r in reqs))
    for h in hops:
        calls, items = (a - b for a, b in zip(_batch_sizes(h), before[h], strict=True))
        assert calls >= 1, h
        if h == "histories":  # one item per request: every history was in some merged call
            assert items == len(reqs) and calls == fake.calls.count("catalog.GetUserHistories")
        assert items >= calls  # a merged call carries at least one item
    hist_calls, hist_items = (
        a - b for a, b in zip(_batch_sizes("histories"), before["histories"], strict=True)
    )
    assert hist_items / hist_calls > 1  # concurrent requests did share calls
