"""PostgreSQL store: the only package that imports asyncpg.

``PgStore`` is what the server, the CLI, the loader and the tests use; it is put together
from one class per job:

- ``pool.py``: ``PgPool``, the pool's lifecycle, readiness (``refuse()`` / ``accept()``),
  reads retried once on a lost connection, writes in one transaction, driver errors mapped to
  domain errors (``DependencyUnavailable("postgresql", ...)``, ``DeadlineExceeded``, ...);
- ``queries.py``: ``RpcQueries``, the reads and writes behind the RPCs (service.py);
- ``bulk.py``: ``MigrationsAndLoads``, the schema version, migrations (migrate.py) and the
  bulk load (loader.py);
- ``admin.py``: database administration for tests and benchmarks (recsys_catalog.testing);
- ``sql/``: every statement, one ``<name>.sql`` file each, loaded by name at import
  (``sql.statement``); a missing or empty file fails the import.
"""

from __future__ import annotations

from recsys_catalog.store import sql
from recsys_catalog.store.admin import (
    can_connect,
    create_database,
    drop_database,
    terminate_backends,
    with_database,
)
from recsys_catalog.store.bulk import ADVISORY_LOCK_ID, BULK_TIMEOUT_S, Migration, MigrationsAndLoads
from recsys_catalog.store.pool import CONNECTION_ERRORS, DEPENDENCY, SCHEMA_ERRORS, PgPool, PoolConfig
from recsys_catalog.store.queries import RpcQueries

__all__ = [
    "ADVISORY_LOCK_ID",
    "BULK_TIMEOUT_S",
    "CONNECTION_ERRORS",
    "DEPENDENCY",
    "SCHEMA_ERRORS",
    "Migration",
    "PgStore",
    "PoolConfig",
    "can_connect",
    "create_database",
    "drop_database",
    "terminate_backends",
    "with_database",
]


class PgStore(RpcQueries, MigrationsAndLoads, PgPool):
    """The catalog's PostgreSQL access. ``open()`` creates the pool; every method may raise
    ``DependencyUnavailable`` while the database is unreachable and recovers by itself when it
    returns (broken connections are dropped by the pool; a read is retried once)."""


# every module above has loaded its statements: a .sql file none of them loads is a leftover
sql.check_all_loaded()
