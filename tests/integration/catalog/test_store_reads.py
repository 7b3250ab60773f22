"""Reads through CatalogService + PgStore against a real PostgreSQL (loaded synthetic data)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from recsys_catalog.migrate import REQUIRED_SCHEMA_VERSION, migrate
from recsys_catalog.model import MovieFilter
from recsys_catalog.service import CatalogService
from recsys_catalog.store import PgStore
from recsys_core.errors import InvalidArgument, NotFound
from recsys_data import Dataset

pytestmark = pytest.mark.postgres


@pytest.fixture
def svc(store: PgStore) -> CatalogService:
    return CatalogService(store)


async def test_migrate_is_idempotent(store: PgStore) -> None:
    assert await migrate(store) == []
    assert await store.schema_version() == REQUIRED_SCHEMA_VERSION


async def test_describe_matches_dataset(svc: CatalogService, dataset: Dataset) -> None:
    info = await svc.describe()
    assert info.movie_count == len(dataset.movies)
    assert info.user_count == len(np.unique(dataset.interactions.user_ids))
    assert info.rating_count == len(dataset.interactions)
    assert set(info.genres) == set(dataset.genres)
    assert info.dataset_name == dataset.name and info.loaded_at is not None


async def test_get_movies_order_missing_and_aggregates(svc: CatalogService, dataset: Dataset) -> None:
    counts = collections.Counter(dataset.interactions.movie_ids.tolist())
    sums: dict[int, float] = collections.defaultdict(float)
    for m, r in zip(
        dataset.interactions.movie_ids.tolist(), dataset.interactions.ratings.tolist(), strict=True
    ):
        sums[m] += r
    ids = [5, 10_000, 3, 5]
    movies, missing = await svc.get_movies(ids)
    assert [m.movie_id for m in movies] == [5, 3, 5]
    assert missing == [10_000]
    by_id = {m.movie_id: m for m in dataset.movies}
    for m in movies:
        assert m.title == by_id[m.movie_id].title
        assert m.genres == by_id[m.movie_id].genres
        assert m.rating_count == counts[m.movie_id]
        if counts[m.movie_id]:
            assert m.rating_mean == pytest.approx(sums[m.movie_id] / counts[m.movie_id])


async def test_search_tolerates_case_accents_and_typos(svc: CatalogService, dataset: Dataset) -> None:
    target = next(m for m in dataset.movies if "é" in m.title or "ñ" in m.title or "ö" in m.title)
    folded = target.title.upper().replace("É", "E").replace("Ñ", "N").replace("Ö", "O").replace(",", "")
    hits = await svc.search_movies(folded, 5)
    assert hits and hits[0].movie.movie_id == target.movie_id
    assert 0 < hits[0].similarity <= 1
    # a typo: drop one letter of the first word
    words = target.title.split()
    typo = " ".join([words[0][:-1] + words[0][-1:] * 0, *words[1:]])
    hits = await svc.search_movies(typo, 10)
    assert target.movie_id in [h.movie.movie_id for h in hits]
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


async def test_search_exact_title_scores_one(svc: CatalogService, dataset: Dataset) -> None:
    target = dataset.movies[10]
    hits = await svc.search_movies(target.title, 3)
    assert hits[0].movie.movie_id == target.movie_id
    assert hits[0].similarity == pytest.approx(1.0)


async def test_search_no_match_is_empty(svc: CatalogService) -> None:
    assert await svc.search_movies("qqqzzzxxx", 5) == []


async def test_sample_reproducible_and_filtered(svc: CatalogService) -> None:
    a = await svc.sample_movies(10, 42, 0, MovieFilter(), [])
    b = await svc.sample_movies(10, 42, 0, MovieFilter(), [])
    c = await svc.sample_movies(10, 43, 0, MovieFilter(), [])
    assert [m.movie_id for m in a] == [m.movie_id for m in b]
    assert len({m.movie_id for m in a}) == 10
    assert [m.movie_id for m in a] != [m.movie_id for m in c]
    popular = await svc.sample_movies(20, 1, 15, MovieFilter(), [])
    assert popular and all(m.rating_count >= 15 for m in popular)
    flt = MovieFilter(genres_any=("Drama", "Comedy"), year_min=1950, year_max=2000)
    some = await svc.sample_movies(20, 1, 0, flt, [a[0].movie_id])
    assert all(set(m.genres) & {"Drama", "Comedy"} and 1950 <= (m.year or 0) <= 2000 for m in some)
    assert a[0].movie_id not in [m.movie_id for m in some]
    everything = await svc.sample_movies(100, 5, 10_000, MovieFilter(), [])
    assert everything == []  # fewer than n match: fewer returned


async def test_popular_most_rated_and_bayesian(svc: CatalogService, dataset: Dataset) -> None:
    counts = collections.Counter(dataset.interactions.movie_ids.tolist())
    ranked = await svc.get_popular(5, MovieFilter(), [], ranking="most_rated")
    assert [s for _, s in ranked] == sorted((c for c in counts.values()), reverse=True)[:5]
    top = ranked[0][0].movie_id
    without = await svc.get_popular(5, MovieFilter(), [top], ranking="most_rated")
    assert top not in [m.movie_id for m, _ in without]
    bayes = await svc.get_popular(10, MovieFilter(), [])
    scores = [s for _, s in bayes]
    assert scores == sorted(scores, reverse=True) and all(0.5 <= s <= 5 for s in scores)
    drama = await svc.get_popular(10, MovieFilter(genres_all=("Drama",)), [])
    assert all("Drama" in m.genres for m, _ in drama)


@pytest.mark.parametrize("half_life_days", [0.5, 30.0, 3650.0])
async def test_popular_recent_matches_the_formula(
    svc: CatalogService, dataset: Dataset, half_life_days: float
) -> None:
    """RECENT = sum of 0.5^(age / half-life) per movie, age from the newest rating, exact."""
    inter = dataset.interactions
    newest: dict[tuple[int, int], int] = {}  # the catalog keeps each (user, movie)'s newest event
    for u, m, t in zip(
        inter.user_ids.tolist(), inter.movie_ids.tolist(), inter.timestamps.tolist(), strict=True
    ):
        newest[(u, m)] = max(t, newest.get((u, m), t))
    t_max = max(newest.values())
    expected: dict[int, float] = collections.defaultdict(float)
    for (_, m), t in newest.items():
        age = (t_max - t) / (half_life_days * 86400.0)
        expected[m] += 0.5**age if age <= 40 else 0.0  # the 40-half-life window
    ranked = await svc.get_popular(20, MovieFilter(), [], ranking="recent", half_life_days=half_life_days)
    assert len(ranked) == 20
    got = {m.movie_id: s for m, s in ranked}
    assert got == pytest.approx({m: expected[m] for m in got}, rel=1e-9, abs=1e-12)
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    best = sorted(expected.values(), reverse=True)[:20]
    assert scores == pytest.approx(best, rel=1e-9, abs=1e-12)
    top = ranked[0][0].movie_id
    drama = await svc.get_popular(
        5, MovieFilter(genres_all=("Drama",)), [top], ranking="recent", half_life_days=half_life_days
    )
    assert drama and all("Drama" in m.genres and m.movie_id != top for m, _ in drama)


async def test_users_and_history(svc: CatalogService, dataset: Dataset) -> None:
    inter = dataset.interactions
    uid = int(inter.user_ids[0])
    users, missing = await svc.get_users([uid, 999_999])
    assert [u.user_id for u in users] == [uid] and missing == [999_999]
    mask = inter.user_ids == uid
    history = await svc.get_user_history(uid, 3)
    assert history.total == int(mask.sum())
    assert len(history.ratings) == min(3, history.total)
    times = [r.rated_at for r in history.ratings]
    assert times == sorted(times, reverse=True)
    assert int(history.ratings[0].rated_at.timestamp()) == int(inter.timestamps[mask].max())
    found, missing = await svc.get_user_histories([uid, 999_999, uid], 0)
    assert [h.user_id for h in found] == [uid, uid] and missing == [999_999]
    assert found[0].total == history.total and len(found[0].ratings) == history.total
    assert history.seen_movie_ids == [] and found[0].seen_movie_ids == []  # not asked for


async def test_seen_ids_are_every_rated_movie_whatever_the_limit(
    svc: CatalogService, dataset: Dataset
) -> None:
    inter = dataset.interactions
    counts = collections.Counter(int(u) for u in inter.user_ids)
    heavy, light = counts.most_common()[0][0], counts.most_common()[-1][0]
    one = await svc.get_user_history(heavy, 1, include_seen=True)
    rated = sorted({int(m) for m in inter.movie_ids[inter.user_ids == heavy]})
    assert len(one.ratings) == 1 and one.total == len(rated) > 1
    assert one.seen_movie_ids == rated  # all of them, ascending, though only one event came back
    found, _ = await svc.get_user_histories([light, heavy], 1, include_seen=True)
    assert [h.user_id for h in found] == [light, heavy]
    assert found[0].seen_movie_ids == sorted({int(m) for m in inter.movie_ids[inter.user_ids == light]})
    assert found[1].seen_movie_ids == rated


async def test_history_columns_are_the_history_rows_as_columns(svc: CatalogService, dataset: Dataset) -> None:
    """The one-statement columns read (GetUserHistory with ``columns``) returns exactly the
    events, order, totals and seen ids of the row read, whatever the limit."""
    import datetime as dt

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    users = [*sorted({int(u) for u in dataset.interactions.user_ids})[:60], 999_999]
    for limit in (1, 7, 0):
        for seen in (False, True):
            rows, missing = await svc.get_user_histories(users, limit, include_seen=seen)
            cols, missing_c = await svc.get_user_histories_columns(users, limit, include_seen=seen)
            assert missing_c == missing == [999_999]
            assert [c.user_id for c in cols] == [h.user_id for h in rows]
            for h, c in zip(rows, cols, strict=True):
                assert c.total == h.total and c.seen_movie_ids == h.seen_movie_ids
                assert c.movie_ids == [r.movie_id for r in h.ratings]
                assert c.ratings == [r.rating for r in h.ratings]
                assert c.rated_at_us == [
                    (r.rated_at - epoch) // dt.timedelta(microseconds=1) for r in h.ratings
                ]
    one = await svc.get_user_history_columns(users[0], 3, include_seen=True)
    assert one.movie_ids == cols[0].movie_ids[:3] and one.seen_movie_ids == cols[0].seen_movie_ids
    with pytest.raises(NotFound):
        await svc.get_user_history_columns(999_999, 3)
    with pytest.raises(InvalidArgument):
        await svc.get_user_history_columns(0, 3)


async def test_list_movies_pages_through_everything(svc: CatalogService, dataset: Dataset) -> None:
    seen: list[int] = []
    after = 0
    while True:
        page, after = await svc.list_movies(after, 50)
        seen.extend(m.movie_id for m in page)
        if after == 0:
            break
    assert seen == sorted(m.movie_id for m in dataset.movies)


@pytest.mark.parametrize("prior_weight", [0.0, 5.0, 25.0, 500.0])
async def test_bayesian_pruning_is_exact(store: PgStore, prior_weight: float) -> None:
    """The index-pruned top-k equals a full scan, for several k, filters and priors."""
    from recsys_catalog.store.queries import SQL_POPULAR_BAYES, _filter_args

    mean = await store.global_rating_mean()
    assert mean is not None
    for k, flt, exclude in [
        (1, MovieFilter(), []),
        (5, MovieFilter(), [1, 2, 3]),
        (20, MovieFilter(genres_any=("Drama",)), []),
        (50, MovieFilter(year_min=1960), []),
        (1000, MovieFilter(), []),
    ]:
        fast = await store.popular_bayesian(k, flt, exclude, prior_weight, mean)

        async def full(conn, k=k, flt=flt, exclude=exclude):  # type: ignore[no-untyped-def]
            args = [*_filter_args(flt, exclude), k, prior_weight, mean, 1]
            return [(r["movie_id"], float(r["score"])) for r in await conn.fetch(SQL_POPULAR_BAYES, *args)]

        expected = await store._read(full)
        assert [(m.movie_id, s) for m, s in fast] == expected
