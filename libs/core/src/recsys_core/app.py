"""One application shape for every service: a kit :class:`~recsys_core.server.Server` plus the
lifecycle of what the service depends on (a database, a vector store, a model, upstreams).

A service subclasses :class:`App`, adds its servicer in ``__init__`` and fills in the hooks:

- ``connect()``: make the dependency usable; raise to be retried. Runs in the background after the
  port is bound (health NOT_SERVING meanwhile), with exponential backoff from
  ``connect_retry_initial_s`` to ``connect_retry_max_s``, forever (no crash loop) — unless
  ``connect_in_start`` is set, where ``start()`` awaits one attempt and a failure stops the
  server and propagates (the embedder: no model, nothing to serve).
- ``connect_failed(exc)``: told of each failed attempt (e.g. to answer calls with its reason).
- ``connected()``: after ``connect()``/``reconnect()`` succeeded, just before SERVING.
- ``check() -> bool``: every ``health_check_interval_s`` (0 = never) while SERVING; False or an
  exception turns health NOT_SERVING, calls ``lost()`` once, then ``reconnect()`` (default:
  ``connect()``) is retried with the same backoff, capped at the check interval, until it
  succeeds; then ``connected()`` and SERVING again: recovery without a restart.
- ``close()``: on stop, after the drain (the background tasks are cancelled first).

``start()`` returns the bound port, ``ready`` is set at the first SERVING, ``serve()`` runs until
SIGTERM/SIGINT. ``spawn(coro)`` runs a further background task that stop cancels.

The front is the kit's gRPC :class:`~recsys_core.server.Server` unless another :class:`Front` is
given: the web passes its HTTP server (``recsys_web.server.HttpServer``), whose ``/readyz`` is
the health this class flips — one lifecycle for every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, Self, TypeVar, cast

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from recsys_core.errors import RecsysError
from recsys_core.server import Server
from recsys_core.settings import ServerSettings

log = logging.getLogger("recsys.app")


class DependencyRetry(BaseSettings):
    """How a process waits for its dependency and re-checks it (the gRPC services through
    :class:`DependencySettings`, the web directly): one home for these settings."""

    #: start-up connection retries: exponential backoff from initial to max (forever)
    connect_retry_initial_s: float = Field(default=0.5, gt=0)
    connect_retry_max_s: float = Field(default=15.0, gt=0)
    #: seconds between the checks of the dependency that drive the health status (0 = no checks)
    health_check_interval_s: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.connect_retry_initial_s > self.connect_retry_max_s:
            raise ValueError("connect_retry_initial_s must be <= connect_retry_max_s")
        return self


class DependencySettings(ServerSettings, DependencyRetry):
    """Settings of a service that connects to something before it serves (catalog, retriever)."""


class Front(Protocol):
    """What :class:`App` drives: a server that binds, reports health, drains and stops."""

    async def start(self) -> int: ...

    async def stop(self, grace: float | None = None) -> None: ...

    def set_serving(self, serving: bool) -> None: ...

    def on_stop(self, cb: Callable[[], Coroutine[Any, Any, None]]) -> None: ...

    async def wait_for_signal(self) -> None: ...

    @property
    def port(self) -> int: ...


F = TypeVar("F", bound=Front)


class App(Generic[F]):
    """Server + dependency lifecycle; see the module docstring for the hooks.

    ``App[Server]`` for a gRPC service (the front is built from the settings when none is given),
    ``App[HttpServer]`` for the web."""

    #: what the dependency is called in log lines ("PostgreSQL", "Milvus", "model", "upstreams")
    dependency = "dependency"
    #: ``start()`` awaits one ``connect()`` and fails with it (no background retries)
    connect_in_start = False

    def __init__(
        self,
        settings: Any,
        name: str,
        *,
        server: F | None = None,
        retry_initial_s: float | None = None,
        retry_max_s: float | None = None,
        check_interval_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.server: F = server if server is not None else cast(F, Server(settings, name))
        self.ready = asyncio.Event()
        self.retry_initial_s = _pick(retry_initial_s, settings, "connect_retry_initial_s", 0.5)
        self.retry_max_s = _pick(retry_max_s, settings, "connect_retry_max_s", 15.0)
        self.check_interval_s = _pick(check_interval_s, settings, "health_check_interval_s", 0.0)
        self._tasks: list[asyncio.Task[Any]] = []
        self.server.on_stop(self._shutdown)

    # -- hooks ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Make the dependency usable; raise to be retried."""

    def connect_failed(self, exc: BaseException) -> None:
        """One ``connect()``/``reconnect()`` attempt failed with ``exc`` (already logged)."""

    async def connected(self) -> None:
        """``connect()`` or ``reconnect()`` succeeded; SERVING follows."""

    async def check(self) -> bool:
        """Is the dependency usable right now? (Only called when ``health_check_interval_s`` > 0.)"""
        return True

    async def lost(self) -> None:
        """``check()`` just failed; health is NOT_SERVING already."""

    async def reconnect(self) -> None:
        """Make the dependency usable again after ``lost()``; raise to be retried."""
        await self.connect()

    async def close(self) -> None:
        """Release what ``connect()`` opened (after the drain)."""

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> int:
        """Bind and start (NOT_SERVING), then connect; returns the port."""
        port = await self.server.start()
        if self.connect_in_start:
            try:
                await self.connect()
            except BaseException:
                await self.server.stop(0)
                raise
            await self._up()
            if self.check_interval_s > 0:
                self.spawn(self._watch(), name=f"{self.name}-watch")
        else:
            self.spawn(self._lifecycle(), name=f"{self.name}-lifecycle")
        return port

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)

    @classmethod
    async def started(cls, *args: Any, **kwargs: Any) -> Self:
        """``cls(*args, **kwargs)``, started (tests, benchmarks)."""
        app = cls(*args, **kwargs)
        await app.start()
        return app

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def serve(self) -> None:
        """Start and run until SIGTERM/SIGINT (then drain and close)."""
        await self.start()
        await self.server.wait_for_signal()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """A background task of this app, cancelled on stop before ``close()``."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def _up(self) -> None:
        await self.connected()
        self.server.set_serving(True)
        self.ready.set()

    async def _until(self, step: Callable[[], Coroutine[Any, Any, None]], cap: float) -> None:
        """``step()`` until it returns, sleeping with exponential backoff (at most ``cap``)."""
        delay = min(self.retry_initial_s, cap)
        while True:
            try:
                await step()
                return
            except RecsysError as exc:
                log.warning("%s not ready: %s (retrying in %.1fs)", self.dependency, exc.message, delay)
                self.connect_failed(exc)
            except Exception as exc:
                log.warning(
                    "%s not ready: %s (retrying in %.1fs)", self.dependency, exc, delay, exc_info=True
                )
                self.connect_failed(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    async def _lifecycle(self) -> None:
        await self._until(self.connect, self.retry_max_s)
        await self._up()
        log.info("%s ready: SERVING", self.dependency)
        if self.check_interval_s > 0:
            await self._watch()

    async def _healthy(self) -> bool:
        try:
            return await self.check()
        except Exception as exc:
            log.warning("%s check failed: %s", self.dependency, exc)
            return False

    async def _watch(self) -> None:
        interval = self.check_interval_s
        while True:
            await asyncio.sleep(interval)
            if await self._healthy():
                continue
            log.warning("%s unusable: NOT_SERVING", self.dependency)
            self.server.set_serving(False)
            await self.lost()
            await self._until(self.reconnect, min(self.retry_max_s, interval))
            await self._up()
            log.warning("%s usable again: SERVING", self.dependency)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("%s background task had failed: %r", self.name, result)
        self._tasks.clear()
        await self.close()


def _pick(value: float | None, settings: object, field: str, default: float) -> float:
    if value is not None:
        return value
    return float(getattr(settings, field, default))


__all__ = ["App", "DependencyRetry", "DependencySettings", "Front"]
