"""gRPC clients of the three upstream services.

One long-lived channel per upstream (opened at start, closed at stop); every
call carries a deadline: its hop's slice of the caller's remaining budget
(``resilience.HopBudget``); retries (declared in the channel's service config) only
for idempotent reads on UNAVAILABLE; a semaphore bounds in-flight calls per
upstream; a circuit breaker per upstream (``resilience.CircuitBreaker``) fails
calls at once while the upstream is down (``CircuitOpen``); upstream failures
become ``UpstreamError`` carrying the upstream's name and status code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.client import REQUEST_ID_KEY, open_channel
from recsys_core.errors import UpstreamError
from recsys_core.logs import get_request_id

from . import hops
from .resilience import CircuitBreaker, HopBudget, breaker_metric
from .settings import GatewaySettings

T = TypeVar("T")

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["Catalog"].full_name
EMBEDDER = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
RETRIEVER = retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name

# Idempotent reads: the only calls retried on UNAVAILABLE.
CATALOG_READS = (
    "GetMovies",
    "SearchMovies",
    "SampleMovies",
    "GetPopular",
    "GetUsers",
    "GetUserHistory",
    "GetUserHistories",
    "ListMovies",
    "Describe",
)
EMBEDDER_READS = ("EmbedItems", "EmbedQuery", "EmbedNewMovie", "ModelInfo")
RETRIEVER_READS = ("Search", "GetVectors", "Describe")


class _Upstream:
    def __init__(
        self,
        name: str,
        channel: grpc.aio.Channel,
        max_in_flight: int,
        timeout: float = 5.0,
        *,
        budget: HopBudget | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self._sem = asyncio.Semaphore(max_in_flight)
        # No budget: the whole remaining deadline (less a margin), at most ``timeout``.
        self._budget = budget or HopBudget(default_s=timeout)
        self.breaker = breaker or CircuitBreaker(name, failure_threshold=0)

    async def call(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        timeout = self._budget.timeout()
        if timeout <= 0:
            raise self._deadline_error(f"no time left to call {self.name}")
        self.breaker.acquire()  # CircuitOpen (UNAVAILABLE) at once while the upstream is down
        # The verdict for the breaker: up (any answer, an error status included), down (with why),
        # or none (cancelled; or out of a slice too small to tell).
        up = False
        down: str | None = None
        started: float | None = time.monotonic()
        try:
            rid = get_request_id()
            async with self._sem:
                # The request id travels as metadata set here, not by a client interceptor: an
                # intercepted aio call costs ~20% more CPU per call (issue #15).
                metadata = ((REQUEST_ID_KEY, rid),) if rid else None
                result = await method(request, timeout=timeout, metadata=metadata)
            up = True
            return result
        except grpc.aio.AioRpcError as exc:
            up = exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
            hops.record(self.name, time.monotonic() - (started or 0.0))
            started = None
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                if self._budget.counts_as_down(timeout):
                    down = f"no answer within {timeout * 1000:.0f} ms"
                raise self._deadline_error(f"{self.name} call ran out of time") from None
            err = UpstreamError.from_rpc_error(self.name, exc)
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                err = UpstreamError(self.name, exc.code(), f"unavailable: {err.detail}", field=err.field)
                down = err.detail
            elif exc.code() == grpc.StatusCode.CANCELLED:
                # Our caller cancelling reaches here as asyncio.CancelledError, never as this: a
                # CANCELLED status means the upstream (or the connection) reset the call, e.g. a
                # server closing its listener as the call arrived. To our caller that is the
                # upstream being unavailable (retryable), not a cancellation it asked for.
                err = UpstreamError(
                    self.name,
                    grpc.StatusCode.UNAVAILABLE,
                    f"unavailable: {self.name} reset the call (shutting down?): {err.detail}",
                )
                up, down = False, err.detail
            raise err from None
        finally:
            if started is not None:
                hops.record(self.name, time.monotonic() - started)
            if down is not None:
                self.breaker.failure(down)
            elif up:
                self.breaker.success()
            else:
                self.breaker.release()

    def _deadline_error(self, what: str) -> UpstreamError:
        """DEADLINE_EXCEEDED naming the upstream the request's time went to (the cause)."""
        slow = hops.slowest()
        culprit = slow[0] if slow else self.name
        spent = hops.summary() or "none"
        return UpstreamError(
            culprit, grpc.StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded: {what} (time spent: {spent})"
        )


