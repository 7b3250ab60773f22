"""One normalized model for every MovieLens format (ml-100k, ml-1m/10m, ml-latest/20m/25m/32m).

Decisions (see also ``docs/occupations.md``):

- ``Movie.title`` is the MovieLens title minus the trailing year: "Matrix, The (1999)" becomes
  "Matrix, The" (the article is NOT moved back; MovieLens' own spelling is kept so titles stay
  searchable against the source files). Titles without a year keep their text and ``year`` comes
  from ml-100k's release date, else ``None``.
- ``Movie.genres`` uses each format's spelling ("Children's" in ml-100k/1m, "Children" in
  ml-latest); "unknown" and "(no genres listed)" give an empty tuple and are not in the vocabulary.
- ``User.age`` is the age in years for ml-100k and the bracket code for ml-1m (1 = "under 18",
  18, 25, 35, 45, 50, 56 = "56+": each is the bracket's start age).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DataFormatError(ValueError):
    """A malformed data file: names the file and the (1-based) line."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file} line {line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class DatasetNotFound(FileNotFoundError):
    """A data set name or path that resolves to nothing."""


HOLDOUT_MARKER = "recsys-holdout.json"  # written next to the ratings by ``recsys data holdout``


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    imdb_id: str | None = None
    tmdb_id: int | None = None


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    gender: str | None
    age: int | None
    occupation: str | None
    zip_code: str | None


def _empty(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass(frozen=True)
class Interactions:
    """Columnar ratings: four arrays of the same length, row order as in the file."""

    user_ids: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    movie_ids: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    ratings: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    timestamps: np.ndarray = field(default_factory=lambda: _empty(np.int64))

    def __post_init__(self) -> None:
        n = len(self.user_ids)
        if not (len(self.movie_ids) == len(self.ratings) == len(self.timestamps) == n):
            raise ValueError("Interactions columns must have the same length")

    def __len__(self) -> int:
        return len(self.user_ids)

    def take(self, index: np.ndarray) -> Interactions:
        """A subset (boolean mask or integer index), e.g. ``inter.take(train_mask)``."""
        return Interactions(
            self.user_ids[index], self.movie_ids[index], self.ratings[index], self.timestamps[index]
        )


def _iso(ts: int) -> str:
    return _dt.datetime.fromtimestamp(int(ts), tz=_dt.UTC).isoformat()


@dataclass(frozen=True)
class Dataset:
    name: str
    format: str  # "100k" | "1m" | "latest"
    movies: list[Movie]
    users: list[User]
    interactions: Interactions
    source: str
    sha256: str | None
    genres: tuple[str, ...]
    skipped_rows: int = 0
    # the parsed ``recsys-holdout.json`` when this data set was written by ``recsys data
    # holdout`` (see ``recsys_data.holdout``), else None
    holdout_of: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        inter = self.interactions
        n = len(inter)
        out: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "source": self.source,
            "sha256": self.sha256,
            "movies": len(self.movies),
            "users": len(self.users),
            "ratings": n,
            "genres": len(self.genres),
            "skipped_rows": self.skipped_rows,
        }
        if n:
            n_users = int(np.unique(inter.user_ids).size)
            n_items = int(np.unique(inter.movie_ids).size)
            values, counts = np.unique(inter.ratings, return_counts=True)
            out.update(
                rating_users=n_users,
                rated_movies=n_items,
                rating_min=float(values[0]),
                rating_max=float(values[-1]),
                rating_mean=round(float(inter.ratings.astype(np.float64).mean()), 4),
                rating_counts={f"{float(v):g}": int(c) for v, c in zip(values, counts, strict=True)},
                time_min=_iso(int(inter.timestamps.min())),
                time_max=_iso(int(inter.timestamps.max())),
                density=round(n / (n_users * n_items), 6),
                ratings_per_user_median=float(np.median(np.unique(inter.user_ids, return_counts=True)[1])),
            )
        return out
