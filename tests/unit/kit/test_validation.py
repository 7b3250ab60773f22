"""The shared validation module and the log rate limiter (issue #16: bounded quotes, timestamps,
bounded log volume)."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys_core.errors import InvalidArgument
from recsys_core.logs import RateLimiter
from recsys_core.validation import (
    NANOS_MAX,
    QUOTE_MAX_CHARS,
    TIMESTAMP_MAX_SECONDS,
    TIMESTAMP_MIN_SECONDS,
    check_timestamp,
    quote,
    timestamp_to_datetime,
    timestamp_to_seconds,
)


def test_quote_keeps_short_strings_and_cuts_long_ones() -> None:
    assert quote("Drama") == "'Drama'"
    exact = "x" * QUOTE_MAX_CHARS
    assert quote(exact) == repr(exact)
    long = "y" * 7000
    q = quote(long)
    assert q == repr("y" * QUOTE_MAX_CHARS) + "…"
    assert len(q) == QUOTE_MAX_CHARS + 3


def test_timestamp_range_matches_the_protobuf_type() -> None:
    lo, hi = (
        Timestamp(seconds=TIMESTAMP_MIN_SECONDS),
        Timestamp(seconds=TIMESTAMP_MAX_SECONDS, nanos=NANOS_MAX),
    )
    assert lo.ToDatetime() == dt.datetime(1, 1, 1)
    assert hi.ToDatetime() == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    check_timestamp(lo, "t")
    check_timestamp(hi, "t")


@pytest.mark.parametrize(
    ("seconds", "nanos", "field"),
    [
        (TIMESTAMP_MAX_SECONDS + 1, 0, "ratings[3].rated_at.seconds"),
        (TIMESTAMP_MIN_SECONDS - 1, 0, "ratings[3].rated_at.seconds"),
        (2**63 - 1, 0, "ratings[3].rated_at.seconds"),
        (-(2**63), 0, "ratings[3].rated_at.seconds"),
        (0, -1, "ratings[3].rated_at.nanos"),
        (0, 1_000_000_000, "ratings[3].rated_at.nanos"),
    ],
)
def test_invalid_timestamps_name_the_field(seconds: int, nanos: int, field: str) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(InvalidArgument) as exc:
        check_timestamp(ts, "ratings[3].rated_at")
    assert exc.value.field == field
    assert exc.value.message.startswith(field + " must be")
    with pytest.raises(InvalidArgument):
        timestamp_to_datetime(ts, "ratings[3].rated_at")
    with pytest.raises(InvalidArgument):
        timestamp_to_seconds(ts, "ratings[3].rated_at")


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(0, 0), (881250949, 123456789), (-1, 999_999_999), (TIMESTAMP_MAX_SECONDS, NANOS_MAX)],
)
def test_conversions_agree_with_protobuf(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert timestamp_to_datetime(ts, "t") == ts.ToDatetime(tzinfo=dt.UTC)
    assert timestamp_to_seconds(ts, "t") == pytest.approx(seconds + nanos * 1e-9)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_once_per_key_per_interval_with_counts() -> None:
    clock = Clock()
    rl = RateLimiter(60.0, clock=clock)
    assert rl.allow("a") == 0
    assert [rl.allow("a") for _ in range(5)] == [None] * 5
    assert rl.allow("b") == 0  # another key has its own budget
    clock.now += 59.9
    assert rl.allow("a") is None
    clock.now += 0.2
    assert rl.allow("a") == 6  # the lines left out since the last one written
    assert rl.allow("a") is None


def test_rate_limiter_bounds_lines_however_many_keys() -> None:
    clock = Clock()
    rl = RateLimiter(60.0, max_keys=10, clock=clock)
    written = sum(rl.allow(f"peer-{i}") is not None for i in range(10_000))
    assert written == 11  # ten keys plus one shared overflow line
    clock.now += 61
    assert rl.allow("peer-20000") is not None  # stale keys are forgotten after the interval


def test_rate_limiter_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1.0, max_keys=0)
