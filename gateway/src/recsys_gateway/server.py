"""Gateway lifecycle: open upstream channels, serve, drain, close channels."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.catalog.v1 import catalog_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.app import App
from recsys_core.errors import DependencyUnavailable
from recsys_core.server import Server

from .batching import BatchingUpstreams
from .service import GatewayOptions, GatewayService, Upstreams
from .servicer import GatewayServicer
from .settings import GatewaySettings
from .upstreams import GrpcUpstreams

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
log = logging.getLogger(__name__)


class GatewayApp(App[Server]):
    """The gateway app: upstream channels open at construction; SERVING once every upstream
    reports SERVING (checked once a second until then), or at once with
    ``wait_for_upstreams=False``. After that the gateway stays SERVING: an upstream outage is
    answered per call, degraded where a fallback exists (flagged), else UNAVAILABLE naming it."""

    dependency = "upstreams"

    def __init__(self, settings: GatewaySettings, *, wait_for_upstreams: bool = True) -> None:
        super().__init__(settings, "gateway", retry_initial_s=1.0, retry_max_s=1.0, check_interval_s=0)
        self.settings: GatewaySettings = settings
        self.upstreams = GrpcUpstreams(settings)
        self._hot: Upstreams = self.upstreams
        if settings.upstream_batch_max_items:
            self._hot = BatchingUpstreams(
                self.upstreams,
                max_items=settings.upstream_batch_max_items,
                max_in_flight=settings.upstream_batch_in_flight,
                budget=self.upstreams.budget,
            )
        self.service = GatewayService(
            self._hot,
            GatewayOptions(
                sample_min_ratings=settings.sample_min_ratings,
                history_window=settings.history_window,
                history_columns=settings.history_columns,
                popular_ranking=catalog_pb2.PopularityRanking.Value(
                    "POPULARITY_RANKING_" + settings.popular_ranking.upper()
                ),
                popular_half_life_days=settings.popular_half_life_days,
                item_vector_cache=settings.item_vector_cache,
                movie_cache_ttl_s=settings.movie_cache_ttl_s,
                fallbacks=settings.fallbacks,
            ),
        )
        servicer = GatewayServicer(self.service, [k.get_secret_value() for k in settings.api_keys])
        self.server.add_service(gateway_pb2_grpc.add_GatewayServicer_to_server, servicer, SERVICE_NAME)
        #: upstreams not yet seen SERVING (an upstream seen SERVING once is not asked again)
        self._pending = set(self.upstreams.health_targets()) if wait_for_upstreams else set()

    async def connect(self) -> None:
        checks = self.upstreams.health_targets()
        for name in sorted(self._pending):
            channel, service = checks[name]
            try:
                resp = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
            except grpc.aio.AioRpcError:
                continue
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                self._pending.discard(name)
        if self._pending:
            raise DependencyUnavailable("upstreams", "waiting for " + ", ".join(sorted(self._pending)))

    async def close(self) -> None:
        if isinstance(self._hot, BatchingUpstreams):
            await self._hot.aclose()  # merged calls still out finish before the channels close
        await self.upstreams.close()


async def serve(settings: GatewaySettings) -> None:
    await GatewayApp(settings).serve()
