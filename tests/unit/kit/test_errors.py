"""Domain errors carry their gRPC code; field errors serialize a google.rpc.BadRequest."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from recsys_core import errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_codes(cls: type[errors.RecsysError], code: grpc.StatusCode) -> None:
    err = cls("msg", field="f")
    assert isinstance(err, errors.RecsysError)
    assert (err.status_code, err.message, err.field, str(err)) == (code, "msg", "f", "msg")


def test_dependency_and_upstream_messages() -> None:
    dep = errors.DependencyUnavailable("milvus", "timed out")
    assert dep.status_code == grpc.StatusCode.UNAVAILABLE
    assert (dep.message, dep.dependency, dep.field) == ("milvus unavailable: timed out", "milvus", None)
    up = errors.UpstreamError("retriever", grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
    assert (up.status_code, up.message, up.upstream) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "retriever: busy",
        "retriever",
    )


def test_status_details_round_trip() -> None:
    assert errors.status_details(errors.NotFound("x")) == ()
    ((key, blob),) = errors.status_details(errors.InvalidArgument("k must be 1..1000", field="k"))
    assert key == errors.STATUS_DETAILS_KEY and isinstance(blob, bytes)
    status = errors.status_from_metadata([("x-request-id", "r"), (key, blob)])
    assert status is not None
    assert (status.code, status.message) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], "k must be 1..1000")
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("k", "k must be 1..1000")]
