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
- The movie vocabulary's rules, each defined here once and used by every service (issue #16
  item 6): one release-year range (:data:`YEAR_MIN`..:data:`YEAR_MAX`, 0 = unknown / no bound,
  :func:`check_year`), one genre-name rule (:func:`check_genre_names`) and one check against the
  catalog's genre vocabulary (:func:`check_known_genres`: an unknown genre in a filter is
  INVALID_ARGUMENT in every RPC, never an empty OK), and free text trimmed before its length is
  checked (:func:`normalize_query`).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Container, Iterable, Sequence
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


#: release years a movie (or a filter bound) may have; 0 means unknown / no bound
YEAR_MIN, YEAR_MAX = 1870, 2100
#: a genre name: 1..GENRE_MAX_CHARS ASCII characters after trimming (the retriever's VARCHAR
#: counts bytes), a letter or digit first, then letters, digits, spaces and ' & / ( ) . , + : -
#: ("Children's", "Sci-Fi", "Film-Noir"): nothing that could close a quoted string in the
#: retriever's filter expressions or split the catalog's stored lists (no quotes, backslashes,
#: control characters, GENRE_SEP)
GENRE_MAX_CHARS = 64
GENRE_NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9 '&/().,+:-]{{0,{GENRE_MAX_CHARS - 1}}}$")
#: how many genres one movie or one filter list (genres_any, genres_all) may hold (also the
#: capacity of the retriever's genres array field)
MAX_GENRES = 32
#: the separator the catalog's store joins a movie's genres with (never inside a name)
GENRE_SEP = "\x1f"
#: SearchMovies' query, counted after whitespace is collapsed and trimmed
QUERY_MAX_CHARS = 200
#: how many similar movies (graph neighbours) a new movie may name: the catalog's AddMovies and
#: the embedder's EmbedNewMovie (whose service.py still holds its own copy, equal to this)
MAX_NEIGHBOURS = 50
#: the rating scale (MovieLens): RATING_MIN..RATING_MAX in steps of RATING_STEP; 0 in a signal
#: means "no rating given" where a request allows that
RATING_MIN, RATING_MAX, RATING_STEP = 0.5, 5.0, 0.5


#: a model version as the retriever names its collections: 1..64 characters of [A-Za-z0-9_]
VECTOR_VERSION_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def vector_version(model_version: str) -> str:
    """The retriever version that holds the item vectors of embedder model ``model_version``
    (an artifact version such as ``20261123T101500Z-ml-100k``): every other character becomes
    ``_``, at most 64 kept. The publisher writes vectors under it and the gateway searches it, so
    a query vector only ever meets item vectors of its own model."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in model_version)[:64]


def in_rating_range(value: float) -> bool:
    """A finite ``value`` within RATING_MIN..RATING_MAX (any step: model inputs)."""
    return math.isfinite(value) and RATING_MIN <= value <= RATING_MAX


def is_rating(value: float) -> bool:
    """A rating that may be stored: in range and on the RATING_STEP grid."""
    steps = value / RATING_STEP if math.isfinite(value) else 0.5
    return in_rating_range(value) and math.isclose(steps, round(steps), abs_tol=1e-6)


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


def check_year(year: int, field: str) -> int:
    """``year`` unless it is outside YEAR_MIN..YEAR_MAX and not 0 (InvalidArgument naming ``field``)."""
    if year != 0 and not YEAR_MIN <= year <= YEAR_MAX:
        raise InvalidArgument(f"{field} must be {YEAR_MIN}..{YEAR_MAX} or 0, got {year}", field=field)
    return year


def check_year_range(year_min: int, year_max: int, field: str = "filter") -> None:
    """Both bounds valid (0 = open) and ``year_min`` not after ``year_max``."""
    check_year(year_min, f"{field}.year_min")
    check_year(year_max, f"{field}.year_max")
    if year_min and year_max and year_min > year_max:
        raise InvalidArgument(
            f"{field}.year_min ({year_min}) is after {field}.year_max ({year_max})", field=f"{field}.year_min"
        )


def check_genre_names(genres: Sequence[str], field: str, limit: int = MAX_GENRES) -> tuple[str, ...]:
    """The genre names trimmed, each matching GENRE_NAME_RE, at most ``limit`` of them;
    duplicates dropped (first kept)."""
    if len(genres) > limit:
        raise InvalidArgument(f"{field}: at most {limit} genres, got {len(genres)}", field=field)
    names: dict[str, None] = {}
    for g in genres:
        name = g.strip()
        if not GENRE_NAME_RE.match(name):
            raise InvalidArgument(
                f"{field}: invalid genre {quote(g)} (1..{GENRE_MAX_CHARS} letters, digits, spaces or "
                "' & / ( ) . , + : - after trimming, a letter or digit first)",
                field=field,
            )
        names[name] = None
    return tuple(names)


def check_known_genres(genres: Iterable[str], known: Container[str], field: str) -> None:
    """InvalidArgument naming the first of ``genres`` not in the catalog's vocabulary ``known``."""
    for g in genres:
        if g.strip() not in known:
            raise InvalidArgument(
                f"{field}: unknown genre {quote(g)} (ListGenres gives the catalog's genres)", field=field
            )


def normalize_query(query: str, field: str = "query", max_chars: int = QUERY_MAX_CHARS) -> str:
    """Free text with runs of whitespace collapsed to one space and trimmed, then checked: not
    empty, at most ``max_chars`` characters, no NUL."""
    text = " ".join(query.split())
    if not text:
        raise InvalidArgument(f"{field} must not be empty or blank", field=field)
    if len(text) > max_chars:
        raise InvalidArgument(
            f"{field}: at most {max_chars} characters after trimming, got {len(text)}", field=field
        )
    if "\x00" in text:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)
    return text


__all__ = [
    "ELLIPSIS",
    "GENRE_MAX_CHARS",
    "GENRE_NAME_RE",
    "GENRE_SEP",
    "MAX_GENRES",
    "MAX_NEIGHBOURS",
    "NANOS_MAX",
    "QUERY_MAX_CHARS",
    "QUOTE_MAX_CHARS",
    "TIMESTAMP_MAX_SECONDS",
    "TIMESTAMP_MIN_SECONDS",
    "YEAR_MAX",
    "YEAR_MIN",
    "check_genre_names",
    "check_known_genres",
    "check_timestamp",
    "check_year",
    "check_year_range",
    "normalize_query",
    "quote",
    "timestamp_to_datetime",
    "timestamp_to_seconds",
]
