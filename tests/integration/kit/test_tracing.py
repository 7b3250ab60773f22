"""OpenTelemetry tracing through the kit (recsys_core.tracing): spans recorded in-process.

client -> front (a kit server whose GetMovies calls back through an ``open_channel`` channel)
-> back (a kit server): one trace, SERVER span per hop, a CLIENT span between them, the W3C
``traceparent`` in the metadata; status codes on the spans; tracing off = no spans, no header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys_core import tracing
from recsys_core.client import TracingClientInterceptor, open_channel, remaining_timeout
from recsys_core.errors import NotFound
from recsys_core.server import Server
from recsys_core.settings import ServerSettings
from recsys_core.testing import recorded_spans, serving, test_settings

CATALOG = "recsys.catalog.v1.Catalog"
GET_MOVIES = f"{CATALOG}/GetMovies"
STREAM = "kit.trace.Stream"
# A traceparent a caller outside the kit sent (W3C example ids, sampled).
OUTER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OUTER_SPAN = "00f067aa0ba902b7"
OUTER = f"00-{OUTER_TRACE}-{OUTER_SPAN}-01"


class Catalog(catalog_pb2_grpc.CatalogServicer):
    """GetMovies: records the metadata it got; with a ``downstream`` calls it (a second hop)."""

    def __init__(self) -> None:
        self.downstream: catalog_pb2_grpc.CatalogStub | None = None
        self.metadata: list[dict[str, str]] = []
        self.error: Exception | None = None

    async def GetMovies(self, request: Any, context: Any) -> Any:
        self.metadata.append({k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)})
        if self.error is not None:
            raise self.error
        if self.downstream is not None:
            return await self.downstream.GetMovies(request, timeout=remaining_timeout(5.0))
        return catalog_pb2.GetMoviesResponse(movies=[common_pb2.Movie(movie_id=i) for i in request.movie_ids])


def _stream_handler() -> grpc.GenericRpcHandler:
    async def chunks(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(3):
            yield request + str(i).encode()

    async def join(requests: AsyncIterator[bytes], context: Any) -> bytes:
        return b"".join([r async for r in requests])

    return grpc.method_handlers_generic_handler(
        STREAM,
        {
            "Chunks": grpc.unary_stream_rpc_method_handler(chunks),
            "Join": grpc.stream_unary_rpc_method_handler(join),
        },
    )


def _server(name: str, servicer: Catalog) -> Server:
    server = Server(test_settings(), name)
    server.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, servicer, CATALOG)
    server.add_service(lambda _s, srv: srv.add_generic_rpc_handlers((_stream_handler(),)), None, STREAM)
    return server


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on (every trace sampled), spans exported as they end to memory; off afterwards."""
    with recorded_spans("kit-test") as exporter:
        yield exporter


@pytest.fixture
def no_tracing() -> Iterator[None]:
    tracing.reset()
    yield
    tracing.reset()


async def _two_hops(
    front: Catalog, back: Catalog, metadata: tuple[tuple[str, str], ...] = ()
) -> catalog_pb2.GetMoviesResponse:
    async with serving(_server("back", back)) as (_, back_port):
        async with open_channel(f"127.0.0.1:{back_port}", service=CATALOG) as back_channel:
            front.downstream = catalog_pb2_grpc.CatalogStub(back_channel)
            async with serving(_server("front", front)) as (_, front_port):
                async with grpc.aio.insecure_channel(f"127.0.0.1:{front_port}") as channel:
                    stub = catalog_pb2_grpc.CatalogStub(channel)
                    resp: catalog_pb2.GetMoviesResponse = await stub.GetMovies(
                        catalog_pb2.GetMoviesRequest(movie_ids=[1, 2]), metadata=metadata, timeout=5
                    )
                    return resp


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind, service: str | None = None) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.kind == kind and (service is None or (s.attributes or {}).get("recsys.service") == service)
    ]
    assert len(found) == 1, f"want one {kind} span of {service}, got {[(s.name, s.kind) for s in spans]}"
    return found[0]


