"""PostgreSQL store: the only module that imports asyncpg.

Plain named SQL with ``$n`` parameters (never text built from input), batch reads with
``= ANY($1::bigint[])``, writes inside one transaction. Driver errors become domain errors
here: lost or refused connections -> ``DependencyUnavailable("postgresql", ...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from recsys_core.errors import (
    DeadlineExceeded,
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    RecsysError,
)
from recsys_core.logs import RateLimiter
from recsys_core.validation import GENRE_SEP

from recsys_catalog.model import (
    RATING_MAX,
    CatalogInfo,
    ColumnHistory,
    History,
    LoadReport,
    Movie,
    MovieFilter,
    Rating,
    SearchHit,
    UnknownMovies,
    UnknownUsers,
    UpsertResult,
    User,
)

log = logging.getLogger(__name__)
#: "connection lost" lines: at most one per exception type per 10 s during an outage
_LOST_LOG = RateLimiter(10.0, max_keys=16)

T = TypeVar("T")

DEPENDENCY = "postgresql"

# Errors that mean "the database is not reachable right now" (as opposed to a bad query).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError
    asyncpg.exceptions.AdminShutdownError,  # pg_terminate_backend, server shutdown
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,  # starting up / shutting down
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.InternalClientError,  # protocol state broken by an asynchronous FATAL
    OSError,  # refused, unreachable, socket file missing
    TimeoutError,  # connect or acquire timeout
)

# Unit separator: joins a movie's genres into one text value for unnest() (arrays of
# arrays must be rectangular in PostgreSQL). MovieLens genres never contain it.

MOVIE_COLUMNS = (
    "m.movie_id, m.title, m.year, m.genres, m.imdb_id, m.tmdb_id, m.poster_url, m.info_url, "
    "m.rating_count, m.rating_sum"
)

# Filter conditions shared by SampleMovies and GetPopular: fixed text, NULL = not given.
# $1 genres_any, $2 genres_all, $3 year_min, $4 year_max, $5 exclude ids.
FILTER_SQL = """
      ($1::text[] IS NULL OR m.genres && $1::text[])
  AND ($2::text[] IS NULL OR m.genres @> $2::text[])
  AND ($3::int IS NULL OR m.year >= $3::int)
  AND ($4::int IS NULL OR m.year <= $4::int)
  AND NOT EXISTS (SELECT 1 FROM unnest($5::bigint[]) AS x(id) WHERE x.id = m.movie_id)
"""

# The movies and the metadata version they were read at, in one statement (one snapshot); the
# version row comes back alone (movie columns NULL) when none of the ids is known.
SQL_GET_MOVIES = f"""
SELECT s.movies_version, {MOVIE_COLUMNS}
FROM catalog_state s
LEFT JOIN movies m ON m.movie_id = ANY($1::bigint[])
"""

# Similarity reported = mean of whole-title similarity and word similarity (the query as a
# part of the title): an identical title scores 1, a query that is one word of a long title
# about 0.6. Candidates: word similarity >= pg_trgm.word_similarity_threshold (0.6), from the
# trigram GIN index on title_fold = catalog_fold(title).
SQL_SEARCH = f"""
SELECT {MOVIE_COLUMNS},
       ((similarity(m.title_fold, q.q) + word_similarity(q.q, m.title_fold)) / 2)::float8 AS score
FROM movies m, (SELECT catalog_fold($1::text) AS q) AS q
WHERE q.q <% m.title_fold
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $2
"""

SQL_SAMPLE = f"""
SELECT {MOVIE_COLUMNS}
FROM movies m
WHERE {FILTER_SQL}
  AND m.rating_count >= $6::bigint
ORDER BY hashint8extended(m.movie_id, $7::bigint), m.movie_id
LIMIT $8
"""

SQL_POPULAR_COUNT = f"""
SELECT {MOVIE_COLUMNS}, m.rating_count::float8 AS score
FROM movies m
WHERE {FILTER_SQL}
  AND m.rating_count > 0
ORDER BY m.rating_count DESC, m.movie_id
LIMIT $6
"""

# Bayesian average: (sum + C * prior_mean) / (count + C), over movies with at least $9 ratings.
SQL_POPULAR_BAYES = f"""
SELECT {MOVIE_COLUMNS},
       ((m.rating_sum + $7::float8 * $8::float8) / (m.rating_count + $7::float8))::float8 AS score
FROM movies m
WHERE {FILTER_SQL}
  AND m.rating_count >= $9::bigint
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $6
"""

# Recency-weighted count per movie: sum of 0.5^(age / $1 seconds) over the ratings of the last
# RECENT_WINDOW_HALF_LIVES half-lives (older weights are below 2^-40 and left out), age from
# the newest rating; index-only over ratings_recent.
RECENT_WINDOW_HALF_LIVES = 40
SQL_RECENT_SCORES = f"""
WITH newest AS (SELECT max(rated_at) AS t FROM ratings)
SELECT r.movie_id,
       sum(exp(greatest(-700.0, -ln(2.0) * extract(epoch FROM n.t - r.rated_at)::float8
                                / $1::float8)))::float8 AS score
