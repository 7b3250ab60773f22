"""The catalog process: the kit's gRPC server plus the database lifecycle.

Start: bind and start the server (health NOT_SERVING), then in the background start the
embedded PostgreSQL (no DSN) or connect to the configured one, retrying with exponential backoff
while it is unreachable (no crash loop), apply migrations when configured, refuse an older schema
than this code needs (clear log line; calls fail with FAILED_PRECONDITION), and only then set
SERVING. While serving, a ping every ``health_check_interval_s`` flips health to NOT_SERVING while
the database is unreachable and back when it returns (the pool replaces dead connections itself).
An embedded PostgreSQL is owned: when its postmaster dies (checked at the same interval) the
catalog goes NOT_SERVING, closes the pool, starts PostgreSQL again on the same data dir with the
same backoff (PostgreSQL's crash recovery replays the WAL: acknowledged writes survive), reopens
the pool and goes SERVING. A configured DSN is not ours to restart: the pings just wait for it.
Stop (SIGTERM): NOT_SERVING, drain, close the pool, stop the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from recsys.catalog.v1 import catalog_pb2_grpc
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, RecsysError
from recsys_core.server import Server

from recsys_catalog.embedded import EmbeddedPostgres
from recsys_catalog.migrate import REQUIRED_SCHEMA_VERSION, migrate
from recsys_catalog.service import CatalogService
from recsys_catalog.servicer import SERVICE_NAME, CatalogServicer
from recsys_catalog.settings import CatalogSettings
from recsys_catalog.store import PgStore, PoolConfig

log = logging.getLogger("recsys.catalog")


def pool_config(settings: CatalogSettings, dsn: str | None = None) -> PoolConfig:
    if dsn is None:
        dsn = settings.dsn.get_secret_value() if settings.dsn is not None else ""
    return PoolConfig(
        dsn=dsn,
        pool_min=settings.pool_min,
        pool_max=settings.pool_max,
        statement_timeout_ms=settings.statement_timeout_ms,
        connect_timeout_s=settings.connect_timeout_s,
        acquire_timeout_s=settings.acquire_timeout_s,
    )


class CatalogServer:
    """Builds the server; ``await start()`` returns the port, ``ready`` is set once SERVING."""

    def __init__(self, settings: CatalogSettings) -> None:
        self.settings = settings
        self.embedded = EmbeddedPostgres(settings.data_dir) if settings.embedded else None
        self.store = PgStore(pool_config(settings))
        self.service = CatalogService(
            self.store,
            bayes_prior_weight=settings.bayes_prior_weight,
            recent_half_life_days=settings.recent_half_life_days,
        )
        self.server = Server(settings, "catalog")
        self.server.add_service(
            catalog_pb2_grpc.add_CatalogServicer_to_server, CatalogServicer(self.service), SERVICE_NAME
        )
        self.server.on_stop(self._close)
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: times the embedded PostgreSQL was restarted after its postmaster died
        self.restarts = 0
        # UNAVAILABLE (retryable), not FAILED_PRECONDITION: the caller should simply retry.
        self.store.refuse(DependencyUnavailable("postgresql", "catalog starting: database not connected yet"))

    async def start(self) -> int:
        port = await self.server.start()
        self._task = asyncio.create_task(self._lifecycle(), name="catalog-db")
        return port

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def _connect_once(self) -> None:
        if self.embedded is not None and self.embedded.crashed:
            await self.embedded.forget()  # died while we were (re)connecting: start a new one
        if self.embedded is not None and not self.embedded.running:
            await self.store.close()
            self.store.set_dsn(await self.embedded.start())
        await self.store.open()
        if self.settings.should_migrate_on_start:
            applied = await migrate(self.store)
            if applied:
                log.info("applied migrations %s", applied)
        version = await self.store.schema_version()
        if version < REQUIRED_SCHEMA_VERSION:
            await self.store.close()
            raise FailedPrecondition(
                f"database schema version {version} is older than the {REQUIRED_SCHEMA_VERSION} this "
                "catalog needs: run `recsys catalog migrate` (the migrate Job) first"
            )

    async def _connect(self) -> None:
        """``_connect_once`` until it succeeds, with exponential backoff (bounded, forever)."""
        s = self.settings
        delay = s.connect_retry_initial_s
        while True:
            try:
                await self._connect_once()
                return
            except RecsysError as exc:
                self.store.refuse(exc)
                log.warning("catalog not ready: %s (retrying in %.1fs)", exc.message, delay)
            except Exception as exc:  # e.g. the embedded server failed to start
                log.exception("catalog start-up step failed (retrying in %.1fs)", delay)
                self.store.refuse(DependencyUnavailable("postgresql", f"catalog start-up failed: {exc}"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.connect_retry_max_s)

    async def _restart_embedded(self) -> None:
        """The embedded postmaster died: NOT_SERVING, drop the pool, start PostgreSQL again on
        the same data dir (its crash recovery replays the WAL), reopen the pool, SERVING."""
        assert self.embedded is not None
        began = time.monotonic()
        log.error(
            "embedded PostgreSQL died (postmaster pid %s): NOT_SERVING, restarting it", self.embedded.pid
        )
        self.server.set_serving(False)
        self.store.refuse(
            DependencyUnavailable("postgresql", "embedded PostgreSQL crashed, restarting (crash recovery)")
        )
        await self.store.close()
        await self.embedded.forget()
        await self._connect()
        self.store.accept()
        self.restarts += 1
        log.warning(
            "embedded PostgreSQL restarted after %.1fs (pid %s): SERVING",
            time.monotonic() - began,
            self.embedded.pid,
        )
        self.server.set_serving(True)

    async def _lifecycle(self) -> None:
        s = self.settings
        await self._connect()
        self.store.accept()
        self.server.set_serving(True)
        self.ready.set()
        if s.health_check_interval_s <= 0:
            return
        serving = True
        while True:
            await asyncio.sleep(s.health_check_interval_s)
            if self.embedded is not None and self.embedded.crashed:
                await self._restart_embedded()
                serving = True
                continue
            ok = await self.store.ping()
            if ok != serving:
                log.warning("database %s", "reachable again" if ok else "unreachable: NOT_SERVING")
                self.server.set_serving(ok)
                serving = ok

    async def _close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()
        if self.embedded is not None:
            await self.embedded.stop()


async def serve(settings: CatalogSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    app = CatalogServer(settings)
    await app.start()
    await app.server.wait_for_signal()
