"""Writes against a real PostgreSQL: RecordRatings, UpsertMovies, and connection loss."""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import urlsplit

import pytest
from recsys_catalog.model import Movie, MovieFilter
from recsys_catalog.service import CatalogService
from recsys_catalog.store import PgStore, PoolConfig, terminate_backends
from recsys_core.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.postgres


@pytest.fixture
def svc(store: PgStore) -> CatalogService:
    return CatalogService(store)


async def test_record_new_user_and_aggregates(svc: CatalogService) -> None:
    (before,), _ = await svc.get_movies([7])
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    result = await svc.record_ratings([(70_001, 7, 4.5, t0), (70_001, 8, 2.0, None)], True)
    assert result.created_user_ids == [70_001] and result.superseded == 0
    assert [(r.movie_id, r.rating) for r in result.stored] == [(7, 4.5), (8, 2.0)]
    (after,), _ = await svc.get_movies([7])
    assert after.rating_count == before.rating_count + 1
    expected = (before.rating_mean * before.rating_count + 4.5) / after.rating_count
    assert after.rating_mean == pytest.approx(expected)
    history = await svc.get_user_history(70_001, 0)
    assert history.total == 2
    # a newer event replaces, an older one is superseded; counts do not change
    newer = await svc.record_ratings([(70_001, 7, 1.0, t0 + dt.timedelta(seconds=1))], False)
    older = await svc.record_ratings([(70_001, 7, 5.0, t0 - dt.timedelta(days=1))], False)
    assert len(newer.stored) == 1 and older.superseded == 1 and older.stored == []
    (again,), _ = await svc.get_movies([7])
    assert again.rating_count == after.rating_count
    assert again.rating_mean == pytest.approx(
        (before.rating_mean * before.rating_count + 1.0) / again.rating_count
    )
    # replaying the same event is harmless
    replay = await svc.record_ratings([(70_001, 7, 1.0, t0 + dt.timedelta(seconds=1))], False)
    assert len(replay.stored) == 1
    (same,), _ = await svc.get_movies([7])
    assert same.rating_count == again.rating_count and same.rating_mean == pytest.approx(again.rating_mean)


async def test_record_is_all_or_nothing(svc: CatalogService) -> None:
    with pytest.raises(InvalidArgument) as info:
        await svc.record_ratings([(70_002, 1, 3.0, None), (70_002, 999_999, 3.0, None)], True)
    assert info.value.field == "ratings[1].movie_id"
    users, missing = await svc.get_users([70_002])
    assert users == [] and missing == [70_002]  # the user creation was rolled back too
    with pytest.raises(NotFound):
        await svc.record_ratings([(70_003, 1, 3.0, None)], False)


async def test_upsert_movies(svc: CatalogService) -> None:
    result = await svc.upsert_movies(
        [
            Movie(50_001, "Brand New Film", 2024, ("Drama", "Noir Nouveau"), poster_url="https://img/p.jpg"),
            Movie(1, "Renamed First Movie", 1999, ("Comedy",)),
        ]
    )
    assert (result.inserted, result.updated) == (1, 1)
    (new, first), _ = await svc.get_movies([50_001, 1])
    assert new.poster_url == "https://img/p.jpg" and new.rating_count == 0
    assert first.title == "Renamed First Movie" and first.rating_count > 0  # aggregates kept
    assert "Noir Nouveau" in (await svc.describe()).genres
    hits = await svc.search_movies("brand new flim", 3)
    assert hits[0].movie.movie_id == 50_001
    # the new genre is accepted by filters right away (the vocabulary cache refreshes)
    await svc.sample_movies(1, 1, 0, MovieFilter(genres_any=("Noir Nouveau",)), [])


