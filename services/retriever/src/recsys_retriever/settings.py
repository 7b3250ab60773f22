"""Retriever settings (environment ``RECSYS_RETRIEVER_*``), on top of the kit's server settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from recsys_core.app import DependencySettings
from recsys_core.settings import SettingsConfigDict

IndexType = Literal["auto", "FLAT", "AUTOINDEX", "HNSW"]


class RetrieverSettings(DependencySettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_RETRIEVER_", extra="forbid")

    #: the port `recsys up` and the gateway's default retriever_target use
    port: int = Field(default=50054, ge=0, le=65535)

    #: GetVectors of 1000 vectors of dimension 4096, or an Upsert message as large, is 16 MiB
    max_message_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    #: Milvus URI. None = Milvus Lite in ``data_dir/milvus.db`` (embedded, this process owns it);
    #: ``http://host:19530`` = a Milvus standalone or cluster server.
    milvus_uri: str | None = None
    #: token for a Milvus server ("user:password" or an API key); None = none
    milvus_token: SecretStr | None = None
    #: where Milvus Lite keeps its data (used only without ``milvus_uri``)
    data_dir: Path = Path("./var/retriever")
    #: timeout of each Milvus call (bounds pymilvus' own retries)
    milvus_timeout_s: float = Field(default=10.0, gt=0)
    #: Milvus Lite only (this process owns the data dir): hold each searched collection's rows in
    #: memory and search them exactly with numpy when they fit in this many MiB (recsys_retriever
    #: .exact; the copy is dropped on every write and read again on the next search); 0 = off
    lite_exact_cache_mb: int = Field(default=256, ge=0, le=65_536)
    #: threads running the blocking pymilvus calls
    milvus_threads: int = Field(default=4, ge=1, le=64)
    #: collection and alias name prefix: ``{prefix}{space}__{version}``, alias ``{prefix}{space}``
    collection_prefix: str = Field(default="recsys_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    #: index of new collections: auto = FLAT (exact) on Lite, HNSW on a server
    index_type: IndexType = "auto"
    hnsw_m: int = Field(default=16, ge=2, le=2048)
    hnsw_ef_construction: int = Field(default=200, ge=1)
    #: HNSW search breadth (raised to the search limit when smaller)
    search_ef: int = Field(default=128, ge=1)
    #: micro-batching of concurrent searches (see service.py); wait 0 = off
    batch_max_size: int = Field(default=64, ge=1, le=4096)
    batch_max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    #: merged Milvus calls running at once (0 = no limit); while all run, due batches keep growing
    batch_max_inflight: int = Field(default=2, ge=0, le=256)
    #: extra hits fetched for queries with exclusions before the exact fallback is used
    exclude_overfetch: int = Field(default=64, ge=0, le=10_000)
    #: a lone query (no concurrent search to batch with) with at most this many excluded ids
    #: has them in the Milvus filter and asks for exactly k (0 = always over-fetch)
    exclude_in_filter_max: int = Field(default=1000, ge=0, le=16_384)
    #: largest search limit asked of Milvus (a server caps topk at 16384); past it the exclusion
    #: list goes into the filter expression
    search_max_limit: int = Field(default=16_384, ge=1, le=16_384)
    #: how often the serving alias is re-read (other replicas may have swapped it)
    alias_refresh_s: float = Field(default=5.0, gt=0)
    #: most items one Upsert call may carry (it is buffered whole before writing; a long call is
    #: also cut by the server's max_connection_age_s, so load large sets in several calls)
    upsert_max_items: int = Field(default=50_000, ge=1)
    #: Milvus Lite only: most vectors one collection may hold. Upsert past it and ActivateVersion of
    #: a larger collection fail FAILED_PRECONDITION (Lite searches in Python: ~2 s a query at 100k
    #: FLAT, ~13 s at 1M HNSW on 2 cores, services/retriever/README.md); use a Milvus server
    #: (``milvus_uri``) for more. Ignored with a server.
    lite_max_vectors: int = Field(default=200_000, ge=1)
    # connect_retry_initial_s, connect_retry_max_s, health_check_interval_s: DependencySettings

    @property
    def lite_capacity_advice(self) -> str:
        return (
            f"set {self.env_name('milvus_uri')} to a Milvus server (http://host:19530) for a catalog "
            f"this large, or raise {self.env_name('lite_max_vectors')} (currently {self.lite_max_vectors}) "
            "and accept seconds per search"
        )

    @property
    def resolved_uri(self) -> str:
        return self.milvus_uri or str(self.data_dir / "milvus.db")

    @property
    def is_lite(self) -> bool:
        return self.resolved_uri.endswith(".db")

    @property
    def resolved_index_type(self) -> str:
        if self.index_type != "auto":
            return self.index_type
        return "FLAT" if self.is_lite else "HNSW"
