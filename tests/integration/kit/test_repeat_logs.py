"""Repeated failures are logged rate-limited (issue #16: an upstream outage at 25 calls/s wrote
~3,100 WARNING lines a minute). Per (service, method, code) one access line per
REPEAT_LOG_INTERVAL_S, the next one saying how many were left out; tracebacks of unhandled
exceptions the same way. Successful calls keep one INFO line each."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys_core import interceptors
from recsys_core.logs import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(
        interceptors, "_REPEATS", RateLimiter(interceptors.REPEAT_LOG_INTERVAL_S, max_keys=1024, clock=fake)
    )
    return fake


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def _calls(stub: Any, n: int) -> list[grpc.StatusCode]:
    codes = []
    for _ in range(n):
        try:
            await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1]), timeout=5)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
    return codes


async def test_an_outage_writes_one_warning_per_interval(
    kit: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _, channel, toy = kit
    stub = catalog_pb2_grpc.CatalogStub(channel)
    toy.fail_times["GetMovies"] = 200
    with caplog.at_level(logging.INFO):
        assert set(await _calls(stub, 100)) == {grpc.StatusCode.UNAVAILABLE}
        (first,) = _lines(caplog, "GetMovies UNAVAILABLE")
        assert first.levelno == logging.WARNING
        clock.now += interceptors.REPEAT_LOG_INTERVAL_S + 0.1
        assert set(await _calls(stub, 100)) == {grpc.StatusCode.UNAVAILABLE}
        lines = _lines(caplog, "GetMovies UNAVAILABLE")
        assert len(lines) == 2
        assert "99 more left out" in lines[1].getMessage()
        assert lines[1].left_out == 99  # type: ignore[attr-defined]
        # Calls that succeed keep their access line each.
        assert await _calls(stub, 5) == [grpc.StatusCode.OK] * 5
        assert len(_lines(caplog, "GetMovies OK")) == 5


async def test_repeated_unhandled_exceptions_log_one_traceback_per_interval(
    kit: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _, channel, toy = kit
    stub = catalog_pb2_grpc.CatalogStub(channel)
    toy.errors["GetMovies"] = ValueError("boom")
    with caplog.at_level(logging.INFO):
        assert set(await _calls(stub, 50)) == {grpc.StatusCode.INTERNAL}
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "unhandled exception" in tracebacks[0].getMessage()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


async def test_a_flood_of_refused_calls_writes_one_line_per_interval(
    kit: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from recsys_core.errors import InvalidArgument

    _, channel, toy = kit
    stub = catalog_pb2_grpc.CatalogStub(channel)
    toy.errors["GetMovies"] = InvalidArgument("movie_ids must be positive", field="movie_ids")
    with caplog.at_level(logging.INFO):
        assert set(await _calls(stub, 50)) == {grpc.StatusCode.INVALID_ARGUMENT}
        assert len(_lines(caplog, "GetMovies INVALID_ARGUMENT")) == 1
        clock.now += interceptors.REPEAT_LOG_INTERVAL_S + 0.1
        await _calls(stub, 1)
        lines = _lines(caplog, "GetMovies INVALID_ARGUMENT")
        assert len(lines) == 2 and "49 more left out" in lines[1].getMessage()
