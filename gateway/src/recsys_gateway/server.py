"""Gateway lifecycle: open upstream channels, serve, drain, close channels."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.catalog.v1 import catalog_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.server import Server

from .batching import BatchingUpstreams
from .service import GatewayOptions, GatewayService, Upstreams
from .servicer import GatewayServicer
from .settings import GatewaySettings
from .upstreams import GrpcUpstreams

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
log = logging.getLogger(__name__)


async def _wait_upstreams(server: Server, upstreams: GrpcUpstreams) -> None:
    """Report SERVING once every upstream reports SERVING (checked once a second until then).

    After that the gateway stays SERVING: an upstream outage is answered per call, degraded
    where a fallback exists (flagged), else UNAVAILABLE naming the upstream.
    """
    checks = upstreams.health_targets()
    pending = set(checks)
    while pending:
        for name in sorted(pending):
            channel, service = checks[name]
            try:
                resp = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    pending.discard(name)
            except grpc.aio.AioRpcError:
                pass
        if pending:
            log.info("waiting for upstreams: %s", ", ".join(sorted(pending)))
            await asyncio.sleep(1.0)
    server.set_serving(True)
    log.info("all upstreams SERVING: gateway SERVING")


async def build_server(settings: GatewaySettings, *, wait_for_upstreams: bool = True) -> Server:
    """Build and start the gateway; SERVING once the upstreams are (or at once when not waiting)."""
    upstreams = GrpcUpstreams(settings)
    hot: Upstreams = upstreams
    if settings.upstream_batch_max_items:
        hot = BatchingUpstreams(
            upstreams,
            max_items=settings.upstream_batch_max_items,
            max_in_flight=settings.upstream_batch_in_flight,
            budget=upstreams.budget,
        )
    service = GatewayService(
        hot,
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
    servicer = GatewayServicer(service, [k.get_secret_value() for k in settings.api_keys])
    server = Server(settings, "gateway")
    server.add_service(gateway_pb2_grpc.add_GatewayServicer_to_server, servicer, SERVICE_NAME)
    await server.start()
    if wait_for_upstreams:
        task = asyncio.create_task(_wait_upstreams(server, upstreams))

        async def cancel_wait() -> None:
            task.cancel()

        server.on_stop(cancel_wait)
    else:
        server.set_serving(True)
    if isinstance(hot, BatchingUpstreams):
        server.on_stop(hot.aclose)  # merged calls still out finish before the channels close
    server.on_stop(upstreams.close)
    return server


async def serve(settings: GatewaySettings) -> None:
    server = await build_server(settings)
    await server.wait_for_signal()