class GrpcUpstreams:
    """The production ``Upstreams``: gRPC calls to catalog, embedder and retriever."""

    def __init__(self, settings: GatewaySettings) -> None:
        s = settings
        tls = s.upstream_tls()
        self.budget = HopBudget(
            default_s=s.upstream_timeout_s, fraction=s.hop_budget_fraction, min_s=s.hop_budget_min_s
        )

        def breaker(name: str) -> CircuitBreaker:
            return CircuitBreaker(
                name,
                failure_threshold=s.breaker_failures,
                cooldown_s=s.breaker_cooldown_s,
                on_change=breaker_metric,
            )

        self._catalog = _Upstream(
            "catalog",
            open_channel(
                s.catalog_target,
                service=CATALOG,
                idempotent_methods=CATALOG_READS,
                tls=tls,
                request_id_interceptor=False,
            ),
            s.max_in_flight_per_upstream,
            budget=self.budget,
            breaker=breaker("catalog"),
        )
        self._embedder = _Upstream(
            "embedder",
            open_channel(
                s.embedder_target,
                service=EMBEDDER,
                idempotent_methods=EMBEDDER_READS,
                tls=tls,
                request_id_interceptor=False,
            ),
            s.max_in_flight_per_upstream,
            budget=self.budget,
            breaker=breaker("embedder"),
        )
        self._retriever = _Upstream(
            "retriever",
            open_channel(
                s.retriever_target,
                service=RETRIEVER,
                idempotent_methods=RETRIEVER_READS,
                tls=tls,
                request_id_interceptor=False,
            ),
            s.max_in_flight_per_upstream,
            budget=self.budget,
            breaker=breaker("retriever"),
        )
        self.catalog = catalog_pb2_grpc.CatalogStub(self._catalog.channel)
        self.embedder = embedder_pb2_grpc.EmbedderStub(self._embedder.channel)
        self.retriever = retriever_pb2_grpc.RetrieverStub(self._retriever.channel)

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """upstream name -> its circuit breaker."""
        return {u.name: u.breaker for u in (self._catalog, self._embedder, self._retriever)}

    def health_targets(self) -> dict[str, tuple[grpc.aio.Channel, str]]:
        """upstream name -> (its channel, the full service name its health reports)."""
        return {
            "catalog": (self._catalog.channel, CATALOG),
            "embedder": (self._embedder.channel, EMBEDDER),
            "retriever": (self._retriever.channel, RETRIEVER),
        }

    async def close(self) -> None:
        await asyncio.gather(
            self._catalog.channel.close(), self._embedder.channel.close(), self._retriever.channel.close()
        )

    # catalog
    async def get_movies(self, req: catalog_pb2.GetMoviesRequest) -> catalog_pb2.GetMoviesResponse:
        return await self._catalog.call(self.catalog.GetMovies, req)

    async def search_movies(self, req: catalog_pb2.SearchMoviesRequest) -> catalog_pb2.SearchMoviesResponse:
        return await self._catalog.call(self.catalog.SearchMovies, req)

    async def sample_movies(self, req: catalog_pb2.SampleMoviesRequest) -> catalog_pb2.SampleMoviesResponse:
        return await self._catalog.call(self.catalog.SampleMovies, req)

    async def get_popular(self, req: catalog_pb2.GetPopularRequest) -> catalog_pb2.GetPopularResponse:
        return await self._catalog.call(self.catalog.GetPopular, req)

    async def get_user_history(
        self, req: catalog_pb2.GetUserHistoryRequest
    ) -> catalog_pb2.GetUserHistoryResponse:
        return await self._catalog.call(self.catalog.GetUserHistory, req)

    async def get_user_histories(
        self, req: catalog_pb2.GetUserHistoriesRequest
    ) -> catalog_pb2.GetUserHistoriesResponse:
        return await self._catalog.call(self.catalog.GetUserHistories, req)

    async def get_users(self, req: catalog_pb2.GetUsersRequest) -> catalog_pb2.GetUsersResponse:
        return await self._catalog.call(self.catalog.GetUsers, req)

    async def describe_catalog(self, req: catalog_pb2.DescribeRequest) -> catalog_pb2.DescribeResponse:
        return await self._catalog.call(self.catalog.Describe, req)

    async def record_ratings(
        self, req: catalog_pb2.RecordRatingsRequest
    ) -> catalog_pb2.RecordRatingsResponse:
        return await self._catalog.call(self.catalog.RecordRatings, req)

    # embedder
    async def embed_query(self, req: embedder_pb2.EmbedQueryRequest) -> embedder_pb2.EmbedQueryResponse:
        return await self._embedder.call(self.embedder.EmbedQuery, req)

    async def embed_items(self, req: embedder_pb2.EmbedItemsRequest) -> embedder_pb2.EmbedItemsResponse:
        return await self._embedder.call(self.embedder.EmbedItems, req)

    # retriever
    async def search(self, req: retriever_pb2.SearchRequest) -> retriever_pb2.SearchResponse:
        return await self._retriever.call(self.retriever.Search, req)

    async def get_vectors(self, req: retriever_pb2.GetVectorsRequest) -> retriever_pb2.GetVectorsResponse:
        return await self._retriever.call(self.retriever.GetVectors, req)
