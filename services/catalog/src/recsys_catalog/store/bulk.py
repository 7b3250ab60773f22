"""Migrations and the bulk load (``migrate.py``, ``loader.py``): the schema's jobs.

Both run under one advisory lock (they never interleave) with a long client-side timeout and no
server statement timeout. The bulk load runs in ONE transaction: COPY into temporary tables,
then either a merge (upserts) or, into an empty catalog, the fresh path, which drops and
re-creates the secondary indexes and foreign keys as read from the migrated schema.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from recsys_core.errors import FailedPrecondition, InvalidArgument

from recsys_catalog.model import LoadReport
from recsys_catalog.store.pool import CONNECTION_ERRORS, PgPool, _unavailable
from recsys_catalog.store.sql import statement

log = logging.getLogger("recsys_catalog.store")  # the name these lines had before the split

# Client-side timeout of migrations and bulk-load statements (the pool's command_timeout is
# sized for RPCs; these run without a server statement_timeout).
BULK_TIMEOUT_S = 6 * 3600.0

# One lock id for "migrating or bulk-loading the catalog": the two never interleave.
ADVISORY_LOCK_ID = 0x7265_6373_7973  # "recsys"

# --- migrations
SQL_MIGRATIONS_EXIST = statement("migrations_table_exists")
SQL_SCHEMA_VERSION = statement("schema_version")
SQL_MIGRATIONS_TABLE = statement("create_migrations_table")
SQL_RECORD_MIGRATION = statement("record_migration")
SQL_SESSION_NO_TIMEOUT = statement("session_no_statement_timeout")
SQL_ADVISORY_LOCK = statement("advisory_lock")
SQL_ADVISORY_UNLOCK = statement("advisory_unlock")

# --- bulk load: both paths
SQL_LOCAL_NO_TIMEOUT = statement("local_no_statement_timeout")
SQL_ADVISORY_XACT_LOCK = statement("advisory_xact_lock")
SQL_LOAD_TEMP_TABLES = (
    statement("load_temp_movies"),
    statement("load_temp_users"),
    statement("load_temp_ratings"),
)
SQL_ANALYZE_LOAD_TABLES = statement("load_analyze_temp")
SQL_LOAD_REPLACE = statement("load_truncate")
SQL_CATALOG_EMPTY = statement("catalog_is_empty")
SQL_LOAD_USERS = statement("load_merge_users")
SQL_LOAD_RATING_USERS = statement("load_rating_users")
SQL_LOAD_GENRES = statement("load_genres")
SQL_LOAD_RECORD = statement("load_record")
SQL_ANALYZE_CATALOG = statement("analyze_catalog")
# --- bulk load: the fresh path (into an empty catalog)
SQL_FRESH_WORK_MEM = statement("local_maintenance_work_mem")
SQL_FRESH_DEFS = statement("fresh_defs")
SQL_FRESH_RATINGS = statement("load_fresh_ratings")
SQL_FRESH_MOVIES = statement("load_fresh_movies")
# --- bulk load: the merge path
SQL_LOAD_MOVIES = statement("load_merge_movies")
SQL_LOAD_RATINGS = statement("load_merge_ratings")
SQL_LOAD_AGGREGATES = statement("load_recount_aggregates")
SQL_CLEAN_GIN = statement("load_clean_gin")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _fresh_drop_restore(defs: list[tuple[str, str, str]]) -> tuple[str, str]:
    """The DROP and the re-CREATE statements of :data:`SQL_FRESH_DEFS`' rows (sql/fresh_defs.sql).

    Built here, not a file: the index and constraint names and definitions are data, read from
    the migrated schema at load time (names quoted; definitions as pg_get_indexdef and
    pg_get_constraintdef print them), never from input.
    """
    fkeys = [(n, d) for k, n, d in defs if k == "fkey"]
    indexes = [(n, d) for k, n, d in defs if k == "index"]
    drop = [f'DROP INDEX "{n}";' for n, _ in indexes]
    restore = [f"{d};" for _, d in indexes]
    if fkeys:
        drop.insert(0, "ALTER TABLE ratings " + ", ".join(f'DROP CONSTRAINT "{n}"' for n, _ in fkeys) + ";")
        added = ", ".join(f'ADD CONSTRAINT "{n}" {d}' for n, d in fkeys)
        restore.append(f"ALTER TABLE ratings {added};")
    return "\n".join(drop), "\n".join(restore)


class MigrationsAndLoads(PgPool):
    """The schema version, migrations and the bulk load (part of ``PgStore``)."""

    # --- schema ------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            exists = await conn.fetchval(SQL_MIGRATIONS_EXIST)
            if not exists:
                return 0
            return int(await conn.fetchval(SQL_SCHEMA_VERSION))

        return await self._read(op)

    async def apply_migrations(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply the migrations newer than the database's version, each in its own
        transaction, under an advisory lock (concurrent runs wait). Returns the versions
        applied (empty when up to date)."""
        applied: list[int] = []
        try:
            async with self._conn() as conn:
                await conn.execute(SQL_SESSION_NO_TIMEOUT)
                await conn.execute(SQL_ADVISORY_LOCK, ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S)
                try:
                    await conn.execute(SQL_MIGRATIONS_TABLE, timeout=BULK_TIMEOUT_S)
                    current = int(await conn.fetchval(SQL_SCHEMA_VERSION, timeout=BULK_TIMEOUT_S))
                    for mig in sorted(migrations, key=lambda m: m.version):
                        if mig.version <= current:
                            continue
                        async with conn.transaction():
                            await conn.execute(mig.sql, timeout=BULK_TIMEOUT_S)
                            await conn.execute(SQL_RECORD_MIGRATION, mig.version, mig.name)
                        applied.append(mig.version)
                        log.info("applied migration %04d_%s", mig.version, mig.name)
                finally:
                    await conn.execute(SQL_ADVISORY_UNLOCK, ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S)
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        return applied

    # --- bulk load ---------------------------------------------------------------------------

    async def bulk_load(
        self,
        *,
        name: str,
        sha256: str | None,
        movies: Sequence[tuple[Any, ...]],
        users: Sequence[tuple[Any, ...]],
        ratings: Iterable[Sequence[tuple[int, int, float, int]]],
        replace: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> LoadReport:
        """Load a data set in ONE transaction: COPY into temporary tables, then merge.

        ``movies``: (movie_id, title, year, genres list, imdb_id, tmdb_id); ``users``:
        (user_id, gender, age, occupation, zip_code); ``ratings``: chunks of (user_id,
        movie_id, rating, unix seconds). Merge = upsert, newest rating per (user, movie) wins,
        so a re-run gives the same state; ``replace`` empties the tables first (inside the same
        transaction). Any failure rolls everything back: the previous state stays intact.
        ``progress(stage, n)`` is called as work is done (stage "ratings": n rows copied).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        n_ratings = 0
        fresh = False

        def report(stage: str, n: int) -> None:
            if progress is not None:
                progress(stage, n)

        try:
            async with self._conn() as conn:
                async with conn.transaction():
                    await conn.execute(SQL_LOCAL_NO_TIMEOUT)
                    await conn.execute(SQL_ADVISORY_XACT_LOCK, ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S)
                    await self._require_schema(conn)
                    for create_temp in SQL_LOAD_TEMP_TABLES:
                        await conn.execute(create_temp, timeout=BULK_TIMEOUT_S)
                    await conn.copy_records_to_table("load_movies", records=movies, timeout=BULK_TIMEOUT_S)
                    report("movies", len(movies))
                    await conn.copy_records_to_table("load_users", records=users, timeout=BULK_TIMEOUT_S)
                    report("users", len(users))
                    for chunk in ratings:
                        await conn.copy_records_to_table(
                            "load_ratings", records=chunk, timeout=BULK_TIMEOUT_S
                        )
                        n_ratings += len(chunk)
                        report("ratings", len(chunk))
                    await conn.execute(SQL_ANALYZE_LOAD_TABLES, timeout=BULK_TIMEOUT_S)
                    if replace:
                        await conn.execute(SQL_LOAD_REPLACE, timeout=BULK_TIMEOUT_S)
                    fresh = bool(await conn.fetchval(SQL_CATALOG_EMPTY))
                    if fresh:
                        await conn.execute(SQL_FRESH_WORK_MEM, timeout=BULK_TIMEOUT_S)
                        rows = await conn.fetch(SQL_FRESH_DEFS, timeout=60)
                        defs = [(str(r["kind"]), str(r["name"]), str(r["def"])) for r in rows]
                        fresh_drop, fresh_restore = _fresh_drop_restore(defs)
                        await conn.execute(fresh_drop, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_USERS, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_RATING_USERS, timeout=BULK_TIMEOUT_S)
                        report("merge", 0)
                        await conn.execute(SQL_FRESH_RATINGS, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_FRESH_MOVIES, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_GENRES, timeout=BULK_TIMEOUT_S)
                        await conn.execute(fresh_restore, timeout=BULK_TIMEOUT_S)
                    else:
                        await conn.execute(SQL_LOAD_MOVIES, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_GENRES, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_USERS, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_RATING_USERS, timeout=BULK_TIMEOUT_S)
                        report("merge", 0)
                        await conn.execute(SQL_LOAD_RATINGS, timeout=BULK_TIMEOUT_S)
                        await conn.execute(SQL_LOAD_AGGREGATES, timeout=BULK_TIMEOUT_S)
                    await conn.execute(
                        SQL_LOAD_RECORD, name, sha256, len(movies), len(users), n_ratings, replace, timeout=60
                    )
                if not fresh:
                    await conn.fetch(SQL_CLEAN_GIN, timeout=BULK_TIMEOUT_S)
                await conn.execute(SQL_ANALYZE_CATALOG, timeout=BULK_TIMEOUT_S)
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise InvalidArgument(f"data set refers to unknown ids: {exc.detail or exc}") from exc
        except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as exc:
            raise InvalidArgument(f"data set has invalid values: {exc.detail or exc}") from exc
        return LoadReport(
            dataset_name=name,
            movies=len(movies),
            users=len(users),
            ratings=n_ratings,
            seconds=loop.time() - started,
            replaced=replace,
        )

    async def _require_schema(self, conn: asyncpg.Connection) -> None:
        exists = await conn.fetchval(SQL_MIGRATIONS_EXIST)
        version = int(await conn.fetchval(SQL_SCHEMA_VERSION)) if exists else 0
        if version < 1:
            raise FailedPrecondition("the catalog schema is missing: run `recsys catalog migrate` first")
