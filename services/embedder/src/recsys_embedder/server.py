"""The embedder's gRPC server: kit Server + Embedder servicer + model lifecycle.

Health is NOT_SERVING until the first model is loaded and warmed up. A model
that cannot load at start stops the process (non-zero exit); on ``Reload`` or
the file watch a broken one is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging

from recsys.embedder.v1 import embedder_pb2_grpc
from recsys_core.app import App
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
            triton_fallback=settings.triton_fallback,
            triton_check_interval_s=settings.triton_check_interval_s,
        )
    return EmbedderService(
        loader,
        batch_max_size=settings.batch_max_size,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        batch_max_queue=settings.batch_max_queue,
        batch_max_concurrency=settings.batch_max_concurrency,
        max_history=settings.max_history,
    )


class EmbedderApp(App[Server]):
    """The embedder app: ``start()`` binds (NOT_SERVING), loads the model, then SERVING; a model
    that cannot load at start fails ``start()`` (there is nothing to serve without one)."""

    dependency = "model"
    connect_in_start = True

    def __init__(self, settings: EmbedderSettings, loader: ModelLoader | None = None) -> None:
        super().__init__(settings, "embedder", check_interval_s=0)
        self.settings: EmbedderSettings = settings
        self.service = build_service(settings, loader)
        self.server.add_service(
            embedder_pb2_grpc.add_EmbedderServicer_to_server, EmbedderServicer(self.service), SERVICE_NAME
        )
        #: the file watch that switches to a new latest artifact (None when off or pinned)
        self.watch_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.service.load(self.settings.artifact_version)

    async def connected(self) -> None:
        s = self.settings
        if s.watch_interval_s > 0 and not s.artifact_version:
            self.watch_task = self.spawn(self.service.watch(s.watch_interval_s), name="embedder-watch")

    async def close(self) -> None:
        await self.service.close()


async def serve(settings: EmbedderSettings) -> None:
    try:
        await EmbedderApp(settings).serve()
    except RecsysError as exc:  # no model: nothing to serve
        log.critical("cannot start: %s", exc.message)
        raise SystemExit(1) from None
