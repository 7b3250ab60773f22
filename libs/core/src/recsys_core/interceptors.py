"""The kit's server interceptor (grpc.aio): errors, request id, deadline, logs, metrics.

For every call of an application service (health and reflection are left
alone) it:

- reads ``x-request-id`` from the metadata or creates one, stores it in the
  context variable the logs use (``recsys_core.logs.get_request_id``) and
  echoes it in the trailing metadata;
- records the call's deadline for ``recsys_core.client.remaining_timeout``;
- turns a raised :class:`~recsys_core.errors.RecsysError` into
  ``context.abort(code, message)`` (+ ``google.rpc.BadRequest`` details when it
  has a ``field``), and any other exception into INTERNAL
  "internal error (request id <id>)", the traceback going to the log only;
- writes one JSON log line per call (method, grpc_code, duration_ms) and the
  Prometheus metrics of ``recsys_core.metrics``;
- while tracing is on (``recsys_core.tracing``), opens a SERVER span per call, a child of the
  ``traceparent`` the call brought, current while the handler runs (so the kit's client
  channels propagate it downstream), ended with the call's status code.

Unary-unary, unary-stream, stream-unary and stream-stream handlers are all
wrapped (async functions and async generators; sync handlers pass through).

Undecodable request bodies (random bytes, a truncated message, invalid UTF-8 in a
string field) are the caller's error. grpc.aio parses the body with the handler's
``request_deserializer`` before any behaviour runs and answers an exception
there with UNKNOWN "Unexpected <class 'DecodeError'>" plus an ERROR traceback per
call, so the interceptor swaps every handler's deserializer (health and
reflection included) for :func:`safe_deserializer`, which returns a
:class:`BadBody` instead of raising; the wrapped behaviour (or, for streamed
requests, the request iterator) turns it into INVALID_ARGUMENT "request body is
not a valid <message type> ...". Such calls are counted in the metrics but
logged at WARNING without a traceback at most once per client host per
:data:`BAD_BODY_LOG_INTERVAL_S` (with the count left out since), and at most
:data:`BAD_BODY_LOG_MAX_PEERS` + 1 lines per interval in all, instead of one
access line each.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2

from . import metrics, tracing
from .client import REQUEST_ID_KEY, reset_deadline, set_deadline
from .errors import InvalidArgument, RecsysError, status_details
from .logs import RateLimiter, clean_request_id, new_request_id, reset_request_id, set_request_id

log = logging.getLogger("recsys.rpc")

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
#: services the interceptor does not touch (probes would flood logs and metrics)
PASS_THROUGH = (HEALTH_SERVICE, *REFLECTION_SERVICES)

_WARN_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_ERROR_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
_DEADLINE_SLACK_S = 0.05
#: failed calls -- refusals (INVALID_ARGUMENT, NOT_FOUND, ...), WARNING and ERROR access lines,
#: unhandled-exception tracebacks -- are logged at most once per (service, method, code) per this
#: many seconds, with the number left out since: an upstream outage at 25 calls/s wrote ~3,100
#: WARNING lines a minute, and a flood of bad requests one line each (issue #16). Every call is
#: still counted in the metrics; calls that succeed keep one INFO access line each.
REPEAT_LOG_INTERVAL_S = 10.0
_REPEATS = RateLimiter(REPEAT_LOG_INTERVAL_S, max_keys=1024)
_CODES_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}

#: undecodable bodies: one WARNING per client host per this many seconds (the rest counted)
BAD_BODY_LOG_INTERVAL_S = 60.0
#: distinct client hosts tracked per interval; more share one line
BAD_BODY_LOG_MAX_PEERS = 256
_SAFE_CACHE_MAX = 4096


class BadBody:
    """What :func:`safe_deserializer` returns for bytes that do not parse as the request type."""

    __slots__ = ("message", "size", "type_name")

    def __init__(self, type_name: str, size: int, message: str) -> None:
        self.type_name = type_name
        self.size = size
        self.message = message

    def __repr__(self) -> str:
        return f"BadBody({self.message!r})"


class BadRequestBody(InvalidArgument):
    """Raised from a streamed request iterator when one message does not parse."""

    def __init__(self, bad: BadBody) -> None:
        super().__init__(bad.message)
        self.bad = bad


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)  # Message.FromString is bound to its class
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "request message"


def _why(raw: bytes) -> str:
    """A short, actionable reason (only computed for bodies that failed to parse)."""
    try:
        empty_pb2.Empty.FromString(raw)  # every field unknown: checks the wire format alone
    except Exception:
        return "malformed protobuf wire format (truncated, or not protobuf at all)"
    return (
        "well-formed protobuf, but not this message: a string field is not valid UTF-8 "
        "or a field has the wrong wire type (wrong message type sent?)"
    )


def safe_deserializer(
    deserializer: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    """``deserializer`` that returns a :class:`BadBody` instead of raising (None stays None)."""
    if deserializer is None or getattr(deserializer, "_recsys_safe", False):
        return deserializer
    type_name = _type_name(deserializer)
    inner = deserializer

    def deserialize(raw: bytes) -> Any:
        try:
            return inner(raw)
        except Exception:
            size = len(raw)
            return BadBody(
                type_name, size, f"request body is not a valid {type_name} ({size} bytes): {_why(raw)}"
            )

    deserialize._recsys_safe = True  # type: ignore[attr-defined]
    return deserialize


def _peer_host(context: grpc.aio.ServicerContext) -> str:
    """The client's address without its port ("ipv4:127.0.0.1"): new connections share a key."""
    try:
        peer = str(context.peer())
    except Exception:  # pragma: no cover  (no peer on a closed call)
        return "unknown"
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer[:128]


