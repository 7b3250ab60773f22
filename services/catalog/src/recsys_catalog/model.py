"""Domain types of the catalog: plain frozen dataclasses, no grpc and no driver."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: int
    title: str
    year: int | None = None
    genres: tuple[str, ...] = ()
    imdb_id: str | None = None
    tmdb_id: int | None = None
    poster_url: str | None = None
    info_url: str | None = None
    rating_count: int = 0
    rating_mean: float = 0.0
    # Listed by AddMovies with an inductive vector (the model was trained without it).
    added_since_training: bool = False


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    gender: str | None = None  # "F" | "M" | None
    age: int | None = None
    occupation: str | None = None
    zip_code: str | None = None


@dataclass(frozen=True, slots=True)
class Rating:
    user_id: int
    movie_id: int
    rating: float
    rated_at: dt.datetime  # timezone-aware (UTC)


@dataclass(frozen=True, slots=True)
class MovieFilter:
    genres_any: tuple[str, ...] = ()
    genres_all: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    @property
    def genres(self) -> tuple[str, ...]:
        return self.genres_any + self.genres_all


@dataclass(frozen=True, slots=True)
class SearchHit:
    movie: Movie
    similarity: float


@dataclass(frozen=True, slots=True)
class History:
    user_id: int
    ratings: list[Rating]  # newest first, at most the asked limit
    total: int
    # Every movie the user rated, ascending (all ``total``), when asked for; else empty.
    seen_movie_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ColumnHistory:
    """A History as three parallel columns, newest first (GetUserHistory with ``columns``): the
    same events in the same order, read without one object per event."""

    user_id: int
    movie_ids: list[int]
    ratings: list[float]
    rated_at_us: list[int]  # microseconds since the Unix epoch
    total: int
    seen_movie_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordResult:
    stored: list[Rating]
    superseded: int
    created_user_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int
    updated: int


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    movie_count: int
    user_count: int
    rating_count: int
    schema_version: int
    genres: tuple[str, ...]
    dataset_name: str | None = None
    dataset_sha256: str | None = None
    loaded_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class LoadReport:
    dataset_name: str
    movies: int
    users: int
    ratings: int
    seconds: float
    replaced: bool


class UnknownMovies(Exception):
    """Raised by a store inside a write transaction (rolled back) when movies are unknown."""

    def __init__(self, movie_ids: list[int]) -> None:
        super().__init__(f"unknown movie ids: {movie_ids[:10]}")
        self.movie_ids = movie_ids


class UnknownUsers(Exception):
    """Raised by a store inside a write transaction (rolled back) when users are unknown."""

    def __init__(self, user_ids: list[int]) -> None:
        super().__init__(f"unknown user ids: {user_ids[:10]}")
        self.user_ids = user_ids


@dataclass(frozen=True, slots=True)
class PendingMovie:
    """A movie staged by AddMovies (not listed yet) with the ids of movies like it and the
    revision its staging got (0 = not staged yet)."""

    movie: Movie
    similar_ids: tuple[int, ...] = ()
    revision: int = 0


@dataclass(frozen=True, slots=True)
class AddedMovie:
    movie_id: int
    inserted: bool
    inductive: bool
    unknown_similar_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AddResult:
    movies: list[AddedMovie]
    model_version: str
    vector_version: str
    pending: int


@dataclass(frozen=True, slots=True)
class AddedToRefresh:
    """An added movie whose vector is stale (RefreshAddedMovies): the movie (its rating count
    as read) and the similar ids it was added with."""

    movie: Movie
    similar_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RefreshedMovie:
    movie_id: int
    inductive: bool
    rating_count: int
    neighbour_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RefreshResult:
    movies: list[RefreshedMovie]
    model_version: str
    vector_version: str
    remaining: int
