"""Test helpers: a throw-away PostgreSQL database and a catalog server with data loaded.

Used by the catalog's own tests and by other services' end-to-end tests::

    dsn, reason = await admin_dsn_or_reason()          # None + reason: skip
    name, db_dsn = await create_temp_database(dsn)
    await prepare_catalog(db_dsn, synthetic_dir)       # migrate + bulk load
    async with catalog_server(db_dsn) as (app, port):
        ...                                            # call 127.0.0.1:port
    await drop_temp_database(dsn, name)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from recsys_core.testing import test_settings

from recsys_catalog.loader import load_source
from recsys_catalog.migrate import migrate
from recsys_catalog.server import CatalogServer
from recsys_catalog.settings import CatalogSettings
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


@asynccontextmanager
async def catalog_server(
    dsn: str | None = None,
    *,
    dataset: str | Path | None = None,
    ready_timeout: float = 30.0,
    **overrides: Any,
) -> AsyncIterator[tuple[CatalogServer, int]]:
    """A catalog server on 127.0.0.1:<ephemeral>, SERVING, stopped on exit.

    ``dsn``: the database to use (None = embedded under ``overrides['data_dir']``). With
    ``dataset`` the database is migrated and the data set loaded first (see prepare_catalog).
    ``overrides``: more CatalogSettings fields (e.g. health_check_interval_s=0.2).
    """
    if dsn is not None and dataset is not None:
        await prepare_catalog(dsn, dataset)
    settings = test_settings(CatalogSettings, dsn=dsn, **overrides)
    app = CatalogServer(settings)
    port = await app.start()
    try:
        await app.wait_ready(ready_timeout)
        if dsn is None and dataset is not None:
            await load_source(app.store, dataset)
        yield app, port
    finally:
        await app.stop(0)