async def test_a_call_through_two_kit_servers_is_one_trace(spans: InMemorySpanExporter) -> None:
    front, back = Catalog(), Catalog()
    resp = await _two_hops(front, back)
    assert [m.movie_id for m in resp.movies] == [1, 2]

    got = spans.get_finished_spans()
    assert len(got) == 3, [(s.name, s.kind) for s in got]
    front_span = _by_kind(got, SpanKind.SERVER, "front")
    client_span = _by_kind(got, SpanKind.CLIENT)
    back_span = _by_kind(got, SpanKind.SERVER, "back")
    ctx = [s.get_span_context() for s in (front_span, client_span, back_span)]
    assert ctx[0] is not None and ctx[1] is not None and ctx[2] is not None
    # one trace: front (the root: the client sent no traceparent) -> its CLIENT call -> back
    assert ctx[0].trace_id == ctx[1].trace_id == ctx[2].trace_id
    assert front_span.parent is None
    assert client_span.parent is not None and client_span.parent.span_id == ctx[0].span_id
    assert back_span.parent is not None and back_span.parent.span_id == ctx[1].span_id
    # the back hop got the client span's context as a W3C traceparent
    version, trace_id, parent_id, flags = back.metadata[0]["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", f"{ctx[1].trace_id:032x}", f"{ctx[1].span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    assert "traceparent" not in front.metadata[0]
    for span in (front_span, client_span, back_span):
        attrs = dict(span.attributes or {})
        assert span.name == GET_MOVIES
        assert attrs["rpc.system"] == "grpc"
        assert attrs["rpc.service"] == CATALOG and attrs["rpc.method"] == "GetMovies"
        assert attrs["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
        assert attrs["recsys.grpc_code"] == "OK"
        assert span.status.status_code == StatusCode.UNSET
    # the request id of the call is on the server spans (one id across the hops)
    assert front_span.attributes and back_span.attributes
    assert front_span.attributes["recsys.request_id"] == back_span.attributes["recsys.request_id"]
    # nested in time: the front span contains the client span, which contains the back span
    assert front_span.start_time and client_span.start_time and back_span.start_time
    assert front_span.end_time and client_span.end_time and back_span.end_time
    assert front_span.start_time <= client_span.start_time <= back_span.start_time
    assert back_span.end_time <= client_span.end_time <= front_span.end_time


async def test_an_incoming_traceparent_is_the_parent(spans: InMemorySpanExporter) -> None:
    await _two_hops(Catalog(), Catalog(), metadata=(("traceparent", OUTER),))
    got = spans.get_finished_spans()
    assert len(got) == 3
    assert {f"{s.context.trace_id:032x}" for s in got if s.context} == {OUTER_TRACE}
    front_span = _by_kind(got, SpanKind.SERVER, "front")
    assert front_span.parent is not None and f"{front_span.parent.span_id:016x}" == OUTER_SPAN
    assert front_span.parent.is_remote


async def test_status_codes_on_the_spans(spans: InMemorySpanExporter) -> None:
    """A refusal (NOT_FOUND) is the caller's error on the server span, a failure on the client's;
    an unhandled exception is INTERNAL, ERROR, with the exception recorded."""
    front, back = Catalog(), Catalog()
    back.error = NotFound("no such movie")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _two_hops(front, back)
    assert info.value.code() == grpc.StatusCode.INTERNAL  # the toy front does not map upstream errors
    got = spans.get_finished_spans()
    back_span = _by_kind(got, SpanKind.SERVER, "back")
    client_span = _by_kind(got, SpanKind.CLIENT)
    front_span = _by_kind(got, SpanKind.SERVER, "front")
    assert back_span.attributes and back_span.attributes["recsys.grpc_code"] == "NOT_FOUND"
    assert back_span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert back_span.status.status_code == StatusCode.UNSET
    assert client_span.attributes and client_span.attributes["recsys.grpc_code"] == "NOT_FOUND"
    assert client_span.status.status_code == StatusCode.ERROR
    assert front_span.attributes and front_span.attributes["recsys.grpc_code"] == "INTERNAL"
    assert front_span.status.status_code == StatusCode.ERROR
    assert [e.name for e in front_span.events] == ["exception"]


async def test_streamed_calls_are_traced(spans: InMemorySpanExporter) -> None:
    """Server-streaming (the CLIENT span ends from the call's done callback) and client-streaming."""
    async with serving(_server("back", Catalog())) as (_, port):
        async with open_channel(f"127.0.0.1:{port}", service=STREAM) as channel:
            call = channel.unary_stream(f"/{STREAM}/Chunks")(b"x", timeout=5)
            assert [chunk async for chunk in call] == [b"x0", b"x1", b"x2"]
            assert await channel.stream_unary(f"/{STREAM}/Join")(iter([b"a", b"b"]), timeout=5) == b"ab"
            for _ in range(50):
                if len(spans.get_finished_spans()) == 4:
                    break
                await asyncio.sleep(0.01)
    got = spans.get_finished_spans()
    assert len(got) == 4, [(s.name, s.kind) for s in got]
    for method in ("Chunks", "Join"):
        pair = [s for s in got if s.name == f"{STREAM}/{method}"]
        client_span = _by_kind(tuple(pair), SpanKind.CLIENT)
        server_span = _by_kind(tuple(pair), SpanKind.SERVER, "back")
        assert server_span.parent is not None and client_span.context is not None
        assert server_span.parent.span_id == client_span.context.span_id
        for span in pair:
            assert span.attributes and span.attributes["recsys.grpc_code"] == "OK"


async def test_tracing_off_records_nothing_and_sends_no_traceparent(no_tracing: None) -> None:
    exporter = InMemorySpanExporter()
    tracing.configure("kit-test", exporter=exporter, batch=False)
    tracing.reset()  # off again: the exporter must see nothing from here on
    assert not tracing.enabled()
    front, back = Catalog(), Catalog()
    resp = await _two_hops(front, back, metadata=(("traceparent", OUTER),))
    assert [m.movie_id for m in resp.movies] == [1, 2]
    assert exporter.get_finished_spans() == ()
    # the front got the caller's header but propagates nothing; its channel has no tracing interceptor
    assert front.metadata[0]["traceparent"] == OUTER
    assert "traceparent" not in back.metadata[0]
    async with open_channel("127.0.0.1:1", service=CATALOG, request_id_interceptor=False) as channel:
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            assert not _interceptors(channel, kind)
    assert not tracing.enabled()


async def test_channels_get_the_tracing_interceptor_only_while_tracing_is_on(
    spans: InMemorySpanExporter,
) -> None:
    async with open_channel("127.0.0.1:1", service=CATALOG, request_id_interceptor=False) as channel:
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            got = _interceptors(channel, kind)
            assert len(got) == 1 and isinstance(got[0], TracingClientInterceptor), kind


async def test_sample_ratio_zero_records_no_new_trace(no_tracing: None) -> None:
    exporter = InMemorySpanExporter()
    tracing.configure("kit-test", exporter=exporter, sample_ratio=0.0, batch=False)
    front, back = Catalog(), Catalog()
    await _two_hops(front, back)
    assert exporter.get_finished_spans() == ()
    # the decision travels: the back hop was told "not sampled" (flag bit 0 clear)
    assert not int(back.metadata[0]["traceparent"].rsplit("-", 1)[1], 16) & 1
    # a caller that sampled its trace is traced anyway (parent-based sampling)
    await _two_hops(Catalog(), Catalog(), metadata=(("traceparent", OUTER),))
    assert len(exporter.get_finished_spans()) == 3


def test_settings_turn_tracing_on_only_with_an_endpoint(no_tracing: None) -> None:
    assert ServerSettings.env_name("otlp_endpoint") == "RECSYS_OTLP_ENDPOINT"
    assert ServerSettings.env_name("trace_sample_ratio") == "RECSYS_TRACE_SAMPLE_RATIO"
    off = test_settings()
    assert off.otlp_endpoint == "" and 0 <= off.trace_sample_ratio <= 1
    assert not tracing.setup(off, "kit-test") and not tracing.enabled()
    Server(off, "kit-test")  # a server without an endpoint leaves tracing off
    assert not tracing.enabled()
    # an endpoint: the OTLP exporter is built (it connects lazily: no collector needed here)
    on = test_settings(otlp_endpoint="http://127.0.0.1:1", trace_sample_ratio=0.5)
    Server(on, "kit-test")
    assert tracing.enabled()
    with pytest.raises(ValueError):
        test_settings(trace_sample_ratio=1.5)


def _interceptors(channel: grpc.aio.Channel, kind: str) -> list[Any]:
    """The client interceptors grpc.aio filed for ``kind`` calls (its private lists)."""
    return list(getattr(channel, f"_{kind}_interceptors", None) or [])
