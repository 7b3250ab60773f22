"""Server reflection that also resolves method (and field) symbols.

ghz and grpcurl resolve a call by asking ``FileContainingSymbol`` for the
method's full name ("recsys.gateway.v1.Gateway.Recommend"). grpcio-reflection
asks the descriptor pool, which only knows services, messages, enums and
extensions, so the stock servicer answers "Symbol not found". This servicer
falls back to the file of the enclosing service (or message) when the last
name component is one of its methods (or fields, enum values).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer as _AsyncReflectionServicer

SERVICE_NAME: str = reflection.SERVICE_NAME


def find_file_for_member(pool: Any, symbol: str) -> FileDescriptor | None:
    """The file declaring ``symbol`` when it names a service method, a message field or an enum value."""
    parent, _, member = symbol.rpartition(".")
    if not parent or not member:
        return None
    try:
        svc = pool.FindServiceByName(parent)
    except KeyError:
        svc = None
    if svc is not None:
        return svc.file if member in svc.methods_by_name else None
    try:
        msg = pool.FindMessageTypeByName(parent)
    except KeyError:
        msg = None
    if msg is not None:
        known = (
            member in msg.fields_by_name
            or member in msg.nested_types_by_name
            or member in msg.enum_types_by_name
        )
        return msg.file if known else None
    try:
        enum = pool.FindEnumTypeByName(parent)
    except KeyError:
        return None
    return enum.file if member in enum.values_by_name else None


def _collect(fd: FileDescriptor, seen: dict[str, FileDescriptor]) -> None:
    seen[fd.name] = fd
    for dep in fd.dependencies:
        if dep.name not in seen:
            _collect(dep, seen)


def file_descriptor_response(
    fd: FileDescriptor, original_request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """The file and its transitive dependencies, serialized (as the stock servicer answers)."""
    files: dict[str, FileDescriptor] = {}
    _collect(fd, files)
    blobs = []
    for f in files.values():
        proto = descriptor_pb2.FileDescriptorProto()
        f.CopyToProto(proto)
        blobs.append(proto.SerializeToString())
    return reflection_pb2.ServerReflectionResponse(
        file_descriptor_response=reflection_pb2.FileDescriptorResponse(file_descriptor_proto=blobs),
        original_request=original_request,
    )


class ReflectionServicer(_AsyncReflectionServicer):
    """grpcio-reflection's aio servicer plus method-symbol resolution."""

    def __init__(self, service_names: Iterable[str], pool: Any = None) -> None:
        super().__init__(service_names, pool=pool)
        self._recsys_pool = pool if pool is not None else descriptor_pool.Default()

    def _file_containing_symbol(self, request, fully_qualified_name):
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if response.HasField("error_response"):
            fd = find_file_for_member(self._recsys_pool, fully_qualified_name)
            if fd is not None:
                return file_descriptor_response(fd, request)
        return response


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server, pool: Any = None) -> list[str]:
    """Register reflection for ``service_names`` (+ reflection itself) on ``server``; returns the names."""
    names = sorted({*service_names, SERVICE_NAME})
    from grpc_reflection.v1alpha import reflection_pb2_grpc

    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(ReflectionServicer(names, pool=pool), server)
    return names


__all__ = [
    "SERVICE_NAME",
    "ReflectionServicer",
    "enable_reflection",
    "file_descriptor_response",
    "find_file_for_member",
]
