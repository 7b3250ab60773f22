"""CatalogService rules with a fake store: validation, limits, defaults, ordering."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import pytest
from recsys_catalog.model import (
    CatalogInfo,
    History,
    Movie,
    MovieFilter,
    Rating,
    SearchHit,
    UnknownMovies,
    UnknownUsers,
    UpsertResult,
    User,
)
from recsys_catalog.service import CatalogService
from recsys_core.errors import InvalidArgument, NotFound

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class FakeStore:
    def __init__(self) -> None:
        self.movies = {i: Movie(i, f"Movie {i}", 2000, ("Drama",)) for i in range(1, 11)}
        self.users = {1: User(1, "F", 30, "writer", "123")}
        self.ratings: dict[tuple[int, int], Rating] = {}
        self.calls: list[tuple[str, object]] = []

    async def get_movies(self, movie_ids: Sequence[int]) -> tuple[dict[int, Movie], int]:
        return {i: self.movies[i] for i in movie_ids if i in self.movies}, 1

    async def search_movies(self, query: str, limit: int) -> list[SearchHit]:
        self.calls.append(("search", (query, limit)))
        return []

    async def sample_movies(
        self, n: int, seed: int, min_ratings: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[Movie]:
        self.calls.append(("sample", (n, seed, min_ratings, flt, list(exclude_ids))))
        return []

    async def popular_most_rated(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[tuple[Movie, float]]:
        self.calls.append(("most_rated", k))
        return []

    async def popular_bayesian(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int], prior_weight: float, prior_mean: float
    ) -> list[tuple[Movie, float]]:
        self.calls.append(("bayes", (k, prior_weight, prior_mean)))
        return []

    async def recent_scores(self, half_life_days: float) -> tuple[list[int], list[float]]:
        self.calls.append(("recent_scores", half_life_days))
        return [1, 2], [2.0, 1.0]

    async def popular_scored(
        self,
        k: int,
        flt: MovieFilter,
        exclude_ids: Sequence[int],
        movie_ids: Sequence[int],
        scores: Sequence[float],
    ) -> list[tuple[Movie, float]]:
        self.calls.append(("scored", (k, list(movie_ids), list(scores))))
        return []

    async def global_rating_mean(self) -> float | None:
        return 3.5

    async def list_movies(self, after_id: int, page_size: int) -> list[Movie]:
        return [m for i, m in sorted(self.movies.items()) if i > after_id][:page_size]

    async def upsert_movies(self, movies: Sequence[Movie]) -> UpsertResult:
        self.calls.append(("upsert", list(movies)))
        return UpsertResult(inserted=len(movies), updated=0)

    async def genres(self) -> tuple[str, ...]:
        return ("Comedy", "Drama")

    async def get_users(self, user_ids: Sequence[int]) -> dict[int, User]:
        return {i: self.users[i] for i in user_ids if i in self.users}

    async def histories(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, History]:
        out = {}
        for i in user_ids:
            if i not in self.users:
                continue
            mine = sorted(
                (r for (u, _), r in self.ratings.items() if u == i),
                key=lambda r: (-r.rated_at.timestamp(), r.movie_id),
            )
            seen = sorted(r.movie_id for r in mine) if include_seen else []
            out[i] = History(i, mine[:limit], len(mine), seen)
        return out

    async def record_ratings(
        self, events: Sequence[Rating], create_missing_users: bool
    ) -> tuple[set[tuple[int, int]], list[int]]:
        unknown_movies = sorted({e.movie_id for e in events} - set(self.movies))
        if unknown_movies:
            raise UnknownMovies(unknown_movies)
        unknown_users = sorted({e.user_id for e in events} - set(self.users))
        if unknown_users and not create_missing_users:
            raise UnknownUsers(unknown_users)
        written = set()
        for e in events:
            old = self.ratings.get((e.user_id, e.movie_id))
            if old is None or old.rated_at <= e.rated_at:
                self.ratings[(e.user_id, e.movie_id)] = e
                written.add((e.user_id, e.movie_id))
        return written, unknown_users if create_missing_users else []

    async def describe(self) -> CatalogInfo:
        return CatalogInfo(len(self.movies), len(self.users), len(self.ratings), 1, ("Comedy", "Drama"))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def svc(store: FakeStore) -> CatalogService:
    return CatalogService(store, clock=lambda: NOW)


async def test_get_movies_order_duplicates_and_missing(svc: CatalogService) -> None:
    movies, missing = await svc.get_movies([3, 99, 1, 3, 99, 98])
    assert [m.movie_id for m in movies] == [3, 1, 3]
    assert missing == [99, 98]


@pytest.mark.parametrize("ids", [[], list(range(1, 1002)), [1, 0], [-5]])
async def test_get_movies_invalid(svc: CatalogService, ids: list[int]) -> None:
    with pytest.raises(InvalidArgument):
        await svc.get_movies(ids)


async def test_get_movies_accepts_1000(svc: CatalogService) -> None:
    movies, missing = await svc.get_movies(list(range(1, 1001)))
    assert len(movies) == 10 and len(missing) == 990


@pytest.mark.parametrize(
    ("query", "limit"), [("", 0), ("   \t", 0), ("x" * 201, 0), ("ok", -1), ("ok", 101), ("a\x00b", 0)]
)
async def test_search_invalid(svc: CatalogService, query: str, limit: int) -> None:
    with pytest.raises(InvalidArgument):
        await svc.search_movies(query, limit)


async def test_search_defaults_and_trims(svc: CatalogService, store: FakeStore) -> None:
    await svc.search_movies("  toy   story ", 0)
    assert store.calls[-1] == ("search", ("toy story", 10))


@pytest.mark.parametrize(
    ("n", "min_ratings", "flt", "exclude"),
    [
        (0, 0, MovieFilter(), []),
        (101, 0, MovieFilter(), []),
        (5, -1, MovieFilter(), []),
        (5, 0, MovieFilter(genres_any=("Nope",)), []),
        (5, 0, MovieFilter(genres_all=("Drama",) * 33), []),
        (5, 0, MovieFilter(year_min=2000, year_max=1990), []),
        (5, 0, MovieFilter(year_min=1500), []),
        (5, 0, MovieFilter(), list(range(1, 10_002))),
    ],
)
async def test_sample_invalid(
    svc: CatalogService, n: int, min_ratings: int, flt: MovieFilter, exclude: list[int]
) -> None:
    with pytest.raises(InvalidArgument):
        await svc.sample_movies(n, 1, min_ratings, flt, exclude)


async def test_sample_seed_zero_draws_a_seed(svc: CatalogService, store: FakeStore) -> None:
    await svc.sample_movies(3, 0, 0, MovieFilter(genres_any=("Drama",)), [1, 1])
    _, (n, seed, _, _, exclude) = store.calls[-1]  # type: ignore[misc]
    assert n == 3 and seed != 0 and exclude == [1]


@pytest.mark.parametrize(("k", "exclude"), [(0, []), (1001, []), (5, list(range(1, 100_002)))])
async def test_popular_invalid(svc: CatalogService, k: int, exclude: list[int]) -> None:
    with pytest.raises(InvalidArgument):
        await svc.get_popular(k, MovieFilter(), exclude)


async def test_popular_rankings(svc: CatalogService, store: FakeStore) -> None:
    await svc.get_popular(5, MovieFilter(), [])
    assert store.calls[-1] == ("bayes", (5, 25.0, 3.5))
    await svc.get_popular(5, MovieFilter(), [], ranking="most_rated")
    assert store.calls[-1] == ("most_rated", 5)
    await svc.get_popular(5, MovieFilter(), [], ranking="recent")
    # 0 = the catalog's default half-life; the scores are read once, then ranked in SQL
    assert store.calls[-2:] == [("recent_scores", 30.0), ("scored", (5, [1, 2], [2.0, 1.0]))]
    await svc.get_popular(7, MovieFilter(), [], ranking="recent", half_life_days=3.0)
    assert store.calls[-2] == ("recent_scores", 3.0)


async def test_recent_scores_are_cached_per_half_life_and_dropped_on_writes(
    svc: CatalogService, store: FakeStore
) -> None:
    def reads() -> list[object]:
        return [c[1] for c in store.calls if c[0] == "recent_scores"]

    for _ in range(3):
        await svc.get_popular(5, MovieFilter(), [], ranking="recent", half_life_days=3.0)
    await svc.get_popular(5, MovieFilter(), [], ranking="recent", half_life_days=7.0)
    assert reads() == [3.0, 7.0]
    await svc.record_ratings([(1, 2, 4.0, None)], False)
    await svc.get_popular(5, MovieFilter(), [], ranking="recent", half_life_days=3.0)
    assert reads() == [3.0, 7.0, 3.0]


@pytest.mark.parametrize("half_life", [-1.0, 0.001, 36501.0, float("nan"), float("inf")])
async def test_popular_bad_half_life(svc: CatalogService, store: FakeStore, half_life: float) -> None:
    n = len(store.calls)
    with pytest.raises(InvalidArgument, match="half_life_days"):
        await svc.get_popular(5, MovieFilter(), [], ranking="recent", half_life_days=half_life)
    with pytest.raises(InvalidArgument, match="ranking"):
        await svc.get_popular(5, MovieFilter(), [], ranking="enum value 7")
    assert len(store.calls) == n  # refused before any read


async def test_history_unknown_user_and_invalid(svc: CatalogService) -> None:
    with pytest.raises(NotFound):
        await svc.get_user_history(2, 0)
    with pytest.raises(InvalidArgument):
        await svc.get_user_history(0, 0)
    with pytest.raises(InvalidArgument):
        await svc.get_user_history(1, 10_001)
    assert (await svc.get_user_history(1, 0)).user_id == 1


async def test_histories_missing(svc: CatalogService) -> None:
    found, missing = await svc.get_user_histories([2, 1, 2], 5)
    assert [h.user_id for h in found] == [1] and missing == [2]


async def test_seen_ids_are_every_rated_movie_whatever_the_limit(
    svc: CatalogService, store: FakeStore
) -> None:
    t0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    for j, mid in enumerate(sorted(store.movies)):
        store.ratings[(1, mid)] = Rating(1, mid, 4.0, t0 + dt.timedelta(days=j))
    everything = sorted(store.movies)
    h = await svc.get_user_history(1, 1, include_seen=True)
    assert [r.movie_id for r in h.ratings] == [everything[-1]]  # the newest only
    assert h.seen_movie_ids == everything and h.total == len(everything)
    assert (await svc.get_user_history(1, 1)).seen_movie_ids == []  # not asked for: not read
    (many,), _ = await svc.get_user_histories([1], 1, include_seen=True)
    assert many.seen_movie_ids == everything


@pytest.mark.parametrize(
    "event",
    [
        (0, 1, 4.0, None),
        (1, 0, 4.0, None),
        (1, 1, 0.0, None),
        (1, 1, 5.5, None),
        (1, 1, 3.3, None),
        (1, 1, math.nan, None),
        (1, 1, math.inf, None),
        (1, 1, 4.0, NOW + dt.timedelta(minutes=6)),
    ],
)
async def test_record_invalid_event(svc: CatalogService, event: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument) as info:
        await svc.record_ratings([(1, 2, 3.0, None), event], False)
    assert info.value.field is not None and info.value.field.startswith("ratings[1].")


async def test_record_limits(svc: CatalogService) -> None:
    with pytest.raises(InvalidArgument):
        await svc.record_ratings([], False)
    with pytest.raises(InvalidArgument):
        await svc.record_ratings([(1, 1, 3.0, None)] * 1001, False)


async def test_record_unknown_movie_names_first_index(svc: CatalogService, store: FakeStore) -> None:
    with pytest.raises(InvalidArgument) as info:
        await svc.record_ratings([(1, 1, 3.0, None), (1, 77, 3.0, None)], False)
    assert info.value.field == "ratings[1].movie_id"
    assert store.ratings == {}


async def test_record_unknown_user(svc: CatalogService) -> None:
    with pytest.raises(NotFound):
        await svc.record_ratings([(5, 1, 3.0, None)], False)
    result = await svc.record_ratings([(5, 1, 3.0, None)], True)
    assert result.created_user_ids == [5]


async def test_record_newest_wins_and_superseded(svc: CatalogService) -> None:
    old = NOW - dt.timedelta(days=2)
    mid = NOW - dt.timedelta(days=1)
    result = await svc.record_ratings([(1, 1, 2.0, mid), (1, 1, 4.0, old), (1, 2, 5.0, None)], False)
    assert [(r.movie_id, r.rating) for r in result.stored] == [(1, 2.0), (2, 5.0)]
    assert result.superseded == 1
    assert result.stored[1].rated_at == NOW  # unset = now
    # an older event than the stored one is kept out; a replay is idempotent
    again = await svc.record_ratings([(1, 1, 1.0, old), (1, 1, 2.0, mid)], False)
    assert [(r.movie_id, r.rating) for r in again.stored] == [(1, 2.0)]
    assert again.superseded == 1


@pytest.mark.parametrize(
    "movie",
    [
        Movie(0, "x"),
        Movie(1, "  "),
        Movie(1, "x" * 501),
        Movie(1, "x", year=1500),
        Movie(1, "x", genres=("",)),
        Movie(1, "x", poster_url="ftp://a/b"),
        Movie(1, "x", info_url="/relative"),
        Movie(1, "nul\x00title"),
    ],
)
async def test_upsert_invalid(svc: CatalogService, movie: Movie) -> None:
    with pytest.raises(InvalidArgument):
        await svc.upsert_movies([movie])


async def test_upsert_rejects_duplicates_and_empty(svc: CatalogService) -> None:
    with pytest.raises(InvalidArgument):
        await svc.upsert_movies([])
    with pytest.raises(InvalidArgument):
        await svc.upsert_movies([Movie(1, "a"), Movie(1, "b")])


async def test_upsert_cleans(svc: CatalogService, store: FakeStore) -> None:
    await svc.upsert_movies([Movie(11, " New ", genres=("Drama", "Drama"), poster_url="https://x/p.jpg")])
    (movie,) = store.calls[-1][1]  # type: ignore[misc]
    assert movie.title == "New" and movie.genres == ("Drama",)


async def test_list_movies_pages(svc: CatalogService) -> None:
    page, after = await svc.list_movies(0, 4)
    assert [m.movie_id for m in page] == [1, 2, 3, 4] and after == 4
    page, after = await svc.list_movies(8, 4)
    assert [m.movie_id for m in page] == [9, 10] and after == 0
    with pytest.raises(InvalidArgument):
        await svc.list_movies(-1, 0)
    with pytest.raises(InvalidArgument):
        await svc.list_movies(0, 5001)
