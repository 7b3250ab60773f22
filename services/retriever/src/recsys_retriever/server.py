"""The retriever server: kit Server + servicer + the Milvus connection lifecycle.

Health is NOT_SERVING until Milvus is reachable and every collection is loaded; a background task
keeps retrying the connection with exponential backoff (the process never exits for it), then
pings Milvus every ``health_check_interval_s``: a failed ping turns health NOT_SERVING (calls
meanwhile fail UNAVAILABLE from the store), and the first good ping after that reconnects,
reloads the collections and turns it SERVING again: recovery without a restart.
"""

from __future__ import annotations

import logging

from recsys.retriever.v1 import retriever_pb2_grpc
from recsys_core.app import App
from recsys_core.server import Server

from recsys_retriever.service import CapacityLimit, IndexConfig, RetrieverService, VectorStore
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
        capacity=CapacityLimit(settings.lite_max_vectors, settings.lite_capacity_advice)
        if settings.is_lite
        else None,
    )


class RetrieverApp(App[Server]):
    """The retriever app: server + service; health follows Milvus' reachability."""

    dependency = "Milvus"

    def __init__(self, settings: RetrieverSettings, store: VectorStore | None = None) -> None:
        super().__init__(settings, "retriever")
        self.settings: RetrieverSettings = settings
        self.service = build_service(settings, store)
        self.server.add_service(
            retriever_pb2_grpc.add_RetrieverServicer_to_server, RetrieverServicer(self.service), SERVICE_NAME
        )

    async def connect(self) -> None:
        """(Re)connect and load every collection (also after a restarted Milvus)."""
        await self.service.start()

    async def connected(self) -> None:
        log.info("Milvus ready (%s backend)", self.service.store.backend)

    async def check(self) -> bool:
        await self.service.check()  # raises when Milvus is unreachable
        return True

    async def close(self) -> None:
        await self.service.close()
