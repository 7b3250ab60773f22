"""The web's only door to recsys: one long-lived grpc.aio channel to the gateway.

Every call carries a deadline (``timeout_s``), the API key when one is
configured, and the current request id (through the kit's client
interceptor). A failed call raises :class:`GatewayError` with the gRPC code and
the gateway's message, which the app turns into a readable page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.client import open_channel

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
API_KEY_HEADER = "x-api-key"
#: reads are retried on UNAVAILABLE by the channel's service config; RecordFeedback is not
IDEMPOTENT = ("Recommend", "SimilarMovies", "GetMovies", "SearchMovies", "SampleMovies", "ListGenres")

T = TypeVar("T")


class GatewayError(Exception):
    """A gateway call failed; ``code`` is the gRPC status code, ``details`` the server's message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details


def movie_filter(
    genres: Sequence[str] = (), year_min: int = 0, year_max: int = 0
) -> common_pb2.MovieFilter | None:
    """A MovieFilter, or None when no condition is given."""
    if not genres and not year_min and not year_max:
        return None
    return common_pb2.MovieFilter(genres_any=list(genres), year_min=year_min, year_max=year_max)


class GatewayClient:
    """Typed calls to recsys.gateway.v1.Gateway; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout_s: float = 5.0, api_key: str | None = None):
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._timeout = timeout_s
        self._metadata: tuple[tuple[str, str], ...] = ((API_KEY_HEADER, api_key),) if api_key else ()

    @classmethod
    def open(cls, target: str, *, timeout_s: float = 5.0, api_key: str | None = None) -> GatewayClient:
        channel = open_channel(target, service=SERVICE, idempotent_methods=IDEMPOTENT)
        return cls(channel, timeout_s=timeout_s, api_key=api_key)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, fn: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await fn(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise GatewayError(method, exc.code(), exc.details() or "") from exc

    async def sample_movies(
        self, n: int, *, seed: int = 0, exclude_ids: Iterable[int] = ()
    ) -> list[common_pb2.Movie]:
        """``n`` well-known movies (the gateway's default popularity floor), stable for a seed."""
        request = gateway_pb2.SampleMoviesRequest(n=n, seed=seed, exclude_ids=list(exclude_ids))
        response = await self._call("SampleMovies", self._stub.SampleMovies, request)
        return list(response.movies)

    async def list_genres(self) -> list[str]:
        """The catalog's genre vocabulary, sorted (the valid genre filter values)."""
        response = await self._call("ListGenres", self._stub.ListGenres, gateway_pb2.ListGenresRequest())
        return list(response.genres)

    async def recommend_profile(
        self,
        liked: Sequence[int],
        disliked: Sequence[int],
        *,
        k: int,
        filter: common_pb2.MovieFilter | None = None,
    ) -> gateway_pb2.RecommendResponse:
        """Recommendations for an anonymous taste profile (the quiz); liked and disliked are excluded."""
        request = gateway_pb2.RecommendRequest(
            liked=[common_pb2.RatedMovie(movie_id=m) for m in liked],
            disliked_movie_ids=list(disliked),
            k=k,
            exclude_seen=True,
            filter=filter,
        )
        return await self._call("Recommend", self._stub.Recommend, request)

    async def recommend_user(
        self, user_id: int, *, k: int, filter: common_pb2.MovieFilter | None = None
    ) -> gateway_pb2.RecommendResponse:
        """Recommendations for a known user (history from the catalog; rated movies excluded)."""
        request = gateway_pb2.RecommendRequest(user_id=user_id, k=k, exclude_seen=True, filter=filter)
        return await self._call("Recommend", self._stub.Recommend, request)

    async def similar_movies(self, movie_id: int, *, k: int) -> gateway_pb2.SimilarMoviesResponse:
        request = gateway_pb2.SimilarMoviesRequest(movie_id=movie_id, k=k)
        return await self._call("SimilarMovies", self._stub.SimilarMovies, request)

    async def get_movies(self, movie_ids: Sequence[int]) -> gateway_pb2.GetMoviesResponse:
        request = gateway_pb2.GetMoviesRequest(movie_ids=list(movie_ids))
        return await self._call("GetMovies", self._stub.GetMovies, request)

    async def search_movies(self, query: str, *, limit: int) -> list[gateway_pb2.SearchHit]:
        request = gateway_pb2.SearchMoviesRequest(query=query, limit=limit)
        response = await self._call("SearchMovies", self._stub.SearchMovies, request)
        return list(response.hits)

    async def record_rating(self, user_id: int, movie_id: int, rating: float) -> list[common_pb2.Rating]:
        """Store one rating event (rated now); returns the events as stored."""
        request = gateway_pb2.RecordFeedbackRequest(
            ratings=[common_pb2.Rating(user_id=user_id, movie_id=movie_id, rating=rating)]
        )
        response = await self._call("RecordFeedback", self._stub.RecordFeedback, request)
        return list(response.stored)

    async def serving(self) -> bool:
        """Whether the gateway reports SERVING for its service (readiness of the web process)."""
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=min(self._timeout, 2.0)
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


__all__ = ["API_KEY_HEADER", "SERVICE", "GatewayClient", "GatewayError", "movie_filter"]