class _BadBodyLog:
    """Rate-limited WARNING lines for undecodable bodies (one server's)."""

    def __init__(self, interval_s: float = BAD_BODY_LOG_INTERVAL_S) -> None:
        self.limiter = RateLimiter(interval_s, max_keys=BAD_BODY_LOG_MAX_PEERS)

    def record(self, bad: BadBody, method: str, context: grpc.aio.ServicerContext) -> None:
        peer = _peer_host(context)
        left_out = self.limiter.allow(peer)
        if left_out is None:
            return
        log.warning(
            "undecodable request body: %s %s from %s (%d more left out since this client's last "
            "such line; at most one line per client per %.0f s)",
            method,
            bad.message,
            peer,
            left_out,
            self.limiter.interval_s,
            extra={
                "method": method,
                "grpc_code": grpc.StatusCode.INVALID_ARGUMENT.name,
                "peer": peer,
                "left_out": left_out,
            },
        )


async def _refuse(
    bad: BadBody, method: str, context: grpc.aio.ServicerContext, bad_log: _BadBodyLog
) -> NoReturn:
    bad_log.record(bad, method, context)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.message)
    raise AssertionError("unreachable")  # pragma: no cover  (abort raises)


async def _checked_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, BadBody):
            raise BadRequestBody(request)
        yield request


def _as_code(value: Any) -> grpc.StatusCode | None:
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        return _CODES_BY_VALUE.get(value)
    return None


def internal_message(request_id: str) -> str:
    return f"internal error (request id {request_id})"


