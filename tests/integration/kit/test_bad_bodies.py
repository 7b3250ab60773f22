"""Undecodable request bodies through the kit server: INVALID_ARGUMENT, short message, rate-limited
WARNING without traceback (issue #16, finding 3). Raw bytes go through generic calls."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recsys.catalog.v1 import catalog_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.testing import health_status

GET_MOVIES = "/recsys.catalog.v1.Catalog/GetMovies"
SEARCH = "/recsys.catalog.v1.Catalog/SearchMovies"  # not implemented by the toy: a sync base method
UPSERT = "/recsys.retriever.v1.Retriever/Upsert"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

RANDOM = bytes(range(256))
TRUNCATED = catalog_pb2.GetMoviesRequest(movie_ids=[1, 2, 300000]).SerializeToString()[:-1]
# SearchMoviesRequest.query (field 1, a string) holding bytes that are not UTF-8
BAD_UTF8 = catalog_pb2.SearchMoviesRequest(query="toy story").SerializeToString().replace(b"toy", b"t\xffy")


async def _raw(channel: grpc.aio.Channel, method: str, body: bytes) -> grpc.aio.AioRpcError:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(body, timeout=5)
    return exc.value


def _bad_body_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "undecodable request body" in r.getMessage()]


@pytest.mark.parametrize("body", [RANDOM, TRUNCATED, b"\x0a\x05ab"], ids=["random", "truncated", "short"])
async def test_undecodable_unary_body_is_invalid_argument(
    kit: Any, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    _, channel, toy = kit
    with caplog.at_level(logging.INFO):
        err = await _raw(channel, GET_MOVIES, body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    details = err.details() or ""
    assert details.startswith("request body is not a valid recsys.catalog.v1.GetMoviesRequest"), details
    assert "wire format" in details
    assert len(details) < 300
    assert toy.calls["GetMovies"] == 0  # the servicer never saw it
    # one WARNING, no traceback, no ERROR (grpc's own "Unexpected ..." line included)
    (line,) = _bad_body_lines(caplog)
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_invalid_utf8_in_a_string_field_is_invalid_argument(kit: Any) -> None:
    _, channel, _ = kit
    err = await _raw(channel, SEARCH, BAD_UTF8)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    details = err.details() or ""
    assert "recsys.catalog.v1.SearchMoviesRequest" in details and "UTF-8" in details


async def test_streamed_request_with_a_bad_message_is_invalid_argument(kit: Any) -> None:
    _, channel, toy = kit
    call = channel.stream_unary(UPSERT, request_serializer=None, response_deserializer=None)
    good = retriever_pb2.UpsertRequest(version="v1").SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(iter([good, RANDOM]), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "recsys.retriever.v1.UpsertRequest" in (exc.value.details() or "")
    assert toy.calls["Upsert"] == 1  # refused mid-stream, at the message that did not parse


async def test_health_check_with_a_bad_body_is_invalid_argument(kit: Any) -> None:
    _, channel, _ = kit
    err = await _raw(channel, HEALTH_CHECK, RANDOM)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "grpc.health.v1.HealthCheckRequest" in (err.details() or "")
    assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_good_bodies_still_work(kit: Any) -> None:
    _, channel, _ = kit
    call = channel.unary_unary(GET_MOVIES, request_serializer=None, response_deserializer=None)
    raw = await call(catalog_pb2.GetMoviesRequest(movie_ids=[1, 2000]).SerializeToString(), timeout=5)
    resp = catalog_pb2.GetMoviesResponse.FromString(raw)
    assert [m.movie_id for m in resp.movies] == [1] and list(resp.missing_ids) == [2000]


async def test_repeated_bad_bodies_log_once_per_client_per_interval(
    kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, channel, _ = kit
    with caplog.at_level(logging.INFO):
        for i in range(50):
            err = await _raw(channel, GET_MOVIES if i % 2 else HEALTH_CHECK, RANDOM)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        # a second connection from the same host shares the budget
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as other:
            err = await _raw(other, GET_MOVIES, TRUNCATED)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(_bad_body_lines(caplog)) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # no access line per bad call either: the log grows by one line, not 51
    assert not [r for r in caplog.records if getattr(r, "grpc_code", None) == "INVALID_ARGUMENT"][1:]


async def test_reflection_stream_with_a_bad_message_is_invalid_argument(kit: Any) -> None:
    _, channel, _ = kit
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        async for _ in call(iter([RANDOM]), timeout=5):
            pass
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "grpc.reflection.v1alpha.ServerReflectionRequest" in (exc.value.details() or "")
