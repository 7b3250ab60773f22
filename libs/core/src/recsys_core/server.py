"""The gRPC server every recsys service runs.

Lifecycle::

    server = Server(settings, "catalog")
    server.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, servicer, SERVICE_NAME)
    server.on_stop(pool.close)
    await server.start()          # NOT_SERVING until...
    server.set_serving(True)      # ...the dependencies are ready
    await server.wait_for_signal()  # SIGTERM/SIGINT -> NOT_SERVING, drain (grace), on_stop callbacks

``start`` installs the kit interceptor (which also answers an undecodable request body with
INVALID_ARGUMENT and a rate-limited WARNING, on every method, health and reflection included:
``recsys_core.interceptors``), the library health servicer
(``grpc.health.v1``: "" and every added service), reflection that resolves
method symbols, and the Prometheus endpoint when ``metrics_port`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as _AsyncHealthServicer
from pydantic_settings import SettingsConfigDict

from . import logs, tracing
from .interceptors import HEALTH_SERVICE, KitServerInterceptor
from .memory import MemoryReturner
from .metrics import MetricsEndpoint
from .reflection import enable_reflection
from .settings import EventLoop, LoopSettings, ServerSettings, SettingsError, load_settings

log = logging.getLogger("recsys.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Health name for liveness probes: SERVING from start() until stop(), whatever the dependencies
#: do (a database outage makes "" and the service names NOT_SERVING, which must not restart pods).
LIVENESS_SERVICE = "recsys.liveness"


class HealthServicer(_AsyncHealthServicer):
    """The library's aio health servicer with a synchronous ``set_now`` (Check sees it at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._notify_tasks: set[asyncio.Task[None]] = set()
        self._memory: MemoryReturner | None = None
        self._watch_counts: dict[str, int] = {}

    def set_now(self, service: str, status: Any) -> None:
        if self._gracefully_shutting_down:
            return
        self._server_status[service] = status
        condition = self._server_watchers.get(service) if service in self._server_watchers else None
        if condition is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._notify(condition))
        self._notify_tasks.add(task)
        task.add_done_callback(self._notify_tasks.discard)

    @staticmethod
    async def _notify(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify_all()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """The library's Watch, except that a watcher ending no longer drops the condition other
        watchers of the same service wait on (they would miss every later change)."""
        service = request.service
        condition = self._server_watchers[service]
        self._watch_counts[service] = self._watch_counts.get(service, 0) + 1
        last = None
        try:
            async with condition:
                while True:
                    status = self._server_status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                    if status != last:
                        await context.write(health_pb2.HealthCheckResponse(status=status))
                    last = status
                    await condition.wait()
        finally:
            self._watch_counts[service] -= 1
            if self._watch_counts[service] == 0:
                del self._watch_counts[service]
                self._server_watchers.pop(service, None)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files; None = plaintext.

    With ``tls_client_ca_file`` the server requires a client certificate signed by that CA
    (mutual TLS). A missing or unreadable file raises :class:`SettingsError` naming the variable.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None

    def read(field: str) -> bytes:
        path = getattr(settings, field)
        try:
            return bytes(path.read_bytes())
        except OSError as exc:
            var = type(settings).env_name(field)
            raise SettingsError(f"{var}: cannot read {path}: {exc.strerror}", [var]) from None

    ca = read("tls_client_ca_file") if settings.tls_client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(read("tls_key_file"), read("tls_cert_file"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


class Server:
    """A grpc.aio server with the kit's interceptor, health, reflection, metrics and graceful stop."""

    def __init__(self, settings: ServerSettings, service_name: str) -> None:
        self.settings = settings
        self.service_name = service_name
        # before the app opens its client channels (they add tracing only when it is on)
        tracing.setup(settings, service_name)
        self._services: list[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._metrics: MetricsEndpoint | None = None
        self._port: int | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None

    # -- building --------------------------------------------------------------------------------

    def add_service(
        self, add_fn: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str
    ) -> None:
        """Add a servicer: ``add_fn`` is the generated ``add_<Svc>Servicer_to_server``."""
        if self._server is not None:
            raise RuntimeError("add_service after start()")
        self._services.append((add_fn, servicer, full_name))

    def on_stop(self, cb: Callable[[], Awaitable[None]]) -> None:
        """Run ``cb`` after the drain on stop (close pools, channels), in registration order."""
        self._on_stop.append(cb)

    @property
    def service_names(self) -> list[str]:
        return [name for _, _, name in self._services]

    @property
    def health(self) -> HealthServicer:
        return self._health

    def _options(self) -> list[tuple[str, Any]]:
        s = self.settings
        return [
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.max_receive_message_length", s.max_receive_message_bytes or s.max_message_bytes),
            ("grpc.max_connection_age_ms", int(s.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max(s.grace_seconds, 1.0) * 1000)),
            # accept the keepalive pings of recsys_core.client channels (every 30 s during calls)
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.so_reuseport", 0),
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> int:
        """Build, bind and start; health is NOT_SERVING until ``set_serving(True)``. Returns the port."""
        if self._server is not None:
            raise RuntimeError("server already started")
        if _managed_logging:
            logs.setup_logging(self.service_name, self.settings.log_level, self.settings.log_json)
        self._stopped = asyncio.Event()
        server = grpc.aio.server(
            interceptors=[KitServerInterceptor(self.service_name)],
            options=self._options(),
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
        )
        for add_fn, servicer, _ in self._services:
            add_fn(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for name in ("", *self.service_names):
            self._health.set_now(name, NOT_SERVING)
        self._health.set_now(LIVENESS_SERVICE, SERVING)
        enable_reflection([*self.service_names, HEALTH_SERVICE], server)

        address = _address(self.settings.host, self.settings.port)
        credentials = server_credentials(self.settings)
        try:
            if credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot bind gRPC {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot bind gRPC {address}")
        if self.settings.metrics_port is not None:
            try:
                self._metrics = MetricsEndpoint(self.settings.host, self.settings.metrics_port)
            except OSError as exc:
                raise OSError(
                    f"cannot bind metrics {self.settings.host}:{self.settings.metrics_port}: {exc}"
                ) from exc
        await server.start()
        self._server = server
        self._port = port
        self._memory = MemoryReturner(self.service_name, self.settings.memory_trim_interval_s)
        self._memory.start()
        tls = "plaintext"
        if self.settings.tls_enabled:
            tls = "mutual TLS" if self.settings.tls_client_ca_file is not None else "TLS"
        log.info(
            "%s listening on %s (%s, metrics %s)",
            self.service_name,
            _address(self.settings.host, port),
            tls,
            self.metrics_port if self.metrics_port is not None else "off",
            extra={
                "port": port,
                "metrics_port": self.metrics_port,
                "services": self.service_names,
                "tls": tls,
            },
        )
        return port

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def metrics_port(self) -> int | None:
        return self._metrics.port if self._metrics is not None else None

    @property
    def started(self) -> bool:
        return self._server is not None

    def set_serving(self, serving: bool) -> None:
        """Health SERVING/NOT_SERVING for "" and every added service (ignored once stopping)."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.service_names):
            self._health.set_now(name, status)
        log.info("health %s", "SERVING" if serving else "NOT_SERVING")

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, stop accepting calls and let in-flight ones finish (``grace`` seconds, default
        ``settings.grace_seconds``), then the ``on_stop`` callbacks. Idempotent; concurrent calls wait
        for the same stop."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(
                self._stop(self.settings.grace_seconds if grace is None else grace)
            )
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float) -> None:
        log.info("stopping (grace %.1fs)", grace)
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            if self.settings.shutdown_delay_seconds > 0:
                await asyncio.sleep(self.settings.shutdown_delay_seconds)
            await self._server.stop(grace)
        if self._memory is not None:
            await self._memory.stop()
        await run_on_stop(self._on_stop)
        if tracing.enabled():
            await asyncio.to_thread(tracing.flush)
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.close)
            self._metrics = None
        if self._stopped is not None:
            self._stopped.set()
        log.info("stopped")

    async def wait_for_termination(self) -> None:
        """Return once ``stop()`` has finished."""
        if self._stopped is None:
            raise RuntimeError("server not started")
        await self._stopped.wait()

    async def wait_for_signal(self) -> None:
        """Stop gracefully on SIGTERM or SIGINT (or return when ``stop()`` is called elsewhere)."""
        if self._stopped is None:
            raise RuntimeError("server not started")
        await wait_for_signal(self.stop, self._stopped)


async def run_on_stop(callbacks: list[Callable[[], Awaitable[None]]]) -> None:
    """The ``on_stop`` callbacks of a server front, in order; a failure is logged, not raised."""
    for cb in callbacks:
        try:
            await cb()
        except Exception:
            log.exception("on_stop callback %r failed", cb)


async def wait_for_signal(stop: Callable[[], Awaitable[None]], stopped: asyncio.Event) -> None:
    """Until SIGTERM/SIGINT (then ``await stop()``) or until ``stopped`` is set elsewhere.

    One home for the signal handling of every server front (gRPC here, the web's HTTP server)."""
    loop = asyncio.get_running_loop()
    received = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)

    def handler(signum: int) -> None:
        if received.is_set():
            log.warning("signal %s again: already stopping", signal.Signals(signum).name)
            return
        log.info("signal %s: graceful stop", signal.Signals(signum).name)
        received.set()

    for sig in signals:
        loop.add_signal_handler(sig, handler, sig)
    try:
        waiters = [asyncio.ensure_future(received.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        await stop()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


_managed_logging = False


def loop_factory(service: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``RECSYS_<SERVICE>_EVENT_LOOP`` names (settings.LoopSettings): uvloop's
    ``new_event_loop``, or None for asyncio's own. "auto" takes uvloop when it imports; "uvloop"
    without it installed is a :class:`SettingsError`."""
    cls = type(
        f"{service.title()}LoopSettings",
        (LoopSettings,),
        {"model_config": SettingsConfigDict(env_prefix=f"RECSYS_{service.upper()}_", extra="ignore")},
    )
    choice: EventLoop = load_settings(cls).event_loop
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError(
                f"RECSYS_{service.upper()}_EVENT_LOOP=uvloop but uvloop is not installed "
                "(pip install uvloop, or set it to auto or asyncio)",
                [f"RECSYS_{service.upper()}_EVENT_LOOP"],
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Callable[[], Awaitable[None]], *, service: str = "recsys") -> None:
    """Entry point for ``__main__``: JSON logging, ``main()`` on the event loop the settings name
    (:func:`loop_factory`), clean exit codes.

    ``Server.start`` then re-applies logging with the server's name, level and format from its
    settings. A :class:`SettingsError` exits with status 2 and the message (no traceback).
    """
    global _managed_logging
    _managed_logging = True
    logs.setup_logging(service)
    try:
        with asyncio.Runner(loop_factory=loop_factory(service)) as runner:
            runner.run(main())  # type: ignore[arg-type]
    except SettingsError as exc:
        logging.getLogger("recsys.settings").critical(str(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


__all__ = [
    "NOT_SERVING",
    "SERVING",
    "HealthServicer",
    "Server",
    "run",
    "run_on_stop",
    "server_credentials",
    "wait_for_signal",
]