FROM ratings r, newest n
WHERE r.rated_at >= n.t - make_interval(secs => {RECENT_WINDOW_HALF_LIVES} * $1::float8)
GROUP BY r.movie_id
"""

# Top k by given scores ($7 ids, $8 scores; a rated movie without one scores 0 and follows by
# rating count).
SQL_POPULAR_SCORED = f"""
SELECT {MOVIE_COLUMNS}, coalesce(rc.score, 0.0)::float8 AS score
FROM movies m LEFT JOIN unnest($7::bigint[], $8::float8[]) AS rc(movie_id, score)
    ON rc.movie_id = m.movie_id
WHERE {FILTER_SQL}
  AND m.rating_count > 0
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $6
"""

# The k-th best Bayesian score among the $9 most rated matching movies (index scan), or NULL.
SQL_POPULAR_BAYES_BAR = f"""
SELECT score FROM (
    SELECT ((m.rating_sum + $7::float8 * $8::float8) / (m.rating_count + $7::float8))::float8 AS score
    FROM movies m
    WHERE {FILTER_SQL}
      AND m.rating_count > 0
    ORDER BY m.rating_count DESC, m.movie_id
    LIMIT $9
) AS top
ORDER BY score DESC
OFFSET $6 - 1
LIMIT 1
"""

SQL_GLOBAL_MEAN = "SELECT (sum(rating_sum) / NULLIF(sum(rating_count), 0))::float8 FROM movies"

SQL_GET_USERS = """
SELECT user_id, gender, age, occupation, zip_code FROM users WHERE user_id = ANY($1::bigint[])
"""

SQL_EXISTING_USERS = "SELECT user_id FROM users WHERE user_id = ANY($1::bigint[])"

SQL_HISTORIES = """
SELECT u.user_id, t.total, r.movie_id, r.rating, r.rated_at
FROM unnest($1::bigint[]) AS u(user_id)
CROSS JOIN LATERAL (SELECT count(*) AS total FROM ratings c WHERE c.user_id = u.user_id) AS t
LEFT JOIN LATERAL (
    SELECT h.movie_id, h.rating, h.rated_at
    FROM ratings h
    WHERE h.user_id = u.user_id
    ORDER BY h.rated_at DESC, h.movie_id
    LIMIT $2
) AS r ON true
ORDER BY u.user_id, r.rated_at DESC, r.movie_id
"""

# SQL_HISTORIES (+ SQL_SEEN_IDS when $3) as columns, one row per known user, in ONE statement:
# one snapshot without a transaction, one round trip instead of five (BEGIN, users, events, seen
# ids, COMMIT), arrays instead of a row per event. Same order as SQL_HISTORIES (newest first, ties
# by movie id); rated_at as exact microseconds since the epoch (extract returns numeric).
SQL_HISTORY_COLUMNS = """
SELECT u.user_id,
       (SELECT count(*) FROM ratings c WHERE c.user_id = u.user_id) AS total,
       h.movie_ids, h.ratings, h.rated_at_us,
       CASE WHEN $3::boolean THEN
           ARRAY(SELECT s.movie_id FROM ratings s WHERE s.user_id = u.user_id ORDER BY s.movie_id)
       END AS seen
FROM users u
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(x.movie_id ORDER BY x.rated_at DESC, x.movie_id), '{}') AS movie_ids,
           coalesce(array_agg(x.rating ORDER BY x.rated_at DESC, x.movie_id), '{}') AS ratings,
           coalesce(array_agg((extract(epoch FROM x.rated_at) * 1000000)::bigint
                              ORDER BY x.rated_at DESC, x.movie_id), '{}') AS rated_at_us
    FROM (
        SELECT r.movie_id, r.rating, r.rated_at
        FROM ratings r
        WHERE r.user_id = u.user_id
        ORDER BY r.rated_at DESC, r.movie_id
        LIMIT $2
    ) AS x
) AS h
WHERE u.user_id = ANY($1::bigint[])
"""

# Every rated movie per user, ids only: an index-only scan of the (user_id, movie_id) primary key.
SQL_SEEN_IDS = """
SELECT user_id, array_agg(movie_id ORDER BY movie_id) AS movie_ids
FROM ratings
WHERE user_id = ANY($1::bigint[])
GROUP BY user_id
"""

SQL_LOCK_MOVIES = """
SELECT movie_id FROM movies WHERE movie_id = ANY($1::bigint[]) ORDER BY movie_id FOR UPDATE
"""

SQL_CREATE_USERS = """
INSERT INTO users (user_id)
SELECT DISTINCT id FROM unnest($1::bigint[]) AS x(id) ORDER BY id
ON CONFLICT (user_id) DO NOTHING
RETURNING user_id
"""

SQL_UPSERT_RATINGS = """
INSERT INTO ratings (user_id, movie_id, rating, rated_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::real[], $4::timestamptz[])
ON CONFLICT (user_id, movie_id) DO UPDATE
    SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
    -- Newer wins. A tie on rated_at keeps what is stored (the later writer is told superseded),
    -- unless it is the same event again (a replay: reported stored, changes nothing).
    WHERE ratings.rated_at < EXCLUDED.rated_at
       OR (ratings.rated_at = EXCLUDED.rated_at AND ratings.rating = EXCLUDED.rating)
