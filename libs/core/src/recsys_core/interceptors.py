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
  Prometheus metrics of ``recsys_core.metrics``.

Unary-unary, unary-stream, stream-unary and stream-stream handlers are all
wrapped (async functions and async generators; sync handlers pass through).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn

import grpc

from . import metrics
from .client import REQUEST_ID_KEY, reset_deadline, set_deadline
from .errors import RecsysError, status_details
from .logs import clean_request_id, new_request_id, reset_request_id, set_request_id

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
_CODES_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


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

    __slots__ = ("_dl_token", "_rid_token", "code", "labels", "method", "request_id", "service", "start")

    def __init__(self, service: str, method: str) -> None:
        self.service = service
        self.method = method
        self.labels = (service, method)
        self.code: grpc.StatusCode | None = None
        self.request_id = ""
        self.start = 0.0

    def begin(self, context: grpc.aio.ServicerContext) -> None:
        self.start = time.perf_counter()
        incoming = None
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_KEY:
                incoming = clean_request_id(value)
                break
        self.request_id = incoming or new_request_id()
        self._rid_token = set_request_id(self.request_id)
        self._dl_token = set_deadline(context.time_remaining())
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        metrics.IN_FLIGHT.labels(*self.labels).inc()

    def succeeded(self, context: grpc.aio.ServicerContext) -> None:
        self.code = _as_code(_context_code(context)) or grpc.StatusCode.OK

    def aborted(self, context: grpc.aio.ServicerContext) -> None:
        self.code = _as_code(_context_code(context)) or grpc.StatusCode.UNKNOWN

    def cancelled(self, context: grpc.aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        # the server's deadline timer and time_remaining() can disagree by a few ms
        expired = remaining is not None and remaining <= _DEADLINE_SLACK_S
        self.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED

    async def fail(self, exc: Exception, context: grpc.aio.ServicerContext) -> NoReturn:
        trailing: tuple[tuple[str, str | bytes], ...] = ((REQUEST_ID_KEY, self.request_id),)
        if isinstance(exc, RecsysError):
            self.code = exc.status_code
            trailing += status_details(exc)
            await context.abort(exc.status_code, exc.message, trailing_metadata=trailing)
        self.code = grpc.StatusCode.INTERNAL
        log.error(
            "unhandled exception in %s",
            self.method,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"method": self.method},
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
        level = (
            logging.ERROR
            if code in _ERROR_CODES
            else logging.WARNING
            if code in _WARN_CODES
            else logging.INFO
        )
        log.log(
            level,
            "rpc %s %s",
            self.method,
            code.name,
            extra={"method": self.method, "grpc_code": code.name, "duration_ms": round(elapsed * 1000, 3)},
        )
        reset_deadline(self._dl_token)
        reset_request_id(self._rid_token)


def _context_code(context: grpc.aio.ServicerContext) -> Any:
    try:
        return context.code()
    except (AttributeError, NotImplementedError):  # pragma: no cover  (older grpc)
        return None


class KitServerInterceptor(grpc.aio.ServerInterceptor):
    """See the module docstring. ``service`` is the server's short name ("catalog")."""

    def __init__(self, service: str, *, pass_through: Iterable[str] = PASS_THROUGH) -> None:
        self._service = service
        self._pass_through = frozenset(pass_through)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method).lstrip("/")  # type: ignore[attr-defined]
        if method.split("/", 1)[0] in self._pass_through:
            return handler
        return self._wrap(handler, method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        service = self._service
        h: Any = handler
        if not h.request_streaming and not h.response_streaming:
            inner = h.unary_unary
            if not inspect.iscoroutinefunction(inner):
                return handler
            return grpc.unary_unary_rpc_method_handler(
                _unary_response(inner, service, method), h.request_deserializer, h.response_serializer
            )
        if h.request_streaming and not h.response_streaming:
            inner = h.stream_unary
            if not inspect.iscoroutinefunction(inner):
                return handler
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(inner, service, method), h.request_deserializer, h.response_serializer
            )
        inner = h.unary_stream if not h.request_streaming else h.stream_stream
        factory = (
            grpc.unary_stream_rpc_method_handler
            if not h.request_streaming
            else grpc.stream_stream_rpc_method_handler
        )
        if inspect.isasyncgenfunction(inner):
            wrapped: Any = _streaming_response(inner, service, method)
        elif inspect.iscoroutinefunction(inner):  # writes with context.write()
            wrapped = _unary_response(inner, service, method)
        else:
            return handler
        return factory(wrapped, h.request_deserializer, h.response_serializer)


def _unary_response(
    inner: Callable[..., Awaitable[Any]], service: str, method: str
) -> Callable[..., Awaitable[Any]]:
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(service, method)
        call.begin(context)
        try:
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
            await call.fail(exc, context)
        finally:
            call.end()

    return behavior


def _streaming_response(
    inner: Callable[..., AsyncIterator[Any]], service: str, method: str
) -> Callable[..., AsyncIterator[Any]]:
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(service, method)
        call.begin(context)
        try:
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
            await call.fail(exc, context)
        finally:
            call.end()

    return behavior


__all__ = ["PASS_THROUGH", "KitServerInterceptor", "internal_message"]
