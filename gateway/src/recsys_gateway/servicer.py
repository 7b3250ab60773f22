"""gRPC edge of the gateway: authentication, then the service; errors are mapped by the kit."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.errors import Unauthenticated

from . import hops
from .service import GatewayService

API_KEY_HEADER = "x-api-key"


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, service: GatewayService, api_keys: Sequence[str] = ()) -> None:
        self._service = service
        self._keys = [k.encode() for k in api_keys]

    def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        hops.start()  # every RPC begins here: a fresh per-request record of upstream time
        if not self._keys:
            return
        given = ""
        for key, value in context.invocation_metadata() or ():
            if key == API_KEY_HEADER:
                given = value if isinstance(value, str) else value.decode(errors="replace")
        if not given:
            raise Unauthenticated(f"missing API key: send it in the `{API_KEY_HEADER}` metadata entry")
        ok = False
        for k in self._keys:  # compare against every key: no early exit timing
            ok |= hmac.compare_digest(k, given.encode())
        if not ok:
            raise Unauthenticated("invalid API key")

    async def Recommend(
        self, request: gateway_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecommendResponse:
        self._authorize(context)
        return await self._service.recommend(request)

    async def SimilarMovies(
        self, request: gateway_pb2.SimilarMoviesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SimilarMoviesResponse:
        self._authorize(context)
        return await self._service.similar_movies(request)

    async def GetMovies(
        self, request: gateway_pb2.GetMoviesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GetMoviesResponse:
        self._authorize(context)
        return await self._service.get_movies(request)

    async def SearchMovies(
        self, request: gateway_pb2.SearchMoviesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SearchMoviesResponse:
        self._authorize(context)
        return await self._service.search_movies(request)

    async def SampleMovies(
        self, request: gateway_pb2.SampleMoviesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SampleMoviesResponse:
        self._authorize(context)
        return await self._service.sample_movies(request)

    async def ListGenres(
        self, request: gateway_pb2.ListGenresRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListGenresResponse:
        self._authorize(context)
        return await self._service.list_genres(request)

    async def RecordFeedback(
        self, request: gateway_pb2.RecordFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RecordFeedbackResponse:
        self._authorize(context)
        return await self._service.record_feedback(request)
