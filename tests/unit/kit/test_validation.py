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


def test_one_year_range_and_one_genre_rule() -> None:
    from recsys_core.validation import (
        YEAR_MAX,
        YEAR_MIN,
        check_genre_names,
        check_known_genres,
        check_year,
        check_year_range,
        normalize_query,
    )

    assert (YEAR_MIN, YEAR_MAX) == (1870, 2100)
    assert check_year(0, "y") == 0 and check_year(1870, "y") == 1870 and check_year(2100, "y") == 2100
    for bad in (1869, 2101, -1):
        with pytest.raises(InvalidArgument, match=r"must be 1870\.\.2100 or 0"):
            check_year(bad, "filter.year_min")
    with pytest.raises(InvalidArgument, match="is after"):
        check_year_range(2000, 1990)
    check_year_range(0, 1990)
    assert check_genre_names([" Sci-Fi ", "Children's", "Sci-Fi"], "g") == ("Sci-Fi", "Children's")
    for bad in ("", "  ", 'a"b', "a\\b", "a\x1fb", "a\x00b", "-x", "é", "x" * 65):
        with pytest.raises(InvalidArgument) as exc:
            check_genre_names([bad], "filter.genres_any")
        assert exc.value.field == "filter.genres_any" and len(str(exc.value)) < 300
    with pytest.raises(InvalidArgument, match="at most 32 genres"):
        check_genre_names(["A"] * 33, "g")
    check_known_genres(["Drama", " Drama "], {"Drama"}, "g")
    with pytest.raises(InvalidArgument, match="unknown genre 'Dramaa'"):
        check_known_genres(["Drama", "Dramaa"], {"Drama"}, "g")
    assert normalize_query("  a \t b  ") == "a b"
    assert normalize_query(" " * 50 + "x" * 200 + " " * 50) == "x" * 200
    for bad, why in (("   ", "empty"), ("x" * 201, "at most 200"), ("a\x00b", "NUL")):
        with pytest.raises(InvalidArgument, match=why):
            normalize_query(bad)


def test_the_rating_scale_is_defined_once() -> None:
    """issue #17: catalog, gateway, embedder and web check ratings with the kit's one scale;
    no other source file spells the 0.5..5.0 bounds again."""
    import re
    from pathlib import Path

    from recsys_core import validation as v

    assert (v.RATING_MIN, v.RATING_MAX, v.RATING_STEP) == (0.5, 5.0, 0.5)
    assert [v.is_rating(x) for x in (0.5, 3.0, 4.5, 5.0)] == [True] * 4
    assert [v.is_rating(x) for x in (0.0, 0.25, 3.3, 5.5, float("nan"), float("inf"))] == [False] * 6
    assert v.in_rating_range(3.3) and not v.in_rating_range(5.01) and not v.in_rating_range(float("nan"))
    root = Path(__file__).resolve().parents[3]
    home = Path(v.__file__).resolve()
    spelt = re.compile(r"0\.5\s*<=|<=\s*5\.0\b|<\s*0\.5\)|>\s*5\.0\)|RATING_(MIN|MAX)\s*=")
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for base in ("libs", "services", "gateway", "web")
        for p in (root / base).rglob("*.py")
        if p.resolve() != home and "/recsys/" not in str(p)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if spelt.search(line)
    ]
    assert not offenders, f"the rating scale spelt again (use recsys_core.validation): {offenders}"
