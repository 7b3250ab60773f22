"""The connection pool under every store method: lifecycle, readiness, driver errors.

``PgPool`` opens and closes the asyncpg pool, answers calls with the reason set by
``refuse()`` until ``accept()``, and runs reads (retried once on a lost connection) and writes
(one transaction, not retried). Driver errors become domain errors here: lost or refused
connections -> ``DependencyUnavailable("postgresql", ...)``, a query over the statement
timeout -> ``DeadlineExceeded``, a missing table or function -> ``FailedPrecondition``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from recsys_core.errors import (
    DeadlineExceeded,
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    RecsysError,
)
from recsys_core.logs import RateLimiter

from recsys_catalog.store.sql import statement

log = logging.getLogger("recsys_catalog.store")
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

# The tables or functions this code expects are not there: an unmigrated (or older) schema.
SCHEMA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.UndefinedFunctionError,
)

SQL_PING = statement("ping")


@dataclass(frozen=True, slots=True)
class PoolConfig:
    dsn: str
    pool_min: int = 1
    pool_max: int = 10
    statement_timeout_ms: int = 5000
    connect_timeout_s: float = 5.0
    acquire_timeout_s: float = 5.0
    application_name: str = "recsys-catalog"


def _schema_missing(exc: BaseException) -> FailedPrecondition:
    return FailedPrecondition(f"catalog schema missing or outdated ({exc}): run `recsys catalog migrate`")


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    detail = str(exc) or type(exc).__name__
    return DependencyUnavailable(DEPENDENCY, detail)


class PgPool:
    """The pool and how calls run on it (``PgStore``'s base). ``open()`` creates the pool; every
    call may raise ``DependencyUnavailable`` while the database is unreachable and recovers by
    itself when it returns (broken connections are dropped by the pool; a read is retried once)."""

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
        except asyncpg.InvalidAuthorizationSpecificationError as exc:  # class 28: incl. passwords
            raise DependencyUnavailable(
                DEPENDENCY,
                f"the server refused this client ({exc}): check the DSN's user and password and the"
                " server's pg_hba.conf entry for this host, database and sslmode",
            ) from exc

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
            await self._read(lambda conn: conn.fetchval(SQL_PING))
        except (DependencyUnavailable, DeadlineExceeded):
            return False
        return True