class _Call:
    """State of one intercepted call."""

    __slots__ = (
        "_dl_token",
        "_rid_token",
        "_span_token",
        "code",
        "labels",
        "method",
        "quiet",
        "request_id",
        "service",
        "span",
        "start",
    )

    def __init__(self, service: str, method: str) -> None:
        self.service = service
        self.method = method
        self.labels = (service, method)
        self.code: grpc.StatusCode | None = None
        self.request_id = ""
        self.start = 0.0
        self.quiet = False  # no access line (an undecodable body: logged rate-limited instead)
        self.span: Any = None  # the call's SERVER span while tracing is on

    def begin(self, context: grpc.aio.ServicerContext) -> None:
        self.start = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        incoming = None
        for key, value in metadata:
            if key == REQUEST_ID_KEY:
                incoming = clean_request_id(value)
                break
        self.request_id = incoming or new_request_id()
        self._rid_token = set_request_id(self.request_id)
        self._dl_token = set_deadline(context.time_remaining())
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        metrics.IN_FLIGHT.labels(*self.labels).inc()
        if tracing._tracer is not None:  # off: this one test per call
            self._start_span(tracing._tracer, metadata)

    def _start_span(self, tracer: Any, metadata: Any) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        parent = tracing.extract(metadata)
        attributes = tracing.rpc_attributes(self.method)
        attributes["recsys.service"] = self.service
        attributes["recsys.request_id"] = self.request_id
        self.span = tracer.start_span(
            self.method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        )
        self._span_token = otel_context.attach(trace.set_span_in_context(self.span, parent))

    def _end_span(self, code: grpc.StatusCode) -> None:
        from opentelemetry import context as otel_context

        span, self.span = self.span, None
        tracing.finish(span, code)
        otel_context.detach(self._span_token)  # logs, never raises, when in another context

    def succeeded(self, context: grpc.aio.ServicerContext) -> None:
        self.code = _as_code(_context_code(context)) or grpc.StatusCode.OK

    def aborted(self, context: grpc.aio.ServicerContext) -> None:
        self.code = _as_code(_context_code(context)) or grpc.StatusCode.UNKNOWN

    def cancelled(self, context: grpc.aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        # the server's deadline timer and time_remaining() can disagree by a few ms
        expired = remaining is not None and remaining <= _DEADLINE_SLACK_S
        self.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED

    async def refuse(self, bad: BadBody, context: grpc.aio.ServicerContext, bad_log: _BadBodyLog) -> NoReturn:
        self.code = grpc.StatusCode.INVALID_ARGUMENT
        self.quiet = True
        await _refuse(bad, self.method, context, bad_log)

    async def fail(self, exc: Exception, context: grpc.aio.ServicerContext, bad_log: _BadBodyLog) -> NoReturn:
        if isinstance(exc, BadRequestBody):
            await self.refuse(exc.bad, context, bad_log)
        trailing: tuple[tuple[str, str | bytes], ...] = ((REQUEST_ID_KEY, self.request_id),)
        if isinstance(exc, RecsysError):
            self.code = exc.status_code
            trailing += status_details(exc)
            await context.abort(exc.status_code, exc.message, trailing_metadata=trailing)
        self.code = grpc.StatusCode.INTERNAL
        self.quiet = True  # the traceback line below stands for the access line
        if self.span is not None:
            self.span.record_exception(exc)
        left_out = _REPEATS.allow((self.service, self.method, "exception", type(exc).__name__))
        if left_out is not None:
            log.error(
                "unhandled exception in %s (%d more like it left out in the last %.0f s)",
                self.method,
                left_out,
                REPEAT_LOG_INTERVAL_S,
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={"method": self.method, "grpc_code": "INTERNAL", "left_out": left_out},
            )
        await context.abort(
            grpc.StatusCode.INTERNAL, internal_message(self.request_id), trailing_metadata=trailing
        )
        raise AssertionError("unreachable")  # pragma: no cover  (abort raises)

    def end(self) -> None:
        elapsed = time.perf_counter() - self.start
        code = self.code or grpc.StatusCode.UNKNOWN
        metrics.IN_FLIGHT.labels(*self.labels).dec()
        metrics.REQUESTS.labels(self.service, self.method, code.name).inc()
        metrics.DURATION.labels(*self.labels).observe(elapsed)
        if not self.quiet:
            level = (
                logging.ERROR
                if code in _ERROR_CODES
                else logging.WARNING
                if code in _WARN_CODES
                else logging.INFO
            )
            left_out: int | None = 0
            if code != grpc.StatusCode.OK:
                left_out = _REPEATS.allow((self.service, self.method, code.name))
            if left_out is not None:
                log.log(
                    level,
                    "rpc %s %s%s",
                    self.method,
                    code.name,
                    f" ({left_out} more left out in the last {REPEAT_LOG_INTERVAL_S:.0f} s)"
                    if left_out
                    else "",
                    extra={
                        "method": self.method,
                        "grpc_code": code.name,
                        "duration_ms": round(elapsed * 1000, 3),
                        "left_out": left_out,
                    },
                )
        if self.span is not None:
            self._end_span(code)
        reset_deadline(self._dl_token)
        reset_request_id(self._rid_token)


def _context_code(context: grpc.aio.ServicerContext) -> Any:
    try:
        return context.code()
    except (AttributeError, NotImplementedError):  # pragma: no cover  (older grpc)
        return None


class KitServerInterceptor(grpc.aio.ServerInterceptor):
    """See the module docstring. ``service`` is the server's short name ("catalog")."""

    def __init__(
        self,
        service: str,
        *,
        pass_through: Iterable[str] = PASS_THROUGH,
        bad_body_log_interval_s: float = BAD_BODY_LOG_INTERVAL_S,
    ) -> None:
        self._service = service
        self._pass_through = frozenset(pass_through)
        self._bad_log = _BadBodyLog(bad_body_log_interval_s)
        self._safe: dict[Any, Any] = {}  # deserializer -> its safe_deserializer (built once each)

    def _deserializer(self, handler: Any) -> Callable[[bytes], Any] | None:
        original = handler.request_deserializer
        if original is None:
            return None
        safe = self._safe.get(original)
        if safe is None:
            safe = safe_deserializer(original)
            if len(self._safe) < _SAFE_CACHE_MAX:
                self._safe[original] = safe
        return safe

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method).lstrip("/")
        if method.split("/", 1)[0] in self._pass_through:
            return _guard(handler, method, self._bad_log, self._deserializer(handler))
        return self._wrap(handler, method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        service = self._service
        bad_log = self._bad_log
        h: Any = handler
        deserializer = self._deserializer(h)
        if not h.request_streaming and not h.response_streaming:
            inner = h.unary_unary
            if not inspect.iscoroutinefunction(inner):
                return _guard(handler, method, bad_log, deserializer)
            return grpc.unary_unary_rpc_method_handler(
                _unary_response(inner, service, method, bad_log, streamed=False),
                deserializer,
                h.response_serializer,
            )
        if h.request_streaming and not h.response_streaming:
            inner = h.stream_unary
            if not inspect.iscoroutinefunction(inner):
                return _guard(handler, method, bad_log, deserializer)
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(inner, service, method, bad_log, streamed=True),
                deserializer,
                h.response_serializer,
            )
        streamed = bool(h.request_streaming)
        inner = h.unary_stream if not streamed else h.stream_stream
        factory = (
            grpc.unary_stream_rpc_method_handler if not streamed else grpc.stream_stream_rpc_method_handler
        )
        if inspect.isasyncgenfunction(inner):
            wrapped: Any = _streaming_response(inner, service, method, bad_log, streamed=streamed)
        elif inspect.iscoroutinefunction(inner):  # writes with context.write()
            wrapped = _unary_response(inner, service, method, bad_log, streamed=streamed)
        else:
            return _guard(handler, method, bad_log, deserializer)
        return factory(wrapped, deserializer, h.response_serializer)


