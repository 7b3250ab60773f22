"""The embedder's gRPC server: kit Server + Embedder servicer + model lifecycle.

Health is NOT_SERVING until the first model is loaded and warmed up. A model
that cannot load at start stops the process (non-zero exit); on ``Reload`` or
the file watch a broken one is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from recsys.embedder.v1 import embedder_pb2_grpc
from recsys_core.errors import RecsysError
from recsys_core.server import Server

from recsys_embedder.service import EmbedderService, ModelLoader
from recsys_embedder.servicer import SERVICE_NAME, EmbedderServicer
from recsys_embedder.settings import EmbedderSettings

log = logging.getLogger(__name__)


def build_service(settings: EmbedderSettings, loader: ModelLoader | None = None) -> EmbedderService:
    if loader is None:
        from recsys_embedder.backends.loader import ArtifactLoader  # imports torch

        loader = ArtifactLoader(
            settings.artifact_dir,
            backend=settings.backend,
            device=settings.device,
            triton_url=settings.triton_url,
            triton_model_name=settings.triton_model_name,
            triton_timeout_s=settings.triton_timeout_s,
        )
    return EmbedderService(
        loader,
        batch_max_size=settings.batch_max_size,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        batch_max_queue=settings.batch_max_queue,
        batch_max_concurrency=settings.batch_max_concurrency,
        max_history=settings.max_history,
    )


def build_server(settings: EmbedderSettings, service: EmbedderService) -> Server:
    server = Server(settings, "embedder")
    server.add_service(
        embedder_pb2_grpc.add_EmbedderServicer_to_server, EmbedderServicer(service), SERVICE_NAME
    )
    server.on_stop(service.close)
    return server


async def start(
    settings: EmbedderSettings,
    loader: ModelLoader | None = None,
    *,
    on_listening: Callable[[Server], None] | None = None,
) -> tuple[Server, EmbedderService, asyncio.Task[None] | None]:
    """Start listening (NOT_SERVING), load the model, then SERVING; the file-watch task if enabled.

    ``on_listening(server)`` is called once the port is bound, before the model loads (tests).
    """
    service = build_service(settings, loader)
    server = build_server(settings, service)
    await server.start()
    if on_listening is not None:
        on_listening(server)
    try:
        await service.load(settings.artifact_version)
    except BaseException:
        await server.stop(0)
        raise
    server.set_serving(True)
    watch: asyncio.Task[None] | None = None
    if settings.watch_interval_s > 0 and not settings.artifact_version:
        watch = asyncio.get_running_loop().create_task(service.watch(settings.watch_interval_s))

        async def stop_watch() -> None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

        server.on_stop(stop_watch)
    return server, service, watch


async def serve(settings: EmbedderSettings) -> None:
    try:
        server, _service, _watch = await start(settings)
    except RecsysError as exc:  # no model: nothing to serve
        log.critical("cannot start: %s", exc.message)
        raise SystemExit(1) from None
    await server.wait_for_signal()
