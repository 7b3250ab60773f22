"""OpenTelemetry tracing across the hops: a span per RPC, W3C trace context in the metadata.

Off unless turned on, and then nearly free: the server interceptor and the client channels test
one module global per call. On (``otlp_endpoint`` set in :class:`~recsys_core.settings.ServerSettings`,
i.e. ``RECSYS_<SVC>_OTLP_ENDPOINT``, or :func:`configure` called):

- the kit's server interceptor (``recsys_core.interceptors``) opens a SERVER span per application
  RPC (health and reflection are not traced), named like the method
  ("recsys.catalog.v1.Catalog/GetMovies"), a child of the ``traceparent``/``tracestate`` the call
  brought, with ``rpc.system``, ``rpc.service``, ``rpc.method``, ``recsys.service`` (the server's
  short name), ``recsys.request_id`` and, at the end, ``rpc.grpc.status_code`` (and
  ``recsys.grpc_code``, its name); server-side failure codes set the span status to ERROR;
- the channels of :func:`recsys_core.client.open_channel` opened while tracing is on open a CLIENT
  span per call, a child of the current span (the server call being handled), and send its
  context as W3C ``traceparent`` (+ ``tracestate``) metadata, so gateway -> catalog / embedder /
  retriever is one trace (even for channels opened with ``request_id_interceptor=False``);
- spans go to the OTLP/gRPC collector at ``otlp_endpoint`` through a batch processor (an exporter
  thread; a full queue drops spans, never blocks a call); ``trace_sample_ratio`` of the traces
  that start here are kept (parent-based: a call whose caller sampled it is always traced).

One configuration per process (the first :func:`configure` with an endpoint or exporter wins;
:func:`reset` turns tracing off again, for tests). The SDK and the exporter are imported only when
tracing is turned on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("recsys.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_KEYS = (TRACEPARENT, TRACESTATE)
#: codes that make a span's status ERROR (OpenTelemetry's gRPC conventions for servers; the
#: caller's own errors -- INVALID_ARGUMENT, NOT_FOUND, ... -- are not the server's failure)
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

#: the tracer while tracing is on; None = off (read by the interceptors on every call)
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_propagator: Any = None
_lock = threading.Lock()


def enabled() -> bool:
    """Is tracing on in this process?"""
    return _tracer is not None


def tracer() -> Tracer | None:
    return _tracer


def configure(
    service: str,
    *,
    endpoint: str = "",
    sample_ratio: float = 1.0,
    exporter: SpanExporter | None = None,
    batch: bool = True,
) -> bool:
    """Turn tracing on: spans to the OTLP/gRPC collector at ``endpoint``, or to ``exporter``.

    Neither given: nothing changes (tracing stays as it is: off unless configured before). Already
    on: nothing changes either (one configuration per process). ``batch=False`` exports every
    span as it ends (tests). Returns whether tracing is on.
    """
    global _tracer, _provider, _propagator
    if not endpoint and exporter is None:
        return _tracer is not None
    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError("sample_ratio must be in [0, 1]")
    with _lock:
        if _tracer is not None:
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
        provider = TracerProvider(
            resource=Resource.create({"service.name": service, "service.namespace": "recsys"}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        _propagator = TraceContextTextMapPropagator()
        _provider = provider
        _tracer = provider.get_tracer("recsys_core")
    log.info(
        "tracing on: %s, %.0f%% of new traces sampled",
        endpoint or type(exporter).__name__,
        sample_ratio * 100,
        extra={"otlp_endpoint": endpoint, "trace_sample_ratio": sample_ratio},
    )
    return True


def setup(settings: Any, service: str) -> bool:
    """:func:`configure` from a ``ServerSettings`` (``otlp_endpoint``, ``trace_sample_ratio``)."""
    endpoint = str(getattr(settings, "otlp_endpoint", "") or "").strip()
    if not endpoint:
        return _tracer is not None
    ratio = float(getattr(settings, "trace_sample_ratio", 1.0))
    return configure(service, endpoint=endpoint, sample_ratio=ratio)


def flush(timeout_s: float = 5.0) -> None:
    """Export the spans still queued (a server calls it when it stops). No-op when off."""
    provider = _provider
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))


def reset() -> None:
    """Turn tracing off (flushing and shutting down the exporter); tests."""
    global _tracer, _provider, _propagator
    with _lock:
        provider, _provider, _tracer, _propagator = _provider, None, None, None
    if provider is not None:
        provider.shutdown()


def extract(metadata: Iterable[tuple[str, Any]] | None) -> Context | None:
    """The trace context a call's metadata carries (None: none, or tracing off)."""
    if _propagator is None:
        return None
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if key in TRACE_KEYS and isinstance(value, str):
            carrier[key] = value
    if not carrier:
        return None
    ctx: Context = _propagator.extract(carrier)
    return ctx


def inject(span: Span) -> Mapping[str, str]:
    """``traceparent`` (+ ``tracestate``) naming ``span`` as the parent."""
    if _propagator is None:
        return {}
    from opentelemetry import trace

    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


@contextmanager
def server_span(
    name: str, carrier: Mapping[str, str], attributes: Mapping[str, str | int]
) -> Iterator[Span | None]:
    """A SERVER span for a request that is not a kit gRPC call (the web's HTTP pages), the
    current span while the block runs (so the calls it makes through ``open_channel`` channels
    are its children), a child of the W3C ``traceparent`` in ``carrier`` (e.g. HTTP headers).
    None (and nothing recorded) while tracing is off. The block sets the outcome attributes."""
    tracer = _tracer
    if tracer is None or _propagator is None:
        yield None
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    found = {key: value for key in TRACE_KEYS if (value := carrier.get(key))}
    parent = _propagator.extract(found) if found else None
    span = tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


def http_outcome(span: Span, status: int) -> None:
    """``http.response.status_code`` on a :func:`server_span`; 5xx (the server's failure) = ERROR."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def rpc_attributes(method: str) -> dict[str, str]:
    """``rpc.*`` attributes of the full method name ("pkg.Svc/Method")."""
    svc, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": svc, "rpc.method": name}


def finish(span: Span, code: grpc.StatusCode, *, client: bool = False) -> None:
    """Set the status code attributes (ERROR for failures) and end ``span``."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code.value[0])
    span.set_attribute("recsys.grpc_code", code.name)
    failed = code != grpc.StatusCode.OK if client else code in SERVER_ERROR_CODES
    if failed:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


__all__ = [
    "SERVER_ERROR_CODES",
    "TRACEPARENT",
    "TRACESTATE",
    "configure",
    "enabled",
    "extract",
    "finish",
    "flush",
    "http_outcome",
    "inject",
    "reset",
    "rpc_attributes",
    "server_span",
    "setup",
    "tracer",
]