RETURNING user_id, movie_id
"""

# Exact recount for the given movies (their rows are locked by the caller).
SQL_REFRESH_AGGREGATES = """
UPDATE movies m
SET rating_count = a.c, rating_sum = a.s, updated_at = now()
FROM unnest($1::bigint[]) AS x(id)
CROSS JOIN LATERAL (
    SELECT count(*) AS c, coalesce(sum(r.rating::float8), 0) AS s FROM ratings r WHERE r.movie_id = x.id
) AS a
WHERE m.movie_id = x.id
"""

SQL_UPSERT_MOVIES = """
INSERT INTO movies AS m (movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url)
SELECT id, title, year, string_to_array(genres, E'\\x1f'), imdb_id, tmdb_id, poster_url, info_url
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[],
            $8::text[]) AS x(id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url)
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, poster_url = EXCLUDED.poster_url,
        info_url = EXCLUDED.info_url, updated_at = now()
RETURNING (xmax = 0) AS inserted
"""

SQL_ADD_GENRES = """
INSERT INTO genres (name)
SELECT DISTINCT g FROM unnest($1::text[]) AS x(g) WHERE g <> '' ORDER BY g
ON CONFLICT (name) DO NOTHING
"""

SQL_LIST_MOVIES = f"""
SELECT {MOVIE_COLUMNS} FROM movies m WHERE m.movie_id > $1 ORDER BY m.movie_id LIMIT $2
"""

SQL_GENRES = "SELECT name FROM genres ORDER BY name"

SQL_COUNTS = """
SELECT (SELECT count(*) FROM movies) AS movies,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM ratings) AS ratings
"""

SQL_LAST_LOAD = "SELECT name, sha256, loaded_at FROM dataset_loads ORDER BY load_id DESC LIMIT 1"

SQL_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS catalog_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SQL_SCHEMA_VERSION = """
SELECT coalesce(max(version), 0) FROM catalog_schema_migrations
"""

# Client-side timeout of migrations and bulk-load statements (the pool's command_timeout is
# sized for RPCs; these run without a server statement_timeout).
BULK_TIMEOUT_S = 6 * 3600.0

# One lock id for "migrating or bulk-loading the catalog": the two never interleave.
ADVISORY_LOCK_ID = 0x7265_6373_7973  # "recsys"

# --- bulk load -------------------------------------------------------------------------------

SQL_LOAD_TEMP_TABLES = """
CREATE TEMP TABLE load_movies (
    movie_id bigint, title text, year integer, genres text[], imdb_id text, tmdb_id bigint
) ON COMMIT DROP;
CREATE TEMP TABLE load_users (
    user_id bigint, gender text, age integer, occupation text, zip_code text
) ON COMMIT DROP;
CREATE TEMP TABLE load_ratings (
    user_id bigint, movie_id bigint, rating real, ts bigint
) ON COMMIT DROP;
"""

SQL_LOAD_REPLACE = "TRUNCATE ratings, users, movies, genres"

SQL_LOAD_MOVIES = """
INSERT INTO movies AS m (movie_id, title, year, genres, imdb_id, tmdb_id)
SELECT DISTINCT ON (movie_id) movie_id, title, year, genres, imdb_id, tmdb_id
FROM load_movies ORDER BY movie_id
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, updated_at = now()
    WHERE (m.title, m.year, m.genres, m.imdb_id, m.tmdb_id)
          IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.year, EXCLUDED.genres, EXCLUDED.imdb_id,
                            EXCLUDED.tmdb_id)
"""

SQL_LOAD_USERS = """
INSERT INTO users AS u (user_id, gender, age, occupation, zip_code)
SELECT DISTINCT ON (user_id) user_id, gender, age, occupation, zip_code
FROM load_users ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE
    SET gender = EXCLUDED.gender, age = EXCLUDED.age, occupation = EXCLUDED.occupation,
        zip_code = EXCLUDED.zip_code
    WHERE (u.gender, u.age, u.occupation, u.zip_code)
          IS DISTINCT FROM (EXCLUDED.gender, EXCLUDED.age, EXCLUDED.occupation, EXCLUDED.zip_code)
