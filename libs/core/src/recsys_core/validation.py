"""Input checks shared by every service: bounded quoting of caller input, protobuf timestamps.

- :func:`quote` is the one way an error message echoes a caller's string: at most
  :data:`QUOTE_MAX_CHARS` characters (as ``repr``), then ``…``. A 7,000-character genre would
  otherwise make the status message larger than a default client accepts in metadata, and the
  caller would see RESOURCE_EXHAUSTED instead of the reason.
- :func:`check_timestamp` validates a ``google.protobuf.Timestamp`` that came from a caller:
  ``seconds`` within the type's documented range (0001-01-01T00:00:00Z ..
  9999-12-31T23:59:59Z, which is also what Python's ``datetime`` and PostgreSQL's
  ``timestamptz`` hold) and ``nanos`` 0..999,999,999. It raises
  :class:`~recsys_core.errors.InvalidArgument` naming the field (``ratings[3].rated_at.nanos``).
  Services add their own rules on top (the catalog refuses times in the future).
"""

from __future__ import annotations

import datetime as _dt
from typing import Protocol

from .errors import InvalidArgument

#: how many characters of a caller's string an error message quotes
QUOTE_MAX_CHARS = 64
ELLIPSIS = "…"

#: google.protobuf.Timestamp's valid range (timestamp.proto): 0001-01-01T00:00:00Z ..
#: 9999-12-31T23:59:59.999999999Z
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
NANOS_MAX = 999_999_999


def quote(value: str, limit: int = QUOTE_MAX_CHARS) -> str:
    """``repr`` of ``value``'s first ``limit`` characters, then ``…`` when it was longer."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + ELLIPSIS


class TimestampLike(Protocol):
    """What :func:`check_timestamp` reads (a ``google.protobuf.Timestamp``)."""

    @property
    def seconds(self) -> int: ...
    @property
    def nanos(self) -> int: ...


def check_timestamp(ts: TimestampLike, field: str) -> None:
    """Raise InvalidArgument (``field`` + ``.seconds``/``.nanos``) unless ``ts`` is a valid Timestamp."""
    if not TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS:
        raise InvalidArgument(
            f"{field}.seconds must be {TIMESTAMP_MIN_SECONDS}..{TIMESTAMP_MAX_SECONDS} "
            f"(0001-01-01..9999-12-31 UTC), got {ts.seconds}",
            field=f"{field}.seconds",
        )
    if not 0 <= ts.nanos <= NANOS_MAX:
        raise InvalidArgument(f"{field}.nanos must be 0..{NANOS_MAX}, got {ts.nanos}", field=f"{field}.nanos")


def timestamp_to_datetime(ts: TimestampLike, field: str) -> _dt.datetime:
    """A checked Timestamp as an aware UTC datetime (microseconds; the nanoseconds below are dropped)."""
    check_timestamp(ts, field)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return epoch + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def timestamp_to_seconds(ts: TimestampLike, field: str) -> float:
    """A checked Timestamp as float seconds since the epoch."""
    check_timestamp(ts, field)
    return ts.seconds + ts.nanos * 1e-9


__all__ = [
    "ELLIPSIS",
    "NANOS_MAX",
    "QUOTE_MAX_CHARS",
    "TIMESTAMP_MAX_SECONDS",
    "TIMESTAMP_MIN_SECONDS",
    "check_timestamp",
    "quote",
    "timestamp_to_datetime",
    "timestamp_to_seconds",
]
