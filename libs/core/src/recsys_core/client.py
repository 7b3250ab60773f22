"""Channels for calling recsys services (the gateway, offline jobs).

``open_channel`` builds one long-lived ``grpc.aio`` channel per downstream with:

- a service config whose ``retryPolicy`` (``retryableStatusCodes: ["UNAVAILABLE"]``)
  covers only the listed idempotent methods of ``service``;
- keepalive pings while calls are open (the kit's servers accept them);
- a client interceptor that forwards the current request id as ``x-request-id``
  and, for a call made without a timeout inside a server call that has a
  deadline, sets the timeout to :func:`remaining_timeout` (deadline propagation);
- while tracing is on when the channel is opened (``recsys_core.tracing``), a
  :class:`TracingClientInterceptor`: a CLIENT span per call, a child of the current
  span, its W3C trace context sent as ``traceparent``/``tracestate`` metadata.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from . import tracing
from .logs import get_request_id

REQUEST_ID_KEY = "x-request-id"
#: seconds kept back from the caller's deadline for our own reply
DEFAULT_MARGIN_S = 0.05

# Absolute deadline (time.monotonic()) of the server call being handled; set by the server interceptor.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("recsys_deadline", default=None)


def set_deadline(time_remaining: float | None) -> contextvars.Token[float | None]:
    """Record the current server call's deadline from ``context.time_remaining()`` (None: no deadline)."""
    value = None if time_remaining is None else time.monotonic() + time_remaining
    return _deadline.set(value)


def current_deadline() -> float | None:
    """The current server call's absolute deadline (``time.monotonic()``), None = none."""
    return _deadline.get()


def set_deadline_at(deadline: float | None) -> contextvars.Token[float | None]:
    """Set the absolute deadline (``time.monotonic()``; None = none) downstream calls inherit."""
    return _deadline.set(deadline)


def reset_deadline(token: contextvars.Token[float | None]) -> None:
    try:
        _deadline.reset(token)
    except ValueError:
        pass


def remaining_timeout(default: float, *, margin: float = DEFAULT_MARGIN_S) -> float:
    """Timeout for a downstream call: the current call's remaining time less ``margin``, at most ``default``.

    ``default`` when there is no server call deadline. Never negative: 0 means no
    time is left (the caller should fail with DEADLINE_EXCEEDED rather than call).
    """
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic() - margin))


def _method_name(name: str) -> str:
    # "GetMovies", "recsys.catalog.v1.Catalog/GetMovies", "/x.Y/GetMovies", "x.Y.GetMovies" -> "GetMovies"
    return name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


