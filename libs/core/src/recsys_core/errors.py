"""Domain errors: stores and services raise these, never gRPC status codes.

The kit's server interceptor (``recsys_core.interceptors``) is the one place
that turns them into a gRPC status (``context.abort``); an error with a
``field`` also carries a ``google.rpc.BadRequest`` field violation in the
``grpc-status-details-bin`` trailer, which clients read with
:func:`bad_request_fields`.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

#: trailer holding the serialized ``google.rpc.Status`` (the gRPC convention)
STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = tuple[tuple[str, str | bytes], ...]


class RecsysError(Exception):
    """Base of the domain errors; ``message`` is safe to show to the caller."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def status_code(self) -> grpc.StatusCode:
        return self.code

    def __repr__(self) -> str:
        extra = f", field={self.field!r}" if self.field else ""
        return f"{type(self).__name__}({self.message!r}{extra})"


class InvalidArgument(RecsysError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RecsysError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RecsysError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RecsysError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RecsysError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(RecsysError):
    code = grpc.StatusCode.UNAUTHENTICATED


class DeadlineExceeded(RecsysError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class DependencyUnavailable(RecsysError):
    """A dependency (PostgreSQL, Milvus, Triton, ...) cannot be reached: UNAVAILABLE."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} unavailable: {message}")
        self.dependency = dependency
        self.detail = message


class UpstreamError(RecsysError):
    """An upstream gRPC call failed (gateway): keeps the upstream's code and names the upstream."""

    def __init__(
        self, upstream: str, code: grpc.StatusCode, message: str, *, field: str | None = None
    ) -> None:
        super().__init__(f"{upstream}: {message}", field=field)
        self.upstream = upstream
        self.upstream_code = code
        self.detail = message

    @property
    def status_code(self) -> grpc.StatusCode:
        return self.upstream_code

    @classmethod
    def from_rpc_error(cls, upstream: str, exc: grpc.aio.AioRpcError) -> UpstreamError:
        """Wrap a failed call; a BadRequest field violation from upstream is kept."""
        fields = bad_request_fields(exc)
        field = next(iter(fields), None)
        return cls(upstream, exc.code(), exc.details() or exc.code().name, field=field)


# -- status <-> wire ------------------------------------------------------------------------------


def status_details(err: RecsysError) -> Metadata:
    """Trailing metadata with a ``google.rpc.Status`` (+ BadRequest) for an error with a field."""
    if not err.field:
        return ()
    violation = error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.message)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status = status_pb2.Status(code=err.status_code.value[0], message=err.message, details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def status_from_metadata(metadata: Sequence[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` carried in trailing metadata, or None."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def bad_request_fields(exc: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """``{field: description}`` from a failed call's BadRequest details (empty when none)."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    status = status_from_metadata(trailing)
    out: dict[str, str] = {}
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                out[v.field] = v.description
    return out


__all__ = [
    "STATUS_DETAILS_KEY",
    "AlreadyExists",
    "DeadlineExceeded",
    "DependencyUnavailable",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "RecsysError",
    "ResourceExhausted",
    "Unauthenticated",
    "UpstreamError",
    "bad_request_fields",
    "status_details",
    "status_from_metadata",
]