async def test_reads_recover_after_backends_are_terminated(
    store: PgStore, svc: CatalogService, pg_admin_dsn: str, loaded_dsn: str
) -> None:
    await svc.get_movies([1])  # the pool holds a live connection now
    database = urlsplit(loaded_dsn).path.lstrip("/")
    assert await terminate_backends(pg_admin_dsn, database) >= 1
    movies, _ = await svc.get_movies([1, 2])  # retried once on a fresh connection
    assert [m.movie_id for m in movies] == [1, 2]
    # writes are not retried, but the next one works on a fresh connection
    await terminate_backends(pg_admin_dsn, database)
    try:
        await svc.record_ratings([(70_004, 1, 3.0, None)], True)
    except Exception as exc:  # the first write may see the dead connection
        assert type(exc).__name__ == "DependencyUnavailable"
    result = await svc.record_ratings([(70_004, 2, 3.0, None)], True)
    assert len(result.stored) == 1


async def test_unreachable_database_is_dependency_unavailable() -> None:
    from recsys_core.errors import DependencyUnavailable

    store = PgStore(PoolConfig("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1))
    with pytest.raises(DependencyUnavailable):
        await store.open()
    with pytest.raises(DependencyUnavailable):
        await store.get_movies([1])


async def test_concurrent_writers_keep_aggregates_exact(svc: CatalogService) -> None:
    (before,), _ = await svc.get_movies([9])
    events = [[(71_000 + i, 9, 1.0 + (i % 9) / 2, None), (71_000 + i, 10, 3.0, None)] for i in range(12)]
    await asyncio.gather(*(svc.record_ratings(e, True) for e in events))
    (after,), _ = await svc.get_movies([9])
    assert after.rating_count == before.rating_count + 12
    added = sum(1.0 + (i % 9) / 2 for i in range(12))
    assert after.rating_mean == pytest.approx(
        (before.rating_mean * before.rating_count + added) / after.rating_count
    )


async def test_metadata_version_moves_with_metadata_not_ratings(svc: CatalogService) -> None:
    """GetMovies' metadata_version (migrations/0003): ratings leave it, metadata moves it up."""
    (first,), _, v0 = await svc.get_movies_versioned([1])
    assert v0 > 0
    await svc.record_ratings([(70_005, 1, 4.0, None)], True)
    (rated,), _, v1 = await svc.get_movies_versioned([1])
    assert rated.rating_count == first.rating_count + 1
    assert v1 == v0  # the aggregates changed, the metadata did not
    await svc.upsert_movies([Movie(3, "Third Movie, Renamed", 2001, ("Drama",))])
    found, missing, v2 = await svc.get_movies_versioned([999_999])  # nothing found: still versioned
    assert found == [] and missing == [999_999]
    assert v2 > v1
    await svc.upsert_movies([Movie(50_002, "Another New Film", 2025, ("Drama",))])
    _, _, v3 = await svc.get_movies_versioned([3])
    assert v3 > v2


async def test_ties_on_rated_at_store_one_and_report_the_rest_superseded(svc: CatalogService) -> None:
    """Issue #16 finding 8: concurrent writers of one (user, movie) with the same rated_at."""
    t = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    user = 72_000
    await svc.record_ratings([(user, 11, 3.0, t - dt.timedelta(days=1))], True)  # the user exists
    ratings = [0.5 * (1 + i % 10) for i in range(20)]
    results = await asyncio.gather(*(svc.record_ratings([(user, 12, r, t)], False) for r in ratings))
    stored = [r for res in results for r in res.stored]
    # One rating is stored: the first committed, and the writers of the same value (replays).
    assert stored and len(stored) == ratings.count(stored[0].rating)
    assert sum(res.superseded for res in results) == len(ratings) - len(stored)
    history = await svc.get_user_history(user, 0)
    (kept,) = [r for r in history.ratings if r.movie_id == 12]
    assert kept.rating == stored[0].rating and all(r.rating == kept.rating for r in stored)
    # Sequentially: another rating at the stored time is superseded, the same event is a replay.
    other = 5.0 if kept.rating != 5.0 else 4.5
    assert (await svc.record_ratings([(user, 12, other, t)], False)).superseded == 1
    assert len((await svc.record_ratings([(user, 12, kept.rating, t)], False)).stored) == 1
    # Inside one call the later event wins.
    res = await svc.record_ratings([(user, 13, 2.0, t), (user, 13, 4.0, t)], False)
    assert [r.rating for r in res.stored] == [4.0] and res.superseded == 1
