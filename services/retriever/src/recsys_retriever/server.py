"""The retriever server: kit Server + servicer + the Milvus connection lifecycle.

Health is NOT_SERVING until Milvus is reachable and every collection is loaded; a background task
keeps retrying the connection with exponential backoff (the process never exits for it), then
pings Milvus every ``health_check_interval_s``: a failed ping turns health NOT_SERVING (calls
meanwhile fail UNAVAILABLE from the store), and the first good ping after that reconnects,
reloads the collections and turns it SERVING again: recovery without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from recsys.retriever.v1 import retriever_pb2_grpc
from recsys_core.server import Server

from recsys_retriever.service import IndexConfig, RetrieverService, VectorStore
from recsys_retriever.servicer import SERVICE_NAME, RetrieverServicer
from recsys_retriever.settings import RetrieverSettings

log = logging.getLogger("recsys.retriever")


def build_store(settings: RetrieverSettings) -> VectorStore:
    from recsys_retriever.store import MilvusStore, StoreConfig

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusStore(
        StoreConfig(
            uri=settings.resolved_uri,
            token=token,
            timeout_s=settings.milvus_timeout_s,
            threads=settings.milvus_threads,
            lite_exact_cache_mb=settings.lite_exact_cache_mb,
        )
    )


def build_service(settings: RetrieverSettings, store: VectorStore | None = None) -> RetrieverService:
    return RetrieverService(
        store if store is not None else build_store(settings),
        prefix=settings.collection_prefix,
        index=IndexConfig(
            index_type=settings.resolved_index_type,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            search_ef=settings.search_ef,
        ),
        batch_max_size=settings.batch_max_size,
        batch_max_wait_s=settings.batch_max_wait_ms / 1000.0,
        batch_max_inflight=settings.batch_max_inflight,
        exclude_overfetch=settings.exclude_overfetch,
        exclude_in_filter_max=settings.exclude_in_filter_max,
        alias_refresh_s=settings.alias_refresh_s,
        upsert_max_items=settings.upsert_max_items,
        max_limit=settings.search_max_limit,
    )


class RetrieverApp:
    """Server + service + the task that drives health from Milvus' reachability."""

    def __init__(self, settings: RetrieverSettings, store: VectorStore | None = None) -> None:
        self.settings = settings
        self.service = build_service(settings, store)
        self.server = Server(settings, "retriever")
        self.server.add_service(
            retriever_pb2_grpc.add_RetrieverServicer_to_server, RetrieverServicer(self.service), SERVICE_NAME
        )
        self.server.on_stop(self.close)
        self.ready = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start (NOT_SERVING); Milvus is connected in the background. Returns the port."""
        port = await self.server.start()
        self._watch = asyncio.create_task(self._watch_milvus(), name="retriever-milvus-watch")
        return port

    async def _connect(self) -> bool:
        try:
            await self.service.start()
        except Exception as exc:
            log.warning("Milvus not ready: %s", exc)
            return False
        return True

    async def _watch_milvus(self) -> None:
        s = self.settings
        delay = s.connect_retry_initial_s
        while not await self._connect():
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.connect_retry_max_s)
        log.info("Milvus ready (%s backend)", self.service.store.backend)
        self.server.set_serving(True)
        self.ready.set()
        if s.health_check_interval_s <= 0:
            return
        healthy = True
        while True:
            await asyncio.sleep(
                s.health_check_interval_s if healthy else min(delay, s.health_check_interval_s)
            )
            if healthy:
                try:
                    await self.service.check()
                    continue
                except Exception as exc:
                    log.warning("Milvus ping failed: %s", exc)
                    healthy = False
                    delay = s.connect_retry_initial_s
                    self.server.set_serving(False)
                    continue
            if await self._connect():  # reconnect and reload collections (a restarted Milvus)
                log.info("Milvus reachable again")
                healthy = True
                self.server.set_serving(True)
            else:
                delay = min(delay * 2, s.connect_retry_max_s)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.service.close()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
