"""The web's pages in the trace (recsys_core.tracing): a SERVER span per page, a child of the
browser's/edge's ``traceparent``; its gateway calls CLIENT spans under it, their context sent to
the gateway; probes are not traced; tracing off = no spans, no header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from recsys_core import tracing
from recsys_core.testing import recorded_spans

OUTER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OUTER = f"00-{OUTER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans("web-test") as exporter:
        yield exporter


async def test_a_page_and_its_gateway_calls_are_one_trace(spans, make_web):
    web = await make_web()
    spans.clear()  # the readiness checks are health calls
    status, _ = await web.get("/movies/5", headers={"traceparent": OUTER})
    assert status == 200
    got = spans.get_finished_spans()
    pages = [s for s in got if s.kind == SpanKind.SERVER]
    assert [s.name for s in pages] == ["GET /movies/{movie_id}"]
    page = pages[0]
    assert format(page.context.trace_id, "032x") == OUTER_TRACE
    assert page.parent is not None and format(page.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert page.attributes["http.route"] == "/movies/{movie_id}"
    assert page.attributes["http.response.status_code"] == 200
    calls = [s for s in got if s.kind == SpanKind.CLIENT]
    names = {s.name.lstrip("/") for s in calls}
    assert {"recsys.gateway.v1.Gateway/GetMovies", "recsys.gateway.v1.Gateway/SimilarMovies"} <= names, names
    for call in calls:
        assert call.parent is not None and call.parent.span_id == page.context.span_id
        assert call.context.trace_id == page.context.trace_id
    sent = [m.get("traceparent", "") for m in web.fake.metadata[-len(calls) :]]
    assert all(OUTER_TRACE in tp for tp in sent), sent


async def test_a_failing_page_is_an_error_span_and_probes_are_not_traced(spans, make_web):
    import grpc

    web = await make_web()
    web.fake.failures["GetMovies"] = (grpc.StatusCode.UNAVAILABLE, "catalog unavailable")
    spans.clear()
    status, _ = await web.get("/movies/5")
    assert status >= 500
    await web.client.get("/readyz")
    await web.client.get("/healthz")
    pages = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in pages] == ["GET /movies/{movie_id}"]
    assert pages[0].status.status_code == StatusCode.ERROR
    assert pages[0].parent is None  # no traceparent came: a new trace


async def test_tracing_off_sends_no_trace_context(make_web):
    tracing.reset()
    web = await make_web()
    status, _ = await web.get("/movies/5", headers={"traceparent": OUTER})
    assert status == 200
    assert not any("traceparent" in m for m in web.fake.metadata)
