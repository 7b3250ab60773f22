"""Concurrent Recommends share their upstream calls (issue #15: batching at every hop).

``BatchingUpstreams`` wraps the gateway's ``Upstreams``: the single-item calls a Recommend or
SimilarMovies makes on its hot path (one user's history, one query vector, one search, the
metadata of its hits) are merged with the same calls of the other requests in flight into the
upstreams' batch RPCs (``GetUserHistories``, ``EmbedQuery`` with many signals, ``Search`` with
many queries, one ``GetMovies``), with ``recsys_core.batching.Batcher``: an idle gateway sends
every call at once, a busy one sends what queued while its ``max_in_flight`` calls per hop were
out (at most ``max_items`` items a call). Every other call passes straight through.

Each caller gets exactly what the unbatched call would have returned (the tests compare them).
Failures:
- a batch the upstream refuses for a reason that may belong to ONE item (invalid argument, not
  found, resource exhausted, failed precondition, out of range) is retried item by item, so each
  caller gets its own answer or its own error, worded as if it had called alone;
- unavailability and deadlines reach every caller of the batch (the upstream's error, unchanged);
- a batch call's deadline is the latest of its callers' deadlines (the caller with the least time
  left stops waiting at its own deadline; the call itself carries on for the others); given a
  ``HopBudget``, each caller also stops waiting once its own slice for the hop is spent (queued
  behind merged calls to a hanging upstream included): DEADLINE_EXCEEDED naming the upstream, so
  the service can fall back within the caller's deadline.
A user the catalog does not know is NOT_FOUND for that caller only (as GetUserHistory says it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import grpc
from prometheus_client import Histogram
from recsys.catalog.v1 import catalog_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.batching import Batcher
from recsys_core.client import current_deadline, reset_deadline, set_deadline_at
from recsys_core.errors import UpstreamError

from . import hops
from .resilience import HopBudget
from .service import Upstreams

#: Items (users, signals, queries, movie lists) one merged call carries at most.
DEFAULT_MAX_ITEMS = 64
#: Merged calls in flight per hop; what arrives meanwhile waits for the next call.
DEFAULT_MAX_IN_FLIGHT = 2
#: Excluded ids one merged Search carries at most (keeps the message far below 4 MB).
MAX_BATCH_EXCLUDE_IDS = 200_000
#: Movie ids one merged GetMovies asks for at most (the catalog's limit per call).
MAX_BATCH_MOVIES = 1000
BATCH_SIZE = Histogram(
    "recsys_gateway_upstream_batch_size",
    "Requests' items one merged upstream call carried, by hop (1 = no sharing)",
    ["hop"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

#: A caller waits this much past its hop budget before giving up on a merged call.
_BUDGET_SLACK_S = 0.02


def _observer(hop: str) -> Callable[[float], None]:
    return BATCH_SIZE.labels(hop=hop).observe


# An upstream refusing a batch with one of these may be refusing one item of it: retry singly.
_ITEM_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


#: GetUserHistory calls merge when they agree on (limit, include_seen_ids, columns).
HistoryKey = tuple[int, bool, bool]


class BatchUpstreams(Upstreams, Protocol):
    async def get_user_histories(
        self, req: catalog_pb2.GetUserHistoriesRequest
    ) -> catalog_pb2.GetUserHistoriesResponse: ...


def _latest(deadlines: Sequence[float | None]) -> float | None:
    return None if any(d is None for d in deadlines) else max(d for d in deadlines if d is not None)


def _item_error(exc: Exception, n: int) -> bool:
    return n > 1 and isinstance(exc, UpstreamError) and exc.upstream_code in _ITEM_CODES


class BatchingUpstreams:
    """``Upstreams`` whose hot-path calls are merged across concurrent requests."""

    def __init__(
        self,
        inner: BatchUpstreams,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        budget: HopBudget | None = None,
    ) -> None:
        self._in = inner
        self._budget = budget
        n, f = max_items, max_in_flight
        self.histories: Batcher[HistoryKey, catalog_pb2.GetUserHistoryRequest, object] = Batcher(
            self._run_histories, max_items=n, max_in_flight=f, on_batch=_observer("histories")
        )
        self.queries: Batcher[None, embedder_pb2.QuerySignal, object] = Batcher(
            self._run_queries, max_items=n, max_in_flight=f, on_batch=_observer("queries")
        )
        self.searches: Batcher[tuple[int, int, bytes, str], retriever_pb2.SearchQuery, object] = Batcher(
            self._run_searches,
            max_items=n,
            max_in_flight=f,
            weight=lambda q: len(q.exclude_ids),
            max_weight=MAX_BATCH_EXCLUDE_IDS,
            on_batch=_observer("searches"),
        )
        self.movies: Batcher[None, list[int], object] = Batcher(
            self._run_movies,
            max_items=n,
            max_in_flight=f,
            weight=len,
            max_weight=MAX_BATCH_MOVIES,
            on_batch=_observer("movies"),
        )

    # ------------------------------------------------------------ straight through
    async def search_movies(self, req: catalog_pb2.SearchMoviesRequest) -> catalog_pb2.SearchMoviesResponse:
        return await self._in.search_movies(req)

    async def sample_movies(self, req: catalog_pb2.SampleMoviesRequest) -> catalog_pb2.SampleMoviesResponse:
        return await self._in.sample_movies(req)

    async def get_popular(self, req: catalog_pb2.GetPopularRequest) -> catalog_pb2.GetPopularResponse:
        return await self._in.get_popular(req)

    async def get_users(self, req: catalog_pb2.GetUsersRequest) -> catalog_pb2.GetUsersResponse:
        return await self._in.get_users(req)

    async def describe_catalog(self, req: catalog_pb2.DescribeRequest) -> catalog_pb2.DescribeResponse:
        return await self._in.describe_catalog(req)

    async def record_ratings(
        self, req: catalog_pb2.RecordRatingsRequest
    ) -> catalog_pb2.RecordRatingsResponse:
        return await self._in.record_ratings(req)

    async def embed_items(self, req: embedder_pb2.EmbedItemsRequest) -> embedder_pb2.EmbedItemsResponse:
        return await self._in.embed_items(req)

    async def get_vectors(self, req: retriever_pb2.GetVectorsRequest) -> retriever_pb2.GetVectorsResponse:
        return await self._in.get_vectors(req)

    async def _submit(self, upstream: str, batcher: Batcher, key: object, item: object) -> object:
        started = time.monotonic()
        try:
            if self._budget is None:
                result = await batcher.submit(key, item, current_deadline())
            else:
                result = await self._within_budget(upstream, batcher.submit(key, item, current_deadline()))
        finally:
            hops.record(upstream, time.monotonic() - started)
        if isinstance(result, Exception):
            raise result
        return result

    async def _within_budget(self, upstream: str, waiting: Coroutine[Any, Any, object]) -> object:
        """``waiting``'s result, or DEADLINE_EXCEEDED once this caller's slice for the hop is spent
        (a little later than the merged call's own deadline, so its error usually comes first)."""
        assert self._budget is not None
        timeout = self._budget.timeout()
        if timeout <= 0:
            waiting.close()
            what = f"deadline exceeded: no time left to call {upstream}"
            raise UpstreamError(upstream, grpc.StatusCode.DEADLINE_EXCEEDED, what)
        try:
            return await asyncio.wait_for(waiting, timeout + _BUDGET_SLACK_S)
        except TimeoutError:
            raise UpstreamError(
                upstream,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline exceeded: no answer from {upstream} within this hop's {timeout * 1000:.0f} ms",
            ) from None

    async def _batch(self, deadlines: Sequence[float | None], call, items):
        """Run the merged call under the latest deadline; on an item error, each item alone
        (its result or its exception as the item's result)."""
        token = set_deadline_at(_latest(deadlines))
        hops.detach()  # time is recorded by each caller, not into one request's record
        try:
            try:
                return await call(items)
            except Exception as exc:
                if not _item_error(exc, len(items)):
                    raise
            # Each item alone, concurrently: its result, or its own error raised to its caller.
            singles = await asyncio.gather(*(call([it]) for it in items), return_exceptions=True)
            return [r if isinstance(r, BaseException) else r[0] for r in singles]
        finally:
            reset_deadline(token)

    # ------------------------------------------------------------ catalog GetUserHistory
    async def get_user_history(
        self, req: catalog_pb2.GetUserHistoryRequest
    ) -> catalog_pb2.GetUserHistoryResponse | catalog_pb2.UserHistory:
        key = (req.limit, req.include_seen_ids, req.columns)
        result = await self._submit("catalog", self.histories, key, req)
        return result  # type: ignore[return-value]

    async def _run_histories(
        self,
        key: HistoryKey,
        reqs: list[catalog_pb2.GetUserHistoryRequest],
        deadlines: list[float | None],
    ) -> list[object]:
        limit, include_seen, columns = key

        async def call(items: list[catalog_pb2.GetUserHistoryRequest]) -> list[object]:
            ids = list(dict.fromkeys(r.user_id for r in items))
            resp = await self._in.get_user_histories(
                catalog_pb2.GetUserHistoriesRequest(
                    user_ids=ids, limit=limit, include_seen_ids=include_seen, columns=columns
                )
            )
            by_id = {h.user_id: h for h in resp.histories}
            return [
                by_id[r.user_id]
                if r.user_id in by_id
                else UpstreamError("catalog", grpc.StatusCode.NOT_FOUND, f"user {r.user_id} not found")
                for r in items
            ]

        return await self._batch(deadlines, call, reqs)

    # ------------------------------------------------------------ embedder EmbedQuery
    async def embed_query(self, req: embedder_pb2.EmbedQueryRequest) -> embedder_pb2.EmbedQueryResponse:
        if len(req.signals) != 1:
            return await self._in.embed_query(req)
        result = await self._submit("embedder", self.queries, None, req.signals[0])
        return result  # type: ignore[return-value]

    async def _run_queries(
        self, key: None, signals: list[embedder_pb2.QuerySignal], deadlines: list[float | None]
    ) -> list[object]:
        async def call(items: list[embedder_pb2.QuerySignal]) -> list[object]:
            resp = await self._in.embed_query(embedder_pb2.EmbedQueryRequest(signals=items))
            return [
                embedder_pb2.EmbedQueryResponse(vectors=[v], model_version=resp.model_version)
                for v in resp.vectors
            ]

        return await self._batch(deadlines, call, signals)

    # ------------------------------------------------------------ retriever Search
    async def search(self, req: retriever_pb2.SearchRequest) -> retriever_pb2.SearchResponse:
        if len(req.queries) != 1:
            return await self._in.search(req)
        # one merged call searches one model version: queries of two models never share a call
        key = (int(req.space), req.k, req.filter.SerializeToString(deterministic=True), req.version)
        result = await self._submit("retriever", self.searches, key, req.queries[0])
        return result  # type: ignore[return-value]

    async def _run_searches(
        self,
        key: tuple[int, int, bytes, str],
        queries: list[retriever_pb2.SearchQuery],
        deadlines: list[float | None],
    ) -> list[object]:
        space, k, flt, version = key

        async def call(items: list[retriever_pb2.SearchQuery]) -> list[object]:
            req = retriever_pb2.SearchRequest(space=space, queries=items, k=k, version=version)  # type: ignore[arg-type]
            req.filter.ParseFromString(flt)
            resp = await self._in.search(req)
            return [retriever_pb2.SearchResponse(results=[r], version=resp.version) for r in resp.results]

        return await self._batch(deadlines, call, queries)

    # ------------------------------------------------------------ catalog GetMovies
    async def get_movies(self, req: catalog_pb2.GetMoviesRequest) -> catalog_pb2.GetMoviesResponse:
        if len(req.movie_ids) > MAX_BATCH_MOVIES:
            return await self._in.get_movies(req)
        result = await self._submit("catalog", self.movies, None, list(req.movie_ids))
        return result  # type: ignore[return-value]

    async def _run_movies(
        self, key: None, lists: list[list[int]], deadlines: list[float | None]
    ) -> list[object]:
        async def call(items: list[list[int]]) -> list[object]:
            ids = list(dict.fromkeys(m for ids in items for m in ids))
            resp = await self._in.get_movies(catalog_pb2.GetMoviesRequest(movie_ids=ids))
            by_id = {m.movie_id: m for m in resp.movies}
            return [
                catalog_pb2.GetMoviesResponse(
                    movies=[by_id[m] for m in ids if m in by_id],
                    missing_ids=[m for m in dict.fromkeys(ids) if m not in by_id],
                    metadata_version=resp.metadata_version,
                )
                for ids in items
            ]

        return await self._batch(deadlines, call, lists)

    async def aclose(self) -> None:
        for c in (self.histories, self.queries, self.searches, self.movies):
            await c.aclose()


__all__ = ["BatchUpstreams", "BatchingUpstreams"]
