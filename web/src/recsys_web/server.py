"""The web's process: the kit's one application shape (``recsys_core.app.App``) over an HTTP front.

``WebApp`` is to the web what ``CatalogServer``/``GatewayApp`` are to the gRPC services: it binds
first (``/healthz`` answers, ``/readyz`` 503), connects to its dependency — the gateway, SERVING
on ``grpc.health.v1`` — with the kit's backoff, then turns ready; every
``health_check_interval_s`` it checks the gateway again and turns ``/readyz`` 503 while it is not
SERVING, ready again when it is (no restart). SIGTERM: ``/readyz`` 503, open requests drain
(``grace_seconds``), then the gateway channel closes. With ``otlp_endpoint`` set, every page is a
SERVER span and its gateway calls CLIENT spans of the same trace (``recsys_core.tracing``).

``HttpServer`` is the front :class:`recsys_core.app.App` drives (start/stop/set_serving/on_stop/
wait_for_signal), over aiohttp's ``AppRunner``; the page handlers live in ``recsys_web.app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from recsys_core import tracing
from recsys_core.app import App
from recsys_core.errors import DependencyUnavailable
from recsys_core.server import run_on_stop, wait_for_signal

from .app import create_app, web_state
from .gateway_client import GatewayClient
from .settings import RecsysWebSettings

log = logging.getLogger("recsys_web")


class HttpServer:
    """An aiohttp application as an :class:`recsys_core.app.Front`: ``/readyz`` reads ``serving``."""

    def __init__(self, app: web.Application, *, host: str, port: int, grace_s: float) -> None:
        self.app = app
        self.host = host
        self._want_port = port
        self._grace_s = grace_s
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self.serving = False

    def on_stop(self, cb: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._on_stop.append(cb)

    async def start(self) -> int:
        if self._runner is not None:
            raise RuntimeError("server already started")
        self._stopped = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self._grace_s)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._want_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"cannot bind HTTP {self.host}:{self._want_port}: {exc}") from exc
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("web listening on http://%s:%d", self.host, self._port, extra={"port": self._port})
        return self._port

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    def set_serving(self, serving: bool) -> None:
        if self._stop_task is not None:
            return  # stopping: stays not ready
        self.serving = serving
        log.info("readiness %s", "ready" if serving else "not ready")

    async def stop(self, grace: float | None = None) -> None:
        """Not ready, stop accepting, let open requests finish, then the ``on_stop`` callbacks.
        Idempotent."""
        if self._stop_task is None:
            self.serving = False
            self._stop_task = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        log.info("stopping (grace %.1fs)", self._grace_s if grace is None else grace)
        if self._runner is not None:
            if grace is not None:
                self._runner._shutdown_timeout = grace  # aiohttp reads it at shutdown
            await self._runner.cleanup()
        await run_on_stop(self._on_stop)
        if tracing.enabled():
            await asyncio.to_thread(tracing.flush)
        if self._stopped is not None:
            self._stopped.set()
        log.info("stopped")

    async def wait_for_signal(self) -> None:
        if self._stopped is None:
            raise RuntimeError("server not started")
        await wait_for_signal(self.stop, self._stopped)


class WebApp(App[HttpServer]):
    """The web process: pages over an HTTP front, the gateway as its one dependency."""

    dependency = "gateway"

    def __init__(self, settings: RecsysWebSettings, *, gateway: GatewayClient | None = None) -> None:
        self._owned = gateway is None
        # before the gateway channel opens (it adds the tracing interceptors only when it is on)
        tracing.setup(settings, "web")
        front = HttpServer(
            create_app(settings, gateway=gateway, ready=lambda: self.server.serving),
            host=settings.host,
            port=settings.port,
            grace_s=settings.grace_seconds,
        )
        super().__init__(settings, "web", server=front)
        self.web_settings = settings
        self.state = web_state(front.app)

    async def start(self) -> int:
        if self.state.gateway is None:
            key = self.web_settings.gateway_api_key
            self.state.gateway = GatewayClient.open(
                self.web_settings.gateway_target,
                timeout_s=self.web_settings.gateway_timeout_s,
                api_key=key.get_secret_value() if key else None,
            )
        return await super().start()

    async def connect(self) -> None:
        if not await self.state.gw.serving():
            raise DependencyUnavailable(
                "gateway", f"the gateway at {self.web_settings.gateway_target} is not SERVING"
            )

    async def connected(self) -> None:
        log.info("web app ready", extra={"gateway_target": self.web_settings.gateway_target})

    async def check(self) -> bool:
        return await self.state.gw.serving()

    async def close(self) -> None:
        if self._owned and self.state.gateway is not None:
            await self.state.gateway.close()
            self.state.gateway = None
        log.info("web app stopped")


__all__ = ["HttpServer", "WebApp"]