"""

SQL_LOAD_RATING_USERS = """
INSERT INTO users (user_id)
SELECT DISTINCT user_id FROM load_ratings ORDER BY user_id
ON CONFLICT (user_id) DO NOTHING
"""

# Newest event per (user, movie) wins, inside the file and against what is stored.
SQL_LOAD_RATINGS = """
INSERT INTO ratings AS r (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, to_timestamp(ts)
FROM load_ratings ORDER BY user_id, movie_id, ts DESC, rating DESC
ON CONFLICT (user_id, movie_id) DO UPDATE
    SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
    WHERE r.rated_at <= EXCLUDED.rated_at
      AND (r.rating, r.rated_at) IS DISTINCT FROM (EXCLUDED.rating, EXCLUDED.rated_at)
"""

# Fast path into an EMPTY catalog (first load, or --replace): drop the secondary indexes and
# the foreign keys, insert in primary-key order (movies with their aggregates), then rebuild the
# indexes by sorting and re-add the foreign keys (validated by one join each instead of lookups
# per row). All inside the load's transaction: a failure restores the tables as they were. The
# definitions dropped and re-created are read from the migrated schema itself (SQL_FRESH_DEFS), so
# the migrations are their one home (a test compares the schema after a fast load with the migrated one).
#
# The secondary indexes of movies and ratings and the foreign keys of ratings, as the migrations
# made them: (kind, name, definition), kind "index" (pg_get_indexdef, a CREATE INDEX statement) or
# "fkey" (pg_get_constraintdef, the ADD CONSTRAINT clause). Primary keys and unique constraints
# stay (the loads' ON CONFLICT needs them).
SQL_FRESH_DEFS = """
SELECT 'index' AS kind, i.relname AS name, pg_get_indexdef(x.indexrelid) AS def
FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE x.indrelid IN ('movies'::regclass, 'ratings'::regclass) AND NOT x.indisprimary AND NOT x.indisunique
UNION ALL
SELECT 'fkey', conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid = 'ratings'::regclass AND contype = 'f'
ORDER BY 1, 2
"""


def _fresh_drop_restore(defs: list[tuple[str, str, str]]) -> tuple[str, str]:
    """The DROP and the re-CREATE statements of :data:`SQL_FRESH_DEFS`' rows."""
    fkeys = [(n, d) for k, n, d in defs if k == "fkey"]
    indexes = [(n, d) for k, n, d in defs if k == "index"]
    drop = [f'DROP INDEX "{n}";' for n, _ in indexes]
    restore = [f"{d};" for _, d in indexes]
    if fkeys:
        drop.insert(0, "ALTER TABLE ratings " + ", ".join(f'DROP CONSTRAINT "{n}"' for n, _ in fkeys) + ";")
        added = ", ".join(f'ADD CONSTRAINT "{n}" {d}' for n, d in fkeys)
        restore.append(f"ALTER TABLE ratings {added};")
    return "\n".join(drop), "\n".join(restore)


SQL_FRESH_RATINGS = """
INSERT INTO ratings (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, to_timestamp(ts)
FROM load_ratings ORDER BY user_id, movie_id, ts DESC, rating DESC
"""

# Fresh path: movies go in after the ratings, with their aggregates (no second pass over them).
SQL_FRESH_MOVIES = """
INSERT INTO movies (movie_id, title, year, genres, imdb_id, tmdb_id, rating_count, rating_sum)
SELECT DISTINCT ON (l.movie_id) l.movie_id, l.title, l.year, l.genres, l.imdb_id, l.tmdb_id,
       coalesce(a.c, 0), coalesce(a.s, 0)
FROM load_movies AS l
LEFT JOIN (
    SELECT movie_id, count(*) AS c, sum(rating::float8) AS s FROM ratings GROUP BY movie_id
) AS a ON a.movie_id = l.movie_id
ORDER BY l.movie_id
"""

# After a merge: move GIN pending-list entries into the index (else searches scan the list).
SQL_CLEAN_GIN = """
SELECT gin_clean_pending_list('movies_title_trgm'::regclass),
       gin_clean_pending_list('movies_genres'::regclass)
"""

SQL_LOAD_GENRES = """
INSERT INTO genres (name)
SELECT DISTINCT g FROM load_movies, unnest(genres) AS g WHERE g <> '' ORDER BY g
ON CONFLICT (name) DO NOTHING
"""

# Full recount; rows whose aggregates did not change are not rewritten.
SQL_LOAD_AGGREGATES = """
UPDATE movies m
SET rating_count = coalesce(a.c, 0), rating_sum = coalesce(a.s, 0), updated_at = now()
FROM movies m2
LEFT JOIN (
    SELECT movie_id, count(*) AS c, sum(rating::float8) AS s FROM ratings GROUP BY movie_id
) AS a ON a.movie_id = m2.movie_id
WHERE m.movie_id = m2.movie_id
  AND (m.rating_count, m.rating_sum) IS DISTINCT FROM (coalesce(a.c, 0), coalesce(a.s, 0))
"""

SQL_LOAD_RECORD = """
INSERT INTO dataset_loads (name, sha256, movies, users, ratings, replaced)
VALUES ($1, $2, $3, $4, $5, $6)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class PoolConfig:
    dsn: str
    pool_min: int = 1
    pool_max: int = 10
    statement_timeout_ms: int = 5000
    connect_timeout_s: float = 5.0
    acquire_timeout_s: float = 5.0
    application_name: str = "recsys-catalog"


def _movie(row: Any) -> Movie:
    count = int(row["rating_count"])
    return Movie(
        movie_id=row["movie_id"],
        title=row["title"],
        year=row["year"],
        genres=tuple(row["genres"] or ()),
        imdb_id=row["imdb_id"],
        tmdb_id=row["tmdb_id"],
        poster_url=row["poster_url"],
        info_url=row["info_url"],
        rating_count=count,
        rating_mean=float(row["rating_sum"]) / count if count else 0.0,
    )


def _user(row: Any) -> User:
    return User(
        user_id=row["user_id"],
        gender=row["gender"],
        age=row["age"],
        occupation=row["occupation"],
        zip_code=row["zip_code"],
    )


def _filter_args(flt: MovieFilter, exclude_ids: Sequence[int]) -> list[Any]:
    return [
        list(flt.genres_any) or None,
        list(flt.genres_all) or None,
        flt.year_min,
        flt.year_max,
        list(exclude_ids),
    ]


# The tables or functions this code expects are not there: an unmigrated (or older) schema.
SCHEMA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.UndefinedFunctionError,
)


def _schema_missing(exc: BaseException) -> FailedPrecondition:
    return FailedPrecondition(f"catalog schema missing or outdated ({exc}): run `recsys catalog migrate`")


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    detail = str(exc) or type(exc).__name__
    return DependencyUnavailable(DEPENDENCY, detail)


class PgStore:
    """The catalog's PostgreSQL access. ``open()`` creates the pool; every method may raise
    ``DependencyUnavailable`` while the database is unreachable and recovers by itself when it
    returns (broken connections are dropped by the pool; a read is retried once)."""

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._pool: asyncpg.Pool | None = None
        # Why calls are refused while the pool is closed (refuse / accept; e.g. an old schema).
        self._not_ready: RecsysError | None = None

    @property
    def dsn(self) -> str:
        return self._config.dsn

    def set_dsn(self, dsn: str) -> None:
        """Point a closed store at another server (the embedded one, known once started)."""
        if self._pool is not None:
            raise RuntimeError("set_dsn on an open store")
        self._config = dataclasses.replace(self._config, dsn=dsn)

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        """Create the pool (connects ``pool_min`` connections). Raises DependencyUnavailable."""
        if self._pool is not None:
            return
        cfg = self._config
        try:
            self._pool = await asyncpg.create_pool(
                cfg.dsn,
                min_size=cfg.pool_min,
                max_size=cfg.pool_max,
                timeout=cfg.connect_timeout_s,
                command_timeout=max(cfg.statement_timeout_ms / 1000 * 2, 1.0),
                max_inactive_connection_lifetime=300.0,
                server_settings={
                    "application_name": cfg.application_name,
                    "statement_timeout": str(cfg.statement_timeout_ms),
                },
            )
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        except asyncpg.InvalidCatalogNameError as exc:
            raise DependencyUnavailable(DEPENDENCY, f"database does not exist: {exc}") from exc

    def refuse(self, why: RecsysError) -> None:
        """Answer every call with ``why`` while the pool is closed (the server's lifecycle says why:
        starting, an old schema, the embedded server restarting)."""
        self._not_ready = why

    def accept(self) -> None:
        """The server has finished connecting: no reason to refuse calls is kept."""
        self._not_ready = None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except CONNECTION_ERRORS:  # includes TimeoutError
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise self._not_ready or DependencyUnavailable(DEPENDENCY, "not connected yet")
        async with pool.acquire(timeout=self._config.acquire_timeout_s) as conn:
            try:
                yield conn
            except CONNECTION_ERRORS:
                # never hand a broken connection back to the pool (it may be detached already)
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                # a lost backend usually means all of them (restart, failover, terminated
                # backends): replace every pooled connection on its next acquire, so one call
                # sees the failure instead of one per idle connection
                await pool.expire_connections()
                raise

    async def _read(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read; a connection lost under it (terminated backend, restart) is retried once
        on a fresh connection, so clients see no error after the database came back."""
        for attempt in (1, 2):
            try:
                async with self._conn() as conn:
                    return await op(conn)
            except CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise _unavailable(exc) from exc
                left_out = _LOST_LOG.allow(type(exc).__name__)
                if left_out is not None:
                    log.warning(
                        "postgresql connection lost (%s), retrying once (%d more left out since)",
                        exc,
                        left_out,
                    )
            except asyncpg.QueryCanceledError as exc:
                raise DeadlineExceeded(f"database query timed out: {exc}") from exc
            except SCHEMA_ERRORS as exc:
                raise _schema_missing(exc) from exc
        raise AssertionError("unreachable")

    async def _write(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``op`` in one transaction; not retried (the caller sees UNAVAILABLE)."""
        try:
            async with self._conn() as conn, conn.transaction():
                return await op(conn)
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        except asyncpg.QueryCanceledError as exc:
            raise DeadlineExceeded(f"database query timed out: {exc}") from exc
        except asyncpg.CheckViolationError as exc:
            raise InvalidArgument(f"rejected by the database: {exc}") from exc
        except SCHEMA_ERRORS as exc:
            raise _schema_missing(exc) from exc

    async def ping(self) -> bool:
        """True when a pooled connection answers ``SELECT 1``."""
        try:
            await self._read(lambda conn: conn.fetchval("SELECT 1"))
        except (DependencyUnavailable, DeadlineExceeded):
            return False
        return True

    # --- schema ------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            exists = await conn.fetchval("SELECT to_regclass('catalog_schema_migrations') IS NOT NULL")
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
                await conn.execute("SET statement_timeout = 0")
                await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S)
                try:
                    await conn.execute(SQL_MIGRATIONS_TABLE, timeout=BULK_TIMEOUT_S)
                    current = int(await conn.fetchval(SQL_SCHEMA_VERSION, timeout=BULK_TIMEOUT_S))
                    for mig in sorted(migrations, key=lambda m: m.version):
                        if mig.version <= current:
                            continue
                        async with conn.transaction():
                            await conn.execute(mig.sql, timeout=BULK_TIMEOUT_S)
                            await conn.execute(
                                "INSERT INTO catalog_schema_migrations (version, name) VALUES ($1, $2)",
                                mig.version,
                                mig.name,
                            )
                        applied.append(mig.version)
                        log.info("applied migration %04d_%s", mig.version, mig.name)
                finally:
                    await conn.execute(
                        "SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S
                    )
        except CONNECTION_ERRORS as exc:
            raise _unavailable(exc) from exc
        return applied

    # --- movies ------------------------------------------------------------------------------

    async def get_movies(self, movie_ids: Sequence[int]) -> tuple[dict[int, Movie], int]:
        """The known movies among ``movie_ids`` and the metadata version they were read at
        (migrations/0003_movies_version.sql)."""

        async def op(conn: asyncpg.Connection) -> tuple[dict[int, Movie], int]:
            rows = await conn.fetch(SQL_GET_MOVIES, list(movie_ids))
            version = int(rows[0]["movies_version"]) if rows else 0
            return {r["movie_id"]: _movie(r) for r in rows if r["movie_id"] is not None}, version

        return await self._read(op)

    async def search_movies(self, query: str, limit: int) -> list[SearchHit]:
        async def op(conn: asyncpg.Connection) -> list[SearchHit]:
            rows = await conn.fetch(SQL_SEARCH, query, limit)
            return [SearchHit(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def sample_movies(
        self, n: int, seed: int, min_ratings: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[Movie]:
        async def op(conn: asyncpg.Connection) -> list[Movie]:
            args = [*_filter_args(flt, exclude_ids), min_ratings, seed, n]
            return [_movie(r) for r in await conn.fetch(SQL_SAMPLE, *args)]

        return await self._read(op)

    async def popular_most_rated(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[tuple[Movie, float]]:
        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            rows = await conn.fetch(SQL_POPULAR_COUNT, *_filter_args(flt, exclude_ids), k)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def popular_bayesian(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int], prior_weight: float, prior_mean: float
    ) -> list[tuple[Movie, float]]:
        """Exact top-k by Bayesian average without scanning every movie: the k-th best score T
        among the most-rated movies is a bar; a movie with n ratings scores at most
        (5n + C*mean) / (n + C), so only n >= C (T - mean) / (5 - T) can reach T, and the
        final query reads just those through the rating_count index."""

        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            args = [*_filter_args(flt, exclude_ids), k, prior_weight, prior_mean]
            bar = await conn.fetchval(SQL_POPULAR_BAYES_BAR, *args, max(4 * k, 200))
            min_count = 1
            if bar is not None and prior_mean < bar < RATING_MAX:
                min_count = max(1, math.floor(prior_weight * (bar - prior_mean) / (RATING_MAX - bar)))
            rows = await conn.fetch(SQL_POPULAR_BAYES, *args, min_count)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def recent_scores(self, half_life_days: float) -> tuple[list[int], list[float]]:
        """Movie ids and their recency-weighted counts (movies rated inside the window)."""

        async def op(conn: asyncpg.Connection) -> tuple[list[int], list[float]]:
            rows = await conn.fetch(SQL_RECENT_SCORES, half_life_days * 86400.0)
            return [int(r["movie_id"]) for r in rows], [float(r["score"]) for r in rows]

        return await self._read(op)

    async def popular_scored(
        self,
        k: int,
        flt: MovieFilter,
        exclude_ids: Sequence[int],
        movie_ids: Sequence[int],
        scores: Sequence[float],
    ) -> list[tuple[Movie, float]]:
        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            args = [*_filter_args(flt, exclude_ids), k, movie_ids, scores]
            # A generic plan (asyncpg's prepared statement, from the 6th call on) guesses the
            # arrays' length and nests a loop over them: 380 ms instead of 3 ms on ml-100k.
            async with conn.transaction(readonly=True):
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                rows = await conn.fetch(SQL_POPULAR_SCORED, *args)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def global_rating_mean(self) -> float | None:
        async def op(conn: asyncpg.Connection) -> float | None:
            value = await conn.fetchval(SQL_GLOBAL_MEAN)
            return None if value is None else float(value)

        return await self._read(op)

    async def list_movies(self, after_id: int, page_size: int) -> list[Movie]:
        async def op(conn: asyncpg.Connection) -> list[Movie]:
            return [_movie(r) for r in await conn.fetch(SQL_LIST_MOVIES, after_id, page_size)]

        return await self._read(op)

    async def upsert_movies(self, movies: Sequence[Movie]) -> UpsertResult:
        cols: list[list[Any]] = [[] for _ in range(8)]
        all_genres: set[str] = set()
        for m in movies:
            for col, value in zip(
                cols,
                (
                    m.movie_id,
                    m.title,
                    m.year,
                    GENRE_SEP.join(m.genres),
                    m.imdb_id,
                    m.tmdb_id,
                    m.poster_url,
                    m.info_url,
                ),
                strict=True,
            ):
                col.append(value)
            all_genres.update(m.genres)

        async def op(conn: asyncpg.Connection) -> UpsertResult:
            rows = await conn.fetch(SQL_UPSERT_MOVIES, *cols)
            await conn.execute(SQL_ADD_GENRES, sorted(all_genres))
            inserted = sum(1 for r in rows if r["inserted"])
            return UpsertResult(inserted=inserted, updated=len(rows) - inserted)

        return await self._write(op)

    async def genres(self) -> tuple[str, ...]:
        async def op(conn: asyncpg.Connection) -> tuple[str, ...]:
            return tuple(r["name"] for r in await conn.fetch(SQL_GENRES))

        return await self._read(op)

    # --- users and ratings -------------------------------------------------------------------

    async def get_users(self, user_ids: Sequence[int]) -> dict[int, User]:
        async def op(conn: asyncpg.Connection) -> dict[int, User]:
            rows = await conn.fetch(SQL_GET_USERS, list(user_ids))
            return {r["user_id"]: _user(r) for r in rows}

        return await self._read(op)

    async def histories(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, History]:
        """Histories of the known users among ``user_ids`` (unknown ones are absent).

        ``limit`` newest ratings each; with ``include_seen`` also the ids of every movie each
        user rated (one more query, ids only; both read in one repeatable-read snapshot, so the
        ids agree with ``total`` and the events).
        """

        async def op(conn: asyncpg.Connection) -> dict[int, History]:
            if not include_seen:
                return await read(conn)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await read(conn)

        async def read(conn: asyncpg.Connection) -> dict[int, History]:
            unique = sorted(set(user_ids))
            known = {r["user_id"] for r in await conn.fetch(SQL_EXISTING_USERS, unique)}
            if not known:
                return {}
            rows = await conn.fetch(SQL_HISTORIES, sorted(known), limit)
            seen: dict[int, list[int]] = {uid: [] for uid in known}
            if include_seen:
                for r in await conn.fetch(SQL_SEEN_IDS, sorted(known)):
                    seen[r["user_id"]] = list(r["movie_ids"])
            ratings: dict[int, list[Rating]] = {uid: [] for uid in known}
            totals: dict[int, int] = dict.fromkeys(known, 0)
            for r in rows:
                uid = r["user_id"]
                totals[uid] = int(r["total"])
                if r["movie_id"] is not None:
                    ratings[uid].append(Rating(uid, r["movie_id"], float(r["rating"]), r["rated_at"]))
            return {uid: History(uid, ratings[uid], totals[uid], seen[uid]) for uid in known}

        return await self._read(op)

    async def history_columns(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, ColumnHistory]:
        """``histories`` as columns (the same events, order and seen ids), in one statement."""

        async def op(conn: asyncpg.Connection) -> dict[int, ColumnHistory]:
            rows = await conn.fetch(SQL_HISTORY_COLUMNS, sorted(set(user_ids)), limit, include_seen)
            return {
                r["user_id"]: ColumnHistory(
                    user_id=r["user_id"],
                    movie_ids=r["movie_ids"],
                    ratings=r["ratings"],
                    rated_at_us=r["rated_at_us"],
                    total=int(r["total"]),
                    seen_movie_ids=r["seen"] or [],
                )
                for r in rows
            }

        return await self._read(op)

    async def record_ratings(
        self, events: Sequence[Rating], create_missing_users: bool
    ) -> tuple[set[tuple[int, int]], list[int]]:
        """Store events (at most one per (user, movie)); newest wins against stored rows.

        Returns the (user, movie) pairs written and the users created. Raises UnknownMovies /
        UnknownUsers (nothing written) when ids are unknown.
        """
        movie_ids = sorted({e.movie_id for e in events})
        user_ids = sorted({e.user_id for e in events})

        async def op(conn: asyncpg.Connection) -> tuple[set[tuple[int, int]], list[int]]:
            # Locking the movie rows serialises concurrent writers of the same movie, so the
            # recount below is exact; it also proves the movies exist.
            found = {r["movie_id"] for r in await conn.fetch(SQL_LOCK_MOVIES, movie_ids)}
            if len(found) != len(movie_ids):
                raise UnknownMovies([m for m in movie_ids if m not in found])
            created: list[int] = []
            if create_missing_users:
                created = sorted(r["user_id"] for r in await conn.fetch(SQL_CREATE_USERS, user_ids))
            else:
                known = {r["user_id"] for r in await conn.fetch(SQL_EXISTING_USERS, user_ids)}
                if len(known) != len(user_ids):
                    raise UnknownUsers([u for u in user_ids if u not in known])
            rows = await conn.fetch(
                SQL_UPSERT_RATINGS,
                [e.user_id for e in events],
                [e.movie_id for e in events],
                [e.rating for e in events],
                [e.rated_at for e in events],
            )
            written = {(r["user_id"], r["movie_id"]) for r in rows}
            touched = sorted({m for _, m in written})
            if touched:
                await conn.execute(SQL_REFRESH_AGGREGATES, touched)
            return written, created

        return await self._write(op)

    # --- describe ----------------------------------------------------------------------------

    async def describe(self) -> CatalogInfo:
        async def op(conn: asyncpg.Connection) -> CatalogInfo:
            counts = await conn.fetchrow(SQL_COUNTS)
            version = int(await conn.fetchval(SQL_SCHEMA_VERSION))
            genres = tuple(r["name"] for r in await conn.fetch(SQL_GENRES))
            last = await conn.fetchrow(SQL_LAST_LOAD)
            return CatalogInfo(
                movie_count=int(counts["movies"]),
                user_count=int(counts["users"]),
                rating_count=int(counts["ratings"]),
                schema_version=version,
                genres=genres,
                dataset_name=last["name"] if last else None,
                dataset_sha256=last["sha256"] if last else None,
                loaded_at=last["loaded_at"] if last else None,
            )

        return await self._read(op)

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
                    await conn.execute("SET LOCAL statement_timeout = 0")
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_ID, timeout=BULK_TIMEOUT_S
                    )
                    await self._require_schema(conn)
                    await conn.execute(SQL_LOAD_TEMP_TABLES, timeout=BULK_TIMEOUT_S)
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
                    await conn.execute(
                        "ANALYZE load_movies, load_users, load_ratings", timeout=BULK_TIMEOUT_S
                    )
                    if replace:
                        await conn.execute(SQL_LOAD_REPLACE, timeout=BULK_TIMEOUT_S)
                    fresh = bool(await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM movies)"))
                    if fresh:
                        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'", timeout=BULK_TIMEOUT_S)
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
                await conn.execute("ANALYZE movies, users, ratings", timeout=BULK_TIMEOUT_S)
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
        exists = await conn.fetchval("SELECT to_regclass('catalog_schema_migrations') IS NOT NULL")
        version = int(await conn.fetchval(SQL_SCHEMA_VERSION)) if exists else 0
        if version < 1:
            raise FailedPrecondition("the catalog schema is missing: run `recsys catalog migrate` first")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- database administration (tests, benchmarks, the embedded server) -----------------------

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database (keeps host, user and query such as ``?host=``)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def can_connect(dsn: str, connect_timeout_s: float = 3.0) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def create_database(admin_dsn: str, name: str) -> str:
    """CREATE DATABASE ``name`` (a checked identifier, not user input); returns its DSN."""
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def terminate_backends(admin_dsn: str, database: str) -> int:
    """Kill every other connection to ``database`` (fault-injection in tests)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        )
    finally:
        await conn.close()