def service_config(
    service: str,
    idempotent_methods: Sequence[str] = (),
    *,
    max_attempts: int = 3,
    initial_backoff_s: float = 0.05,
    max_backoff_s: float = 1.0,
) -> dict[str, Any]:
    """The gRPC service config ``open_channel`` uses (a dict; JSON-encode it for the channel option)."""
    if not 1 <= max_attempts <= 5:
        raise ValueError("max_attempts must be 1..5 (gRPC caps retries at 5 attempts)")
    methods = sorted({_method_name(m) for m in idempotent_methods if m})
    # round_robin: with a dns:/// target (headless Service) calls spread over every pod
    # instead of pick_first's single connection.
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": []}
    if methods and max_attempts > 1:
        config["methodConfig"].append(
            {
                "name": [{"service": service, "method": m} for m in methods],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": f"{initial_backoff_s}s",
                    "maxBackoff": f"{max_backoff_s}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )
    return config


def channel_options(
    service: str,
    idempotent_methods: Sequence[str] = (),
    *,
    max_attempts: int = 3,
    max_message_bytes: int = 4 * 1024 * 1024,
) -> list[tuple[str, Any]]:
    return [
        (
            "grpc.service_config",
            json.dumps(service_config(service, idempotent_methods, max_attempts=max_attempts)),
        ),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
    ]


class _Details:
    """Rebuild call details with the request id header and a propagated timeout."""

    @staticmethod
    def amend(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata()
        for key, value in details.metadata or ():
            metadata.add(key, value)
        rid = get_request_id()
        if rid and REQUEST_ID_KEY not in metadata:
            metadata.add(REQUEST_ID_KEY, rid)
        timeout = details.timeout
        if timeout is None and _deadline.get() is not None:
            timeout = remaining_timeout(float("inf"))
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class RequestIdClientInterceptor:
    """Forwards the current request id as ``x-request-id`` (and the deadline, see the module
    docstring), on every call type.

    grpc.aio files an interceptor under the first of the four interceptor types it is an
    instance of, so one object serves one call type: :func:`request_id_interceptors` gives one
    per type (unary/stream requests x responses).
    """


class _RidUnaryUnary(RequestIdClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_Details.amend(client_call_details), request)


class _RidUnaryStream(RequestIdClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_Details.amend(client_call_details), request)


class _RidStreamUnary(RequestIdClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(_Details.amend(client_call_details), request_iterator)


class _RidStreamStream(RequestIdClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await continuation(_Details.amend(client_call_details), request_iterator)


def request_id_interceptors() -> list[RequestIdClientInterceptor]:
    """The request-id/deadline client interceptors, one per call type."""
    return [_RidUnaryUnary(), _RidUnaryStream(), _RidStreamUnary(), _RidStreamStream()]


def _with_metadata(details: grpc.aio.ClientCallDetails, extra: Any) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata()
    for key, value in details.metadata or ():
        metadata.add(key, value)
    for key, value in extra.items():
        metadata[key] = value
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


def _method_of(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return (method.decode() if isinstance(method, bytes) else str(method)).lstrip("/")


async def _code_of(call: Any) -> grpc.StatusCode:
    try:
        code = await call.code()
    except asyncio.CancelledError:
        return grpc.StatusCode.CANCELLED
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


class TracingClientInterceptor:
    """A CLIENT span per call (child of the current span) whose context travels as W3C
    ``traceparent`` metadata; ``open_channel`` adds it while tracing is on (recsys_core.tracing).

    grpc.aio files an interceptor under the first of the four interceptor types it is an
    instance of, so :func:`tracing_interceptors` gives one object per call type.
    """

    def _start(self, details: grpc.aio.ClientCallDetails) -> tuple[Any, grpc.aio.ClientCallDetails]:
        tracer = tracing.tracer()
        if tracer is None:
            return None, details
        from opentelemetry import trace

        method = _method_of(details)
        attributes = tracing.rpc_attributes(method)
        span = tracer.start_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes)
        return span, _with_metadata(details, tracing.inject(span))

    async def _unary_response(self, continuation: Any, details: Any, arg: Any) -> Any:
        span, details = self._start(details)
        if span is None:
            return await continuation(details, arg)
        try:
            call = await continuation(details, arg)
            await call  # the response (or the error) stays in the call for the caller
        except grpc.aio.AioRpcError as exc:
            tracing.finish(span, exc.code(), client=True)
            raise
        except asyncio.CancelledError:
            tracing.finish(span, grpc.StatusCode.CANCELLED, client=True)
            raise
        except BaseException:
            tracing.finish(span, grpc.StatusCode.UNKNOWN, client=True)
            raise
        tracing.finish(span, grpc.StatusCode.OK, client=True)
        return call

    async def _stream_response(self, continuation: Any, details: Any, arg: Any) -> Any:
        span, details = self._start(details)
        if span is None:
            return await continuation(details, arg)
        try:
            call = await continuation(details, arg)
        except BaseException:
            tracing.finish(span, grpc.StatusCode.CANCELLED, client=True)
            raise

        async def end() -> None:
            tracing.finish(span, await _code_of(call), client=True)

        def done(_: Any) -> None:
            task = asyncio.get_running_loop().create_task(end())
            _ENDING.add(task)
            task.add_done_callback(_ENDING.discard)

        call.add_done_callback(done)
        return call


#: tasks ending the CLIENT spans of streamed calls (held until done)
_ENDING: set[asyncio.Task[None]] = set()


class _TraceUnaryUnary(TracingClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await self._unary_response(continuation, client_call_details, request)


class _TraceUnaryStream(TracingClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await self._stream_response(continuation, client_call_details, request)


class _TraceStreamUnary(TracingClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await self._unary_response(continuation, client_call_details, request_iterator)


class _TraceStreamStream(TracingClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await self._stream_response(continuation, client_call_details, request_iterator)


def tracing_interceptors() -> list[TracingClientInterceptor]:
    """The tracing client interceptors, one per call type (unary/stream requests x responses)."""
    return [_TraceUnaryUnary(), _TraceUnaryStream(), _TraceStreamUnary(), _TraceStreamStream()]


@dataclass(frozen=True)
class ClientTLS:
    """TLS for a client channel, from PEM files.

    ``ca_file``: CA bundle the server's certificate must chain to (None = the system roots).
    ``cert_file`` + ``key_file``: this client's certificate, for servers that require mutual
    TLS (both or neither). ``server_name``: the name to verify in the server's certificate
    when it differs from the target's host (e.g. a dns:/// target behind a shared cert).
    """

    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("ClientTLS: cert_file and key_file must be given together")

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | str | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


def open_channel(
    target: str,
    *,
    service: str,
    idempotent_methods: Sequence[str] = (),
    max_attempts: int = 3,
    max_message_bytes: int = 4 * 1024 * 1024,
    tls: ClientTLS | None = None,
    request_id_interceptor: bool = True,
) -> grpc.aio.Channel:
    """A long-lived channel to ``target`` for ``service`` (its full name from the descriptor,
    e.g. recsys.catalog.v1.Catalog).

    ``idempotent_methods`` are method names of ``service`` ("GetMovies"; a full
    "pkg.Svc/Method" works too): only they are retried, on UNAVAILABLE, up to
    ``max_attempts`` attempts in all. ``tls``: a TLS (or, with a client certificate,
    mutual TLS) channel; None = plaintext. Close it with ``await channel.close()``.
    ``request_id_interceptor=False``: no client interceptor; the caller passes the request id
    (``REQUEST_ID_KEY`` metadata) and the timeout on every call itself (cheaper per call).
    While tracing is on (``recsys_core.tracing``, checked here, once) the channel has a
    :class:`TracingClientInterceptor` either way.
    """
    options = channel_options(
        service, idempotent_methods, max_attempts=max_attempts, max_message_bytes=max_message_bytes
    )
    chain: list[Any] = request_id_interceptors() if request_id_interceptor else []
    if tracing.enabled():
        chain.extend(tracing_interceptors())
    interceptors = chain or None
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(target, tls.credentials(), options=options, interceptors=interceptors)


__all__ = [
    "REQUEST_ID_KEY",
    "ClientTLS",
    "RequestIdClientInterceptor",
    "TracingClientInterceptor",
    "channel_options",
    "current_deadline",
    "open_channel",
    "remaining_timeout",
    "request_id_interceptors",
    "reset_deadline",
    "service_config",
    "set_deadline",
    "set_deadline_at",
    "tracing_interceptors",
]