def _unary_response(
    inner: Callable[..., Awaitable[Any]],
    service: str,
    method: str,
    bad_log: _BadBodyLog,
    *,
    streamed: bool,
) -> Callable[..., Awaitable[Any]]:
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(service, method)
        call.begin(context)
        try:
            if streamed:
                request = _checked_requests(request)
            elif isinstance(request, BadBody):
                await call.refuse(request, context, bad_log)
            response = await inner(request, context)
            call.succeeded(context)
            return response
        except grpc.aio.AbortError:
            if call.code is None:
                call.aborted(context)
            raise
        except asyncio.CancelledError:
            call.cancelled(context)
            raise
        except Exception as exc:
            await call.fail(exc, context, bad_log)
        finally:
            call.end()

    return behavior


def _streaming_response(
    inner: Callable[..., AsyncIterator[Any]],
    service: str,
    method: str,
    bad_log: _BadBodyLog,
    *,
    streamed: bool,
) -> Callable[..., AsyncIterator[Any]]:
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(service, method)
        call.begin(context)
        try:
            if streamed:
                request = _checked_requests(request)
            elif isinstance(request, BadBody):
                await call.refuse(request, context, bad_log)
            async for item in inner(request, context):
                yield item
            call.succeeded(context)
        except grpc.aio.AbortError:
            if call.code is None:
                call.aborted(context)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled(context)
            raise
        except Exception as exc:
            await call.fail(exc, context, bad_log)
        finally:
            call.end()

    return behavior


def _guard(
    handler: grpc.RpcMethodHandler,
    method: str,
    bad_log: _BadBodyLog,
    deserializer: Callable[[bytes], Any] | None,
) -> grpc.RpcMethodHandler:
    """Only the undecodable-body refusal (no request id, metrics or access log): health,
    reflection, and sync handlers (such as a generated base class's UNIMPLEMENTED methods)."""
    h: Any = handler
    streamed = bool(h.request_streaming)
    if not h.response_streaming:
        inner = h.stream_unary if streamed else h.unary_unary
        factory = grpc.stream_unary_rpc_method_handler if streamed else grpc.unary_unary_rpc_method_handler
    else:
        inner = h.stream_stream if streamed else h.unary_stream
        factory = grpc.stream_stream_rpc_method_handler if streamed else grpc.unary_stream_rpc_method_handler

    if inspect.isasyncgenfunction(inner):

        async def gen_behavior(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, BadBody):
                await _refuse(request, method, context, bad_log)
            try:
                async for item in inner(_checked_requests(request) if streamed else request, context):
                    yield item
            except BadRequestBody as exc:
                await _refuse(exc.bad, method, context, bad_log)

        return factory(gen_behavior, deserializer, h.response_serializer)
    if inspect.iscoroutinefunction(inner):

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, BadBody):
                await _refuse(request, method, context, bad_log)
            try:
                return await inner(_checked_requests(request) if streamed else request, context)
            except BadRequestBody as exc:
                await _refuse(exc.bad, method, context, bad_log)

        return factory(behavior, deserializer, h.response_serializer)
    if not streamed and callable(inner):  # a sync handler (run in grpc's thread pool)

        def sync_behavior(request: Any, context: Any) -> Any:
            if isinstance(request, BadBody):
                bad_log.record(request, method, context)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return inner(request, context)

        return factory(sync_behavior, deserializer, h.response_serializer)
    return handler  # a sync handler of streamed requests keeps grpc's own deserialization


__all__ = [
    "BAD_BODY_LOG_INTERVAL_S",
    "BAD_BODY_LOG_MAX_PEERS",
    "PASS_THROUGH",
    "BadBody",
    "BadRequestBody",
    "KitServerInterceptor",
    "internal_message",
    "safe_deserializer",
]
