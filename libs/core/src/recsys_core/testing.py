"""Helpers for services' tests: start a kit Server on 127.0.0.1:0, wait for health, ask reflection.

Typical fixture::

    @pytest.fixture
    async def catalog():
        server = Server(test_settings(CatalogSettings, dsn=...), "catalog")
        server.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, servicer, CATALOG)
        async with serving(server) as (srv, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield catalog_pb2_grpc.CatalogStub(channel)
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from . import tracing
from .server import Server
from .settings import ServerSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

S = TypeVar("S", bound=ServerSettings)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bound, then closed): for a server a test starts
    later on a known port, or an address that refuses connections."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def recorded_spans(service: str) -> Iterator[InMemorySpanExporter]:
    """Tracing on as ``service`` (every trace sampled), each span exported to memory as it
    ends; tracing off again afterwards (a fixture's body: ``with recorded_spans("x") as spans``)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing.reset()
    exporter = InMemorySpanExporter()
    if not tracing.configure(service, exporter=exporter, sample_ratio=1.0, batch=False):
        raise RuntimeError("tracing could not be configured")
    try:
        yield exporter
    finally:
        tracing.reset()


def test_settings(cls: type[S] = ServerSettings, **overrides: Any) -> S:  # type: ignore[assignment]
    """Settings for a test server: 127.0.0.1, ephemeral port, no metrics endpoint, short grace."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": None,
        "grace_seconds": 2.0,
        "log_json": False,
    }
    values.update(overrides)
    return cls(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def start_server(server: Server, *, serving: bool = True) -> tuple[Server, int]:
    """Start ``server`` (settings should say port 0) and, by default, set it SERVING."""
    port = await server.start()
    if serving:
        server.set_serving(True)
    return server, port


@asynccontextmanager
async def serving(
    server: Server, *, serving: bool = True, grace: float = 0.0
) -> AsyncIterator[tuple[Server, int]]:
    """``async with serving(server) as (server, port):`` start, yield, then stop (grace 0 by default)."""
    await start_server(server, serving=serving)
    try:
        yield server, server.port
    finally:
        await server.stop(grace)


async def health_status(channel: grpc.aio.Channel, service: str = "", timeout: float = 5.0) -> int:  # noqa: ASYNC109
    """The ``HealthCheckResponse.ServingStatus`` of ``service`` (raises AioRpcError NOT_FOUND if unknown)."""
    stub = health_pb2_grpc.HealthStub(channel)
    resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return int(resp.status)


async def wait_serving(channel: grpc.aio.Channel, service: str = "", timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until health Check says SERVING for ``service``; TimeoutError after ``timeout`` seconds.

    Polls Check (the library's aio Watch loses notifications when two watchers of one service overlap).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{service or '(server)'} not SERVING after {timeout}s (last: {last})")
        try:
            status = await health_status(channel, service, timeout=min(left, 2.0))
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.aio.AioRpcError as exc:
            last = exc.code().name
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


async def _reflect(channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter([request]), timeout=5.0)
    async for response in call:
        return response
    raise RuntimeError("no reflection response")


async def reflection_services(channel: grpc.aio.Channel) -> list[str]:
    """Service names the server lists through reflection."""
    resp = await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    return [s.name for s in resp.list_services_response.service]


async def reflection_file_containing(
    channel: grpc.aio.Channel, symbol: str
) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files reflection returns for ``symbol``; raises LookupError with the server's error."""
    resp = await _reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    if resp.HasField("error_response"):
        raise LookupError(f"{symbol}: {resp.error_response.error_message}")
    files = []
    for blob in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(blob)
        files.append(fd)
    return files


__all__ = [
    "health_status",
    "reflection_file_containing",
    "reflection_services",
    "serving",
    "start_server",
    "test_settings",
    "wait_serving",
]
