"""Test helpers: a throw-away PostgreSQL database and a catalog server with data loaded.

Used by the catalog's own tests and by other services' end-to-end tests::

    dsn, reason = await admin_dsn_or_reason()          # None + reason: skip
    name, db_dsn = await create_temp_database(dsn)
    await prepare_catalog(db_dsn, synthetic_dir)       # migrate + bulk load
    async with catalog_server(db_dsn) as (server, port):
        ...                                            # call 127.0.0.1:port
    await drop_temp_database(dsn, name)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from recsys_catalog.loader import load_source
from recsys_catalog.migrate import migrate
from recsys_catalog.store import PgStore, PoolConfig, can_connect, create_database, drop_database

TEST_DSN_ENV = "RECSYS_TEST_PG_DSN"
DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def admin_dsn_or_reason() -> tuple[str | None, str]:
    """The test server's DSN (``$RECSYS_TEST_PG_DSN`` or the local default) if it accepts
    connections, else (None, why) for ``pytest.skip``."""
    dsn = os.environ.get(TEST_DSN_ENV) or DEFAULT_TEST_DSN
    if await can_connect(dsn):
        return dsn, ""
    return None, f"PostgreSQL not reachable at {dsn} (set {TEST_DSN_ENV})"


async def create_temp_database(admin_dsn: str, prefix: str = "recsys_test") -> tuple[str, str]:
    """Create ``<prefix>_<random>``; returns (name, dsn)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    return name, await create_database(admin_dsn, name)


async def drop_temp_database(admin_dsn: str, name: str) -> None:
    await drop_database(admin_dsn, name)


async def prepare_catalog(dsn: str, dataset: str | Path | None = None, *, replace: bool = False) -> None:
    """Migrate the database and, if given, bulk-load a data set (name, zip or folder)."""
    store = PgStore(PoolConfig(dsn, pool_min=1, pool_max=2))
    await store.open()
    try:
        await migrate(store)
        if dataset is not None:
            await load_source(store, dataset, replace=replace)
    finally:
        await store.close()
