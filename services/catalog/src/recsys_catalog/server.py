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

import logging
import time

from recsys.catalog.v1 import catalog_pb2_grpc
from recsys_core.app import App
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, RecsysError
from recsys_core.server import Server

from recsys_catalog.embedded import EmbeddedPostgres
from recsys_catalog.migrate import REQUIRED_SCHEMA_VERSION, migrate
from recsys_catalog.service import CatalogService
from recsys_catalog.servicer import SERVICE_NAME, CatalogServicer
from recsys_catalog.settings import CatalogSettings
from recsys_catalog.store import PgStore, PoolConfig
from recsys_catalog.vectors import GrpcVectorPipeline

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


class CatalogServer(App[Server]):
    """The catalog app: ``await start()`` returns the port, ``ready`` is set once SERVING."""

    dependency = "PostgreSQL"

    def __init__(self, settings: CatalogSettings) -> None:
        super().__init__(settings, "catalog")
        self.settings: CatalogSettings = settings
        self.embedded = EmbeddedPostgres(settings.data_dir) if settings.embedded else None
        self.store = PgStore(pool_config(settings))
        # AddMovies' embedder and retriever clients: both targets, or none (AddMovies refused)
        self.vectors = (
            GrpcVectorPipeline(
                settings.embedder_target, settings.retriever_target, timeout_s=settings.upstream_timeout_s
            )
            if settings.embedder_target and settings.retriever_target
            else None
        )
        self.service = CatalogService(
            self.store,
            vectors=self.vectors,
            bayes_prior_weight=settings.bayes_prior_weight,
            recent_half_life_days=settings.recent_half_life_days,
        )
        self.server.add_service(
            catalog_pb2_grpc.add_CatalogServicer_to_server, CatalogServicer(self.service), SERVICE_NAME
        )
        #: times the embedded PostgreSQL was restarted after its postmaster died
        self.restarts = 0
        self._crash_began: float | None = None
        # UNAVAILABLE (retryable), not FAILED_PRECONDITION: the caller should simply retry.
        self.store.refuse(DependencyUnavailable("postgresql", "catalog starting: database not connected yet"))

    async def connect(self) -> None:
        """Start the embedded server if it is ours and not running, open the pool, migrate when
        configured, and refuse a schema older than this code needs."""
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

    def connect_failed(self, exc: BaseException) -> None:
        if isinstance(exc, RecsysError):
            self.store.refuse(exc)
        else:  # e.g. the embedded server failed to start
            self.store.refuse(DependencyUnavailable("postgresql", f"catalog start-up failed: {exc}"))

    async def connected(self) -> None:
        self.store.accept()
        if self._crash_began is not None:
            self.restarts += 1
            log.warning(
                "embedded PostgreSQL restarted after %.1fs (pid %s): SERVING",
                time.monotonic() - self._crash_began,
                self.embedded.pid if self.embedded is not None else None,
            )
            self._crash_began = None

    async def check(self) -> bool:
        """The embedded postmaster is alive (when it is ours) and the database answers a ping."""
        if self.embedded is not None and self.embedded.crashed:
            return False
        return await self.store.ping()

    async def lost(self) -> None:
        """An embedded postmaster that died is restarted on the same data dir (its crash recovery
        replays the WAL); a configured DSN is not ours to restart: the pool waits for it."""
        if self.embedded is None or not self.embedded.crashed:
            return
        self._crash_began = time.monotonic()
        log.error(
            "embedded PostgreSQL died (postmaster pid %s): NOT_SERVING, restarting it", self.embedded.pid
        )
        self.store.refuse(
            DependencyUnavailable("postgresql", "embedded PostgreSQL crashed, restarting (crash recovery)")
        )
        await self.store.close()
        await self.embedded.forget()

    async def reconnect(self) -> None:
        if self._crash_began is not None or (self.embedded is not None and self.embedded.crashed):
            if self._crash_began is None:
                await self.lost()
            await self.connect()
        elif not await self.store.ping():
            raise DependencyUnavailable("postgresql", "database unreachable")

    async def close(self) -> None:
        if self.vectors is not None:
            await self.vectors.close()
        await self.store.close()
        if self.embedded is not None:
            await self.embedded.stop()


async def serve(settings: CatalogSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    await CatalogServer(settings).serve()
