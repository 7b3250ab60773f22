"""The gateway's gRPC edge: every RPC of the contract is implemented, authorized first, and
handed to the service."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import message_factory
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.errors import Unauthenticated
from recsys_gateway.servicer import API_KEY_HEADER, GatewayServicer

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
METHODS = sorted(GATEWAY.methods_by_name)


class Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


class RecordingService:
    """Any service method: records (name, request), returns a marker."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        async def method(request: Any) -> str:
            self.calls.append((name, request))
            return f"answer of {name}"

        return method


def _request(method: str) -> Any:
    return message_factory.GetMessageClass(GATEWAY.methods_by_name[method].input_type)()


def test_every_rpc_is_implemented() -> None:
    for name in METHODS:
        assert getattr(GatewayServicer, name) is not getattr(gateway_pb2_grpc.GatewayServicer, name), name


@pytest.mark.parametrize("method", METHODS)
async def test_every_rpc_needs_a_valid_key(method: str) -> None:
    service = RecordingService()
    servicer = GatewayServicer(service, api_keys=["k-1", "k-2"])  # type: ignore[arg-type]
    handler = getattr(servicer, method)
    with pytest.raises(Unauthenticated, match=API_KEY_HEADER):
        await handler(_request(method), Context())
    with pytest.raises(Unauthenticated, match="invalid API key"):
        await handler(_request(method), Context(((API_KEY_HEADER, "nope"),)))
    assert service.calls == []
    answer = await handler(_request(method), Context(((API_KEY_HEADER, "k-2"),)))
    assert answer.startswith("answer of ") and len(service.calls) == 1


async def test_list_genres_goes_to_the_service() -> None:
    service = RecordingService()
    servicer = GatewayServicer(service)  # type: ignore[arg-type]
    req = gateway_pb2.ListGenresRequest()
    assert await servicer.ListGenres(req, Context()) == "answer of list_genres"
    assert service.calls == [("list_genres", req)]
