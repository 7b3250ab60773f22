"""Shared fixtures for the catalog's integration tests: a real PostgreSQL.

The server is ``RECSYS_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``
when it accepts connections). Each test module gets its own fresh database
(``recsys_test_<random>``), dropped afterwards, so parallel runs never collide. Tests that need
the server skip with the reason when it is unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from recsys_catalog.embedded import EmbeddedPostgres
from recsys_catalog.store import PgStore, PoolConfig, can_connect
from recsys_catalog.testing import (
    admin_dsn_or_reason,
    create_temp_database,
    drop_temp_database,
    prepare_catalog,
)
from recsys_data import Dataset, load_dataset, synthetic

N_USERS, N_MOVIES, N_RATINGS = 60, 120, 1500


def initialised_embedded_dir(data_dir: Path) -> Path:
    """``data_dir`` initialised by one start/stop of the embedded PostgreSQL (so a test's own
    start is quick); the test skips with the reason when it cannot start or accept connections."""
    try:
        pg = EmbeddedPostgres(data_dir)
        dsn = pg.start_sync()
        ok = asyncio.run(can_connect(dsn))
        pg.stop_sync()
    except Exception as exc:
        pytest.skip(f"embedded PostgreSQL cannot start here: {exc}")
    if not ok:
        pytest.skip("embedded PostgreSQL started but does not accept connections")
    return data_dir


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    dsn, reason = asyncio.run(admin_dsn_or_reason())
    if dsn is None:
        pytest.skip(reason)
    return dsn


@pytest.fixture(scope="module")
def pg_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """An empty database of this test module."""
    name, dsn = asyncio.run(create_temp_database(pg_admin_dsn))
    yield dsn
    asyncio.run(drop_temp_database(pg_admin_dsn, name))


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic MovieLens-format data set (ml-latest layout, half stars)."""
    out = tmp_path_factory.mktemp("catalog-data") / "synthetic-latest"
    return synthetic.generate(
        out, fmt="latest", n_users=N_USERS, n_movies=N_MOVIES, n_ratings=N_RATINGS, seed=7
    )


@pytest.fixture(scope="session")
def dataset(dataset_dir: Path) -> Dataset:
    return load_dataset(dataset_dir)


@pytest.fixture(scope="module")
def loaded_dsn(pg_dsn: str, dataset_dir: Path) -> str:
    """This module's database, migrated and loaded with ``dataset``."""
    asyncio.run(prepare_catalog(pg_dsn, dataset_dir))
    return pg_dsn


@pytest.fixture
async def store(loaded_dsn: str) -> PgStore:
    s = PgStore(PoolConfig(loaded_dsn, pool_min=1, pool_max=4))
    await s.open()
    yield s  # type: ignore[misc]
    await s.close()
