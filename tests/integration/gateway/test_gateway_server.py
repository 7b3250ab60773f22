"""The real gateway server: API keys, health/reflection left open, upstream outages named;
every RPC of the contract covered by reflection, API keys and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.testing import reflection_file_containing

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
METHODS = sorted(GATEWAY.methods_by_name)
KEY = (("x-api-key", "k-123"),)


def _empty_request(method: str) -> Any:
    return message_factory.GetMessageClass(GATEWAY.methods_by_name[method].input_type)()


def _calls_counted(method: str, code: str) -> float:
    labels = {"service": "gateway", "method": f"{GATEWAY.full_name}/{method}", "code": code}
    return REGISTRY.get_sample_value("recsys_grpc_requests_total", labels) or 0.0


async def test_health_and_reflection_need_no_key_and_wait_for_upstreams(gateway: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(gateway)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="recsys.gateway.v1.Gateway"), timeout=5)
    # Upstreams are down: the gateway is up but not ready.
    assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    files = await reflection_file_containing(gateway, "recsys.gateway.v1.Gateway.Recommend")
    assert files


async def test_api_key_required(gateway: grpc.aio.Channel) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    req = gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1)])
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recommend(req, timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "x-api-key" in (exc.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recommend(req, timeout=5, metadata=(("x-api-key", "wrong"),))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_dead_upstream_is_unavailable_naming_it(gateway: grpc.aio.Channel) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    req = gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1)])
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recommend(req, timeout=10, metadata=(("x-api-key", "k-123"),))
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (exc.value.details() or "").startswith("embedder: unavailable")


async def test_invalid_argument_names_field(gateway: grpc.aio.Channel) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recommend(
            gateway_pb2.RecommendRequest(user_id=1, k=5000), timeout=5, metadata=(("x-api-key", "k-123"),)
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "k must be" in (exc.value.details() or "")


@pytest.mark.parametrize("method", METHODS)
async def test_every_rpc_resolves_by_reflection(gateway: grpc.aio.Channel, method: str) -> None:
    files = await reflection_file_containing(gateway, f"{GATEWAY.full_name}.{method}")
    assert any(f.package == "recsys.gateway.v1" for f in files)


@pytest.mark.parametrize("method", METHODS)
async def test_every_rpc_needs_the_key_and_is_counted(gateway: grpc.aio.Channel, method: str) -> None:
    call = getattr(gateway_pb2_grpc.GatewayStub(gateway), method)
    before = _calls_counted(method, "UNAUTHENTICATED")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(_empty_request(method), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # counted as the call ends on the server, which may be just after the status reached us
    for _ in range(200):
        if _calls_counted(method, "UNAUTHENTICATED") >= before + 1:
            break
        await asyncio.sleep(0.01)
    assert _calls_counted(method, "UNAUTHENTICATED") == before + 1


async def test_list_genres_with_the_catalog_down_is_unavailable_naming_it(gateway: grpc.aio.Channel) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    before = _calls_counted("ListGenres", "UNAVAILABLE")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ListGenres(gateway_pb2.ListGenresRequest(), timeout=10, metadata=KEY)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (exc.value.details() or "").startswith("catalog: unavailable")
    assert _calls_counted("ListGenres", "UNAVAILABLE") == before + 1
