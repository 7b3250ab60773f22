"""Hostile input against the real gateway server (issue #16, findings 3-5): undecodable bodies on
every RPC, invalid timestamps and oversized genres all get a short INVALID_ARGUMENT, answered
before any upstream is asked (the upstreams here are dead ports)."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
METHODS = sorted(GATEWAY.methods_by_name)
KEY = (("x-api-key", "k-123"),)
HUGE_GENRE = "G" * 7000
BAD_TIMESTAMPS = [
    (2**63 - 1, 0, "seconds"),
    (-(2**63), 0, "seconds"),
    (0, -1, "nanos"),
    (0, 10**9, "nanos"),
]


async def _raw(channel: grpc.aio.Channel, method: str, body: bytes) -> grpc.aio.AioRpcError:
    call = channel.unary_unary(
        f"/{GATEWAY.full_name}/{method}", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(body, timeout=5, metadata=KEY)
    return exc.value


@pytest.mark.parametrize("method", METHODS)
async def test_every_rpc_refuses_undecodable_bodies(
    gateway: grpc.aio.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    input_type = GATEWAY.methods_by_name[method].input_type.full_name
    with caplog.at_level(logging.INFO):
        # random bytes, a truncated length-delimited field, a tag varint longer than 10 bytes
        for body in (bytes(range(256)), b"\x0a\xff\x01", b"\xff" * 11):
            err = await _raw(gateway, method, body)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, body, err)
            details = err.details() or ""
            assert details.startswith(f"request body is not a valid {input_type}"), details
            assert len(details) < 300
    bad_lines = [r for r in caplog.records if "undecodable request body" in r.getMessage()]
    assert len(bad_lines) == 1 and bad_lines[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(("seconds", "nanos", "part"), BAD_TIMESTAMPS)
async def test_record_feedback_refuses_invalid_rated_at(
    gateway: grpc.aio.Channel, seconds: int, nanos: int, part: str
) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    good = common_pb2.Rating(user_id=1, movie_id=2, rating=4, rated_at=Timestamp(seconds=881250949))
    bad = common_pb2.Rating(user_id=1, movie_id=3, rating=4, rated_at=Timestamp(seconds=seconds, nanos=nanos))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.RecordFeedback(
            gateway_pb2.RecordFeedbackRequest(ratings=[good, bad]), timeout=5, metadata=KEY
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    assert (exc.value.details() or "").startswith(f"ratings[1].rated_at.{part} must be")


@pytest.mark.parametrize(("seconds", "nanos", "part"), BAD_TIMESTAMPS)
async def test_recommend_refuses_invalid_liked_rated_at(
    gateway: grpc.aio.Channel, seconds: int, nanos: int, part: str
) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    liked = [
        common_pb2.RatedMovie(movie_id=1),
        common_pb2.RatedMovie(movie_id=50, rated_at=Timestamp(seconds=seconds, nanos=nanos)),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recommend(gateway_pb2.RecommendRequest(liked=liked), timeout=5, metadata=KEY)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    assert (exc.value.details() or "").startswith(f"liked[1].rated_at.{part} must be")


@pytest.mark.parametrize("method", ["Recommend", "SimilarMovies", "SampleMovies"])
async def test_a_huge_genre_gets_a_short_invalid_argument(gateway: grpc.aio.Channel, method: str) -> None:
    stub = gateway_pb2_grpc.GatewayStub(gateway)
    flt = common_pb2.MovieFilter(genres_any=[HUGE_GENRE])
    requests = {
        "Recommend": gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1)], filter=flt),
        "SimilarMovies": gateway_pb2.SimilarMoviesRequest(movie_id=1, filter=flt),
        "SampleMovies": gateway_pb2.SampleMoviesRequest(filter=flt),
    }
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await getattr(stub, method)(requests[method], timeout=5, metadata=KEY)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    details = exc.value.details() or ""
    assert len(details) < 200, details
    assert "G" * 64 + "'…" in details


async def test_invalid_utf8_in_a_string_field_is_invalid_argument(gateway: grpc.aio.Channel) -> None:
    good = gateway_pb2.RecommendRequest(
        liked=[common_pb2.RatedMovie(movie_id=1)], filter=common_pb2.MovieFilter(genres_any=["Drama"])
    ).SerializeToString()
    err = await _raw(gateway, "Recommend", good.replace(b"Drama", b"Dr\xffma"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    details = err.details() or ""
    assert details.startswith("request body is not a valid recsys.gateway.v1.RecommendRequest"), details
    assert "UTF-8" in details


async def test_request_size_limit_is_the_largest_legitimate_request(gateway: grpc.aio.Channel) -> None:
    """Issue #16 item 7: the gateway receives at most MAX_REQUEST_BYTES (256 KiB, from its largest
    legitimate request); a larger body is RESOURCE_EXHAUSTED before any handler runs, while the
    largest legitimate one passes (here it then meets the dead upstream: UNAVAILABLE)."""
    from recsys_gateway.service import MAX_SAMPLE_EXCLUDE
    from recsys_gateway.settings import MAX_REQUEST_BYTES

    # the largest legitimate SampleMovies (tests/unit/gateway/test_request_sizes.py): 94 KB
    big = 2**63 - 1
    sample = gateway_pb2.SampleMoviesRequest(
        n=100, exclude_ids=[big - i for i in range(MAX_SAMPLE_EXCLUDE)]
    ).SerializeToString()
    assert len(sample) > 90_000
    err = await _raw(gateway, "SampleMovies", sample)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    over = gateway_pb2.SampleMoviesRequest(exclude_ids=[2**62] * (MAX_REQUEST_BYTES // 9)).SerializeToString()
    assert len(over) > MAX_REQUEST_BYTES
    err = await _raw(gateway, "SampleMovies", over)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert str(MAX_REQUEST_BYTES) in (err.details() or ""), err.details()
