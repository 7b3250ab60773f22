"""Liveness ("recsys.liveness") stays SERVING while readiness follows the dependencies."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys_core.server import LIVENESS_SERVICE, Server
from recsys_core.testing import health_status, serving, test_settings

CATALOG = "recsys.catalog.v1.Catalog"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_liveness_independent_of_readiness() -> None:
    server = Server(test_settings(), "toy")
    server.add_service(
        catalog_pb2_grpc.add_CatalogServicer_to_server, catalog_pb2_grpc.CatalogServicer(), CATALOG
    )
    async with serving(server, serving=False) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert await health_status(ch, CATALOG) == NOT_SERVING
            assert await health_status(ch, LIVENESS_SERVICE) == SERVING
            server.set_serving(True)
            server.set_serving(False)  # a dependency went away
            assert await health_status(ch, "") == NOT_SERVING
            assert await health_status(ch, LIVENESS_SERVICE) == SERVING
            await server.stop(0)
            # stopped: nothing answers any more, or it answers NOT_SERVING
            try:
                assert await health_status(ch, LIVENESS_SERVICE, timeout=1) == NOT_SERVING
            except grpc.aio.AioRpcError:
                pass
