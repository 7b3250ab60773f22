"""Milvus behind the service's `VectorStore` protocol: the only importer of pymilvus.

One code path for both back ends: a URI ending in ``.db`` is Milvus Lite (pymilvus starts
an in-process Lite gRPC server for that data dir), anything else (``http://host:19530``) a
Milvus standalone or cluster server. Every call is a blocking pymilvus call run on a small
thread pool, with a per-call timeout so pymilvus' own retry loop stays bounded.

Driver errors are translated here: a server that cannot be reached (or times out) becomes
`DependencyUnavailable("milvus", ...)` and drops the client so the next call reconnects
(recovery without a restart); anything else propagates (logged and returned as INTERNAL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException
from recsys_core.errors import DependencyUnavailable, NotFound
from recsys_core.validation import GENRE_MAX_CHARS, MAX_GENRES

from recsys_retriever.exact import ExactIndex
from recsys_retriever.service import CollectionStats, IndexConfig, Item, RawHits

log = logging.getLogger(__name__)

T = TypeVar("T")

PK = "movie_id"
VECTOR = "vector"
YEAR = "year"
GENRES = "genres"
METRIC = "IP"
# pymilvus' "Fail connecting to server" code, and gRPC codes that mean "not reachable now".
_CONNECT_FAILED = 2
_UNAVAILABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_UNAVAILABLE_WORDS = (
    "fail connecting",
    "unavailable",
    "deadline exceeded",
    "connection refused",
    "timeout",
    "closed channel",  # a call racing with a reconnect
)


def _is_missing_collection(exc: MilvusException) -> bool:
    msg = str(exc.message).lower()
    return exc.code == 100 or ("collection" in msg and ("not found" in msg or "not exist" in msg))


@dataclass(frozen=True)
class StoreConfig:
    uri: str
    token: str | None = None
    timeout_s: float = 10.0
    threads: int = 4
    upsert_chunk: int = 1000
    #: Milvus Lite only: keep each searched collection's rows in memory and search them exactly
    #: with numpy (recsys_retriever.exact) when they fit in this many MiB; 0 = always ask Lite
    lite_exact_cache_mb: int = 0


def is_lite_uri(uri: str) -> bool:
    return uri.endswith(".db")


class MilvusStore:
    """`VectorStore` over pymilvus `MilvusClient` (Lite file or server URI)."""

    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        self.backend = "lite" if is_lite_uri(config.uri) else "server"
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="milvus")
        # Lite's exact in-memory copies (exact.py): name -> index, or None when too large; a
        # write bumps the name's generation, so a copy read before it is never kept after it.
        self._exact: dict[str, ExactIndex | None] = {}
        self._exact_gen: Counter[str] = Counter()
        self._exact_locks: dict[str, threading.Lock] = {}
        self._exact_on = self.backend == "lite" and config.lite_exact_cache_mb > 0

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> MilvusClient:
        with self._lock:
            if self._client is not None:
                return self._client
            uri = self._config.uri
            if is_lite_uri(uri):
                import importlib.util

                if importlib.util.find_spec("milvus_lite") is None:
                    raise RuntimeError(
                        f"{uri} needs Milvus Lite, which is not installed: "
                        "`pip install 'recsys-retriever[embedded]'`, "
                        "or set RECSYS_RETRIEVER_MILVUS_URI to a Milvus server"
                    )
                os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
            kwargs: dict[str, Any] = {"timeout": self._config.timeout_s, "dedicated": True}
            if self._config.token:
                kwargs["token"] = self._config.token
            self._client = MilvusClient(uri=uri, **kwargs)
            return self._client

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken channel may fail; nothing to do
                log.debug("closing milvus client failed", exc_info=True)

    def _is_unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, grpc.RpcError):
            return exc.code() in _UNAVAILABLE_GRPC
        if isinstance(exc, MilvusException):
            code = exc.code
            if code in _UNAVAILABLE_GRPC or code == _CONNECT_FAILED:
                return True
            cause = exc.__cause__
            if isinstance(cause, grpc.RpcError) and cause.code() in _UNAVAILABLE_GRPC:
                return True
            msg = str(exc.message).lower()
            return any(w in msg for w in _UNAVAILABLE_WORDS) and "collection" not in msg
        return False

    def _run_sync(self, fn: Callable[[MilvusClient], T]) -> T:
        try:
            client = self._connect()
            return fn(client)
        except Exception as exc:
            if self._is_unavailable(exc):
                self._drop_client()
                raise DependencyUnavailable("milvus", f"Milvus at {self._safe_uri()} is unavailable") from exc
            if isinstance(exc, MilvusException) and _is_missing_collection(exc):
                raise NotFound("the version's collection does not exist (dropped meanwhile?)") from exc
            raise

    async def _run(self, fn: Callable[[MilvusClient], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_sync, fn)

    def _safe_uri(self) -> str:
        uri = self._config.uri
        if "@" in uri:  # never log credentials embedded in a URI
            scheme, _, rest = uri.partition("://")
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return uri

    @property
    def _t(self) -> float:
        return self._config.timeout_s

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Open the client and make every collection loaded (a reopened Lite dir starts released)."""

        def go(c: MilvusClient) -> None:
            for name in c.list_collections(timeout=self._t):
                self._ensure_loaded(c, name)

        await self._run(go)

    async def ping(self) -> None:
        await self._run(lambda c: c.list_collections(timeout=self._t))

    async def close(self) -> None:
        self._drop_client()
        if is_lite_uri(self._config.uri):
            try:
                from milvus_lite.server_manager import server_manager_instance

                await asyncio.get_running_loop().run_in_executor(
                    self._pool, server_manager_instance.release_server, self._config.uri
                )
            except ImportError:  # pragma: no cover - milvus-lite is a dependency
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _ensure_loaded(self, c: MilvusClient, name: str) -> None:
        state = c.get_load_state(name, timeout=self._t).get("state")
        if "Loaded" not in str(state):
            c.load_collection(name, timeout=self._t)

    # ------------------------------------------------------------------ collections
    async def list_collections(self) -> list[str]:
        return await self._run(lambda c: list(c.list_collections(timeout=self._t)))

    async def create_collection(self, name: str, dimension: int, index: IndexConfig) -> None:
        def go(c: MilvusClient) -> None:
            if c.has_collection(name, timeout=self._t):
                return
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(PK, DataType.INT64, is_primary=True)
            schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dimension)
            schema.add_field(YEAR, DataType.INT32)
            schema.add_field(
                GENRES,
                DataType.ARRAY,
                element_type=DataType.VARCHAR,
                max_capacity=MAX_GENRES,
                max_length=GENRE_MAX_CHARS,
            )
            params = c.prepare_index_params()
            build: dict[str, Any] = {}
            if index.index_type == "HNSW":
                build = {"M": index.hnsw_m, "efConstruction": index.hnsw_ef_construction}
            params.add_index(field_name=VECTOR, index_type=index.index_type, metric_type=METRIC, params=build)
            c.create_collection(name, schema=schema, index_params=params, timeout=self._t)
            self._ensure_loaded(c, name)

        await self._run(go)

    async def drop_collection(self, name: str) -> None:
        self._forget(name)
        try:
            await self._run(lambda c: c.drop_collection(name, timeout=self._t))
        finally:
            self._forget(name)

    # ------------------------------------------------------------------ Lite's exact copies
    def _forget(self, name: str) -> None:
        """Drop the in-memory copy of ``name`` (before and after every write to it)."""
        with self._lock:
            self._exact_gen[name] += 1
            self._exact.pop(name, None)

    def _exact_index(self, c: MilvusClient, name: str) -> ExactIndex | None:
        """The collection's in-memory copy, built from Lite on first use (None: too large)."""
        with self._lock:
            if name in self._exact:
                return self._exact[name]
            lock = self._exact_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                if name in self._exact:
                    return self._exact[name]
                gen = self._exact_gen[name]
            built = self._read_all(c, name)
            with self._lock:
                if self._exact_gen[name] == gen:  # no write since the read began
                    self._exact[name] = built
            return built

    def _read_all(self, c: MilvusClient, name: str) -> ExactIndex | None:
        started = time.perf_counter()
        count = self._count(c, name)
        desc = c.describe_collection(name, timeout=self._t)
        dim = next(int(f["params"]["dim"]) for f in desc["fields"] if f["name"] == VECTOR)
        if count * dim * 4 > self._config.lite_exact_cache_mb * 1024 * 1024:
            log.info(
                "%s: %d vectors of dimension %d exceed LITE_EXACT_CACHE_MB; searched in Lite",
                name,
                count,
                dim,
            )
            return None
        rows: list[dict[str, Any]] = []
        page = 10_000
        while len(rows) < count:
            got = c.query(
                name,
                filter=f"{PK} >= 0",
                output_fields=[PK, VECTOR, YEAR, GENRES],
                limit=page,
                offset=len(rows),
                timeout=self._t,
            )
            if not got:
                break
            rows.extend(got)
        ids = np.fromiter((int(r[PK]) for r in rows), dtype=np.int64, count=len(rows))
        if len(rows) != count or np.unique(ids).shape[0] != len(rows):
            log.warning("%s: reading its rows gave %d of %d; searched in Lite", name, len(rows), count)
            return None
        vectors = np.asarray([r[VECTOR] for r in rows], dtype=np.float32).reshape(len(rows), dim)
        years = np.fromiter((int(r.get(YEAR) or 0) for r in rows), dtype=np.int64, count=len(rows))
        genres = [tuple(str(g) for g in (r.get(GENRES) or ())) for r in rows]
        index = ExactIndex(ids, vectors, years, genres)
        log.info(
            "%s: %d vectors held for exact search (%.1f MB, read in %.2f s)",
            name,
            len(index),
            index.nbytes / 1e6,
            time.perf_counter() - started,
        )
        return index

    async def collection_stats(self, name: str) -> CollectionStats:
        def go(c: MilvusClient) -> CollectionStats:
            desc = c.describe_collection(name, timeout=self._t)
            dim = 0
            for f in desc.get("fields", []):
                if f.get("name") == VECTOR:
                    dim = int(f.get("params", {}).get("dim", 0))
            index_type, metric, pending, state = "", "", 0, "Finished"
            for index_name in c.list_indexes(name, timeout=self._t):
                info = c.describe_index(name, index_name, timeout=self._t)
                if info.get("field_name") == VECTOR:
                    index_type = str(info.get("index_type", ""))
                    metric = str(info.get("metric_type", ""))
                    pending = int(info.get("pending_index_rows", 0) or 0)
                    state = str(info.get("state", "Finished"))
            count = self._count(c, name)
            ready = pending == 0 and "Fail" not in state
            return CollectionStats(
                dimension=dim, count=count, metric=metric, index_type=index_type, index_ready=ready
            )

        return await self._run(go)

    def _count(self, c: MilvusClient, name: str) -> int:
        rows = c.query(name, filter="", output_fields=["count(*)"], timeout=self._t)
        return int(rows[0]["count(*)"]) if rows else 0

    async def count(self, name: str) -> int:
        return await self._run(lambda c: self._count(c, name))

    # ------------------------------------------------------------------ aliases
    async def get_alias(self, alias: str) -> str | None:
        def go(c: MilvusClient) -> str | None:
            if alias not in c.list_aliases(timeout=self._t).get("aliases", []):
                return None
            return str(c.describe_alias(alias, timeout=self._t)["collection_name"])

        return await self._run(go)

    async def set_alias(self, alias: str, collection: str) -> None:
        def go(c: MilvusClient) -> None:
            if alias in c.list_aliases(timeout=self._t).get("aliases", []):
                c.alter_alias(collection, alias, timeout=self._t)
            else:
                c.create_alias(collection, alias, timeout=self._t)

        await self._run(go)

    # ------------------------------------------------------------------ data
    async def upsert(self, name: str, items: Sequence[Item]) -> None:
        chunk = self._config.upsert_chunk

        def go(c: MilvusClient) -> None:
            self._forget(name)
            for start in range(0, len(items), chunk):
                rows = [
                    {PK: it.movie_id, VECTOR: it.vector.tolist(), YEAR: it.year, GENRES: list(it.genres)}
                    for it in items[start : start + chunk]
                ]
                c.upsert(name, rows, timeout=self._t)
            c.flush(name, timeout=self._t)

        try:
            await self._run(go)
        finally:
            self._forget(name)

    async def existing_ids(self, name: str, ids: Sequence[int]) -> list[int]:
        def go(c: MilvusClient) -> list[int]:
            found: list[int] = []
            for start in range(0, len(ids), 1000):
                part = [int(i) for i in ids[start : start + 1000]]
                rows = c.query(name, filter=f"{PK} in {part}", output_fields=[PK], timeout=self._t)
                found.extend(int(r[PK]) for r in rows)
            return found

        return await self._run(go)

    async def delete(self, name: str, ids: Sequence[int]) -> None:
        def go(c: MilvusClient) -> None:
            self._forget(name)
            c.delete(name, ids=[int(i) for i in ids], timeout=self._t)
            c.flush(name, timeout=self._t)

        try:
            await self._run(go)
        finally:
            self._forget(name)

    async def get(self, name: str, ids: Sequence[int]) -> list[Item]:
        def go(c: MilvusClient) -> list[Item]:
            fields = [VECTOR, YEAR, GENRES]
            rows = c.get(name, ids=[int(i) for i in ids], output_fields=fields, timeout=self._t)
            return [
                Item(
                    movie_id=int(r[PK]),
                    vector=np.asarray(r[VECTOR], dtype=np.float32),
                    year=int(r.get(YEAR) or 0),
                    genres=tuple(str(g) for g in (r.get(GENRES) or ())),
                )
                for r in rows
            ]

        return await self._run(go)

    async def search(
        self, name: str, vectors: np.ndarray, limit: int, expr: str, index: IndexConfig
    ) -> list[RawHits]:
        params: dict[str, Any] = {"metric_type": METRIC}
        if index.index_type == "HNSW":
            params["params"] = {"ef": max(index.search_ef, limit)}
        data = [row.tolist() for row in np.asarray(vectors, dtype=np.float32)]

        def go(c: MilvusClient) -> list[RawHits]:
            if self._exact_on:
                exact = self._exact_index(c, name)
                if exact is not None:
                    hits = exact.search(np.asarray(vectors, dtype=np.float32), limit, expr)
                    if hits is not None:
                        return hits
            res = c.search(
                name,
                data=data,
                limit=limit,
                filter=expr,
                output_fields=[PK],  # Lite returns every field (vectors too) when this is empty
                search_params=params,
                timeout=self._t,
            )
            out: list[RawHits] = []
            for hits in res:
                ids = np.fromiter((int(h[PK]) for h in hits), dtype=np.int64, count=len(hits))
                scores = np.fromiter((float(h["distance"]) for h in hits), dtype=np.float32, count=len(hits))
                out.append(RawHits(ids, scores))
            return out

        return await self._run(go)
