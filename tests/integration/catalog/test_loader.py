"""Bulk load: one transaction, idempotent re-run, failures leave the previous state intact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from recsys_catalog.loader import load_into, movie_rows, rating_chunks, user_rows
from recsys_catalog.migrate import migrate
from recsys_catalog.store import PgStore, PoolConfig
from recsys_core.errors import FailedPrecondition, InvalidArgument
from recsys_data import Dataset, Interactions, load_dataset, synthetic

pytestmark = pytest.mark.postgres


@pytest.fixture
async def empty_store(pg_dsn: str) -> PgStore:
    s = PgStore(PoolConfig(pg_dsn, pool_min=1, pool_max=2))
    await s.open()
    yield s  # type: ignore[misc]
    await s.close()


async def snapshot(store: PgStore) -> tuple[object, ...]:
    info = await store.describe()
    movies = await store.list_movies(0, 100_000)
    histories = await store.histories(list(range(1, 200)), 10_000)
    return (
        info.movie_count,
        info.user_count,
        info.rating_count,
        info.genres,
        [(m.movie_id, m.title, m.genres, m.rating_count, round(m.rating_mean, 9)) for m in movies],
        sorted((u, [(r.movie_id, r.rating, r.rated_at) for r in h.ratings]) for u, h in histories.items()),
    )


async def schema_objects(store: PgStore) -> tuple[list[str], list[str]]:
    async def op(conn):  # type: ignore[no-untyped-def]
        indexes = await conn.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
        )
        constraints = await conn.fetch(
            "SELECT conname || ' ' || pg_get_constraintdef(oid) AS c FROM pg_constraint "
            "WHERE conrelid = 'ratings'::regclass ORDER BY conname"
        )
        return [r["indexdef"] for r in indexes], [r["c"] for r in constraints]

    return await store._read(op)


async def test_load_needs_the_schema(empty_store: PgStore, dataset: Dataset) -> None:
    with pytest.raises(FailedPrecondition, match="migrate"):
        await load_into(empty_store, dataset)


async def test_reload_is_idempotent_and_failures_roll_back(
    empty_store: PgStore, dataset: Dataset, tmp_path: Path
) -> None:
    store = empty_store
    await migrate(store)
    schema = await schema_objects(store)
    stages: list[str] = []
    report = await load_into(store, dataset, progress=lambda stage, n: stages.append(stage))
    assert report.ratings == len(dataset.interactions) and "ratings" in stages
    first = await snapshot(store)
    assert first[2] == len(dataset.interactions)
    assert await schema_objects(store) == schema  # the fast path rebuilt the same indexes and keys

    await load_into(store, dataset)  # the same data again: same state, no duplicates
    assert await snapshot(store) == first

    # a rating of an unknown movie: the whole load fails, nothing changes
    inter = dataset.interactions
    bad = dataclasses.replace(
        dataset,
        movies=[*dataset.movies[:-1], dataclasses.replace(dataset.movies[-1], title="CHANGED")],
        interactions=Interactions(
            np.append(inter.user_ids, 1),
            np.append(inter.movie_ids, 9_999_999),
            np.append(inter.ratings, np.float32(3)),
            np.append(inter.timestamps, 1_000_000_000),
        ),
    )
    with pytest.raises(InvalidArgument, match="unknown ids"):
        await load_into(store, bad)
    assert await snapshot(store) == first
    # the same through the empty-table fast path (replace): the foreign key fails at the end
    with pytest.raises(InvalidArgument, match="unknown ids"):
        await load_into(store, bad, replace=True)
    assert await snapshot(store) == first
    assert await schema_objects(store) == schema

    # a failure half-way through the COPY stream (the reader dies): nothing changes either
    def dying_chunks() -> Iterator[list[tuple[int, int, float, int]]]:
        chunks = rating_chunks(dataset, chunk=100)
        yield next(chunks)
        raise OSError("disk read error")

    with pytest.raises(Exception, match="disk read error"):
        await store.bulk_load(
            name="broken",
            sha256=None,
            movies=movie_rows(dataset),
            users=user_rows(dataset),
            ratings=dying_chunks(),
            replace=True,
        )
    assert await snapshot(store) == first

    # replace mode with a different data set swaps the content
    other_dir = synthetic.generate(
        tmp_path / "other", fmt="100k", n_users=10, n_movies=20, n_ratings=50, seed=3
    )
    other = load_dataset(other_dir)
    await load_into(store, other, replace=True)
    info = await store.describe()
    assert (info.movie_count, info.rating_count) == (len(other.movies), len(other.interactions))
    assert info.dataset_name == other.name


async def test_fast_load_rebuilds_the_schema_it_finds(empty_store: PgStore, dataset: Dataset) -> None:
    """The fast path drops and re-creates the indexes and foreign keys the migrations made, read
    from the schema itself (issue #17 item 4): a schema whose indexes changed since (one gone, one
    added) comes back as it was, not as a hand-kept copy of 0001/0002 says."""
    store = empty_store
    await migrate(store)

    async def change(conn):  # type: ignore[no-untyped-def]
        await conn.execute("DROP INDEX ratings_recent; CREATE INDEX ratings_by_rating ON ratings (rating)")

    await store._write(change)
    schema = await schema_objects(store)
    assert any("ratings_by_rating" in d for d in schema[0])
    assert not any("ratings_recent" in d for d in schema[0])
    await load_into(store, dataset, replace=True)  # replace: an empty catalog, so the fast path
    assert await schema_objects(store) == schema
    assert (await snapshot(store))[2] == len(dataset.interactions)

    async def restore(conn):  # type: ignore[no-untyped-def]
        await conn.execute(
            "DROP INDEX ratings_by_rating; CREATE INDEX ratings_recent ON ratings (rated_at) INCLUDE (movie_id)"
        )

    await store._write(restore)
