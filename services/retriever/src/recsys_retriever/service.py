"""Retriever logic: validation, versions behind an alias, exact exclusion, filters. No grpc, no driver.

Collections are named ``{prefix}{space}__{version}`` and each space has an alias ``{prefix}{space}``
naming the serving version. Searches resolve the alias (cached, refreshed every
``alias_refresh_s``) to a concrete collection and search that one, so the response can say which
version answered and an alias swap never leaves a query without a collection.

Exclusion (a user's seen movies, up to 100000 ids), exact for an exact index:
1. every query with exclusions asks for ``k + overfetch`` hits, overfetch = its number of excluded
   ids rounded up to a power of two, at most ``exclude_overfetch`` (one batched Milvus call for all
   queries sharing collection, filter and limit), and drops its excluded ids; with no more than
   ``exclude_overfetch`` excluded ids this pass alone is exact (at most |excluded| are dropped);
2. when fewer than ``k`` hits are left *and* excluded ids were among a full page of hits, that query
   is searched again alone for ``k + |excluded|`` hits (at most ``max_limit``): at most |excluded|
   of them can be dropped, so k remain whenever k exist; a page shorter than asked for means every
   matching movie came back, which is exact too;
3. only when ``k + |excluded|`` exceeds ``max_limit`` (Milvus caps topk at 16384) and a full page
   still leaves fewer than ``k``, the query is searched with ``movie_id not in [...]`` added to the
   filter expression (measured on Milvus Lite: long ``not in`` lists are parsed and evaluated in
   Python, seconds for 100k ids, so this is the last resort rather than the first).
A query whose excluded ids do not crowd its top ``k + overfetch`` is answered by step 1 alone.
Filter expressions are built only from validated ints and genre names matching a strict pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from recsys_core.batching import Batcher
from recsys_core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from recsys_core.validation import MAX_GENRES, check_genre_names, check_year, check_year_range, quote

log = logging.getLogger("recsys.retriever")

SPACES = ("pinsage", "two_tower")
DEFAULT_SPACE = "pinsage"
VERSION_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_K = 1000
MAX_QUERIES = 256
MAX_EXCLUDE = 100_000
MAX_ITEMS_PER_MESSAGE = 1000
MAX_DELETE_IDS = 10_000
MAX_GET_IDS = 1000
MIN_DIM, MAX_DIM = 2, 4096


# ---------------------------------------------------------------------------- domain types
@dataclass(frozen=True)
class IndexConfig:
    """Index to build for new collections and to search with."""

    index_type: str = "FLAT"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    search_ef: int = 128


@dataclass(frozen=True)
class CapacityLimit:
    """Most vectors one collection may hold in this back end (Milvus Lite searches in Python:
    seconds a query at 1M vectors), and the advice a refusal carries (which settings to change)."""

    max_vectors: int
    advice: str

    def refusal(self, collection: str, count: int, what: str) -> FailedPrecondition:
        return FailedPrecondition(
            f"{what} {collection} would hold {count} vectors, above the {self.max_vectors} "
            f"the embedded Milvus Lite is allowed: {self.advice}"
        )


@dataclass(frozen=True)
class CollectionStats:
    dimension: int
    count: int
    metric: str
    index_type: str
    index_ready: bool = True


@dataclass(frozen=True)
class RawHits:
    """One query's hits as the store returns them (best first)."""

    ids: np.ndarray  # int64
    scores: np.ndarray  # float32


#: what one merged Milvus call shares: (collection, filter expression, limit, index)
SearchKey = tuple[str, str, int, IndexConfig]


@dataclass
class Item:
    movie_id: int
    vector: np.ndarray  # float32 (dim,)
    year: int = 0
    genres: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    movie_id: int
    score: float


@dataclass
class Query:
    vector: Sequence[float] | np.ndarray
    exclude_ids: Sequence[int] | np.ndarray = ()


@dataclass(frozen=True)
class MovieFilter:
    genres_any: tuple[str, ...] = ()
    genres_all: tuple[str, ...] = ()
    year_min: int = 0
    year_max: int = 0


@dataclass
class UpsertChunk:
    """One Upsert stream message. ``space``/``version`` None (or "") = unset; ``dimension`` 0 = unset."""

    space: str | None = None
    version: str = ""
    dimension: int = 0
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class CollectionInfo:
    space: str
    version: str
    collection: str
    dimension: int
    count: int
    metric: str
    index_type: str
    serving: bool


@dataclass(frozen=True)
class SearchOutcome:
    results: list[list[Hit]]
    version: str


class VectorStore(Protocol):
    backend: str

    async def connect(self) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def list_collections(self) -> list[str]: ...
    async def create_collection(self, name: str, dimension: int, index: IndexConfig) -> None: ...
    async def drop_collection(self, name: str) -> None: ...
    async def collection_stats(self, name: str) -> CollectionStats: ...
    async def count(self, name: str) -> int: ...
    async def get_alias(self, alias: str) -> str | None: ...
    async def set_alias(self, alias: str, collection: str) -> None: ...
    async def upsert(self, name: str, items: Sequence[Item]) -> None: ...
    async def existing_ids(self, name: str, ids: Sequence[int]) -> list[int]: ...
    async def delete(self, name: str, ids: Sequence[int]) -> None: ...
    async def get(self, name: str, ids: Sequence[int]) -> list[Item]: ...
    async def search(
        self, name: str, vectors: np.ndarray, limit: int, expr: str, index: IndexConfig
    ) -> list[RawHits]: ...


# ---------------------------------------------------------------------------- validation helpers
def check_space(space: str | None, *, required: bool = False) -> str:
    if not space:
        if required:
            raise InvalidArgument("space is required", field="space")
        return DEFAULT_SPACE
    if space not in SPACES:
        raise InvalidArgument(f"unknown vector space {quote(space)}", field="space")
    return space


def check_version(version: str, field_name: str = "version") -> str:
    if not VERSION_RE.match(version or ""):
        raise InvalidArgument("version must be 1..64 characters of [A-Za-z0-9_]", field=field_name)
    return version


def check_genres(genres: Sequence[str], field_name: str) -> tuple[str, ...]:
    """recsys_core.validation's one genre-name rule (expression-safe: no quote or backslash can
    reach a filter expression)."""
    if any(not isinstance(g, str) for g in genres):
        raise InvalidArgument("genres must be strings", field=field_name)
    return check_genre_names(genres, field_name, MAX_GENRES)


def build_filter(flt: MovieFilter | None) -> str:
    """Milvus boolean expression for a MovieFilter ("" = none), from validated values only."""
    if flt is None:
        return ""
    parts: list[str] = []
    any_ = check_genres(flt.genres_any, "filter.genres_any")
    all_ = check_genres(flt.genres_all, "filter.genres_all")
    for name, value in (("filter.year_min", flt.year_min), ("filter.year_max", flt.year_max)):
        if not isinstance(value, int):
            raise InvalidArgument("year must be an integer (0 = no bound)", field=name)
    check_year_range(flt.year_min, flt.year_max, "filter")
    if any_:
        parts.append(f"array_contains_any(genres, {json.dumps(sorted(set(any_)))})")
    if all_:
        parts.append(f"array_contains_all(genres, {json.dumps(sorted(set(all_)))})")
    if flt.year_min:
        parts.append(f"year >= {int(flt.year_min)}")
    if flt.year_max:
        parts.append(f"year <= {int(flt.year_max)}")
    return " and ".join(parts)


def normalise(vec: Sequence[float] | np.ndarray, dim: int, field_name: str) -> np.ndarray:
    """float32 unit vector of length ``dim``; INVALID_ARGUMENT naming ``field_name`` otherwise."""
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape[0] != dim:
        raise InvalidArgument(
            f"vector has {arr.shape[0]} values, the collection's dimension is {dim}", field=field_name
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument("vector values must be finite", field=field_name)
    norm = float(np.linalg.norm(arr.astype(np.float64)))
    if norm == 0.0 or not math.isfinite(norm):
        raise InvalidArgument("vector must not be all zeros", field=field_name)
    return (arr / np.float32(norm)).astype(np.float32)


def _ids(
    values: Sequence[int] | np.ndarray, field_name: str, limit: int, *, min_count: int = 0
) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.shape[0] < min_count or arr.shape[0] > limit:
        raise InvalidArgument(f"{min_count}..{limit} ids", field=field_name)
    if arr.size and int(arr.min()) <= 0:
        raise InvalidArgument("ids must be > 0", field=field_name)
    return arr


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    order = np.lexsort((ids, -scores))[:k]  # score descending, then movie_id ascending
    return [Hit(int(ids[i]), float(scores[i])) for i in order]


# ---------------------------------------------------------------------------- the service
class RetrieverService:
    def __init__(
        self,
        store: VectorStore,
        *,
        prefix: str = "recsys_",
        index: IndexConfig | None = None,
        batch_max_size: int = 64,
        batch_max_wait_s: float = 0.002,
        batch_max_inflight: int = 2,
        exclude_overfetch: int = 64,
        exclude_in_filter_max: int = 1000,
        alias_refresh_s: float = 5.0,
        upsert_max_items: int = 50_000,
        drop_wait_s: float = 10.0,
        max_limit: int = 16_384,
        capacity: CapacityLimit | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.index = index or IndexConfig()
        self.exclude_overfetch = exclude_overfetch
        self.exclude_in_filter_max = exclude_in_filter_max
        self.alias_refresh_s = alias_refresh_s
        self.upsert_max_items = upsert_max_items
        self.drop_wait_s = drop_wait_s
        self.max_limit = max_limit
        #: most vectors a collection may hold (Milvus Lite); None = no limit (a Milvus server)
        self.capacity = capacity
        #: batching off (every search sent at once) when the wait is 0 or a batch holds one query
        self.batching = batch_max_wait_s > 0 and batch_max_size > 1
        self.batch_max_size = batch_max_size
        # Concurrent searches of one (collection, filter, limit, index) merge into one Milvus call:
        # a lone search leaves at once; behind a call in flight a batch leaves batch_max_wait_s
        # after its first search, or when full (batch_max_size queries: full batches go first),
        # once one of batch_max_inflight calls (0 = no limit) is free. A search is never split.
        self.batcher: Batcher[SearchKey, np.ndarray, list[RawHits]] = Batcher(
            self._run_merged,
            max_items=batch_max_size,
            max_in_flight=batch_max_inflight or None,
            max_wait_s=batch_max_wait_s,
            idle_send=True,
            weight=len,
            max_weight=batch_max_size,
            full_first=True,
            keep_cancelled=True,
        )
        self._serving: dict[str, tuple[str | None, float]] = {}
        self._meta: dict[str, CollectionStats] = {}
        self._inflight: Counter[str] = Counter()
        self._writing: Counter[str] = Counter()
        self._idle: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -------------------------------------------------------------- names
    def alias_name(self, space: str) -> str:
        return f"{self.prefix}{space}"

    def collection_name(self, space: str, version: str) -> str:
        return f"{self.prefix}{space}__{version}"

    def parse_collection(self, name: str) -> tuple[str, str] | None:
        for space in SPACES:
            head = f"{self.prefix}{space}__"
            if name.startswith(head) and VERSION_RE.match(name[len(head) :]):
                return space, name[len(head) :]
        return None

    def _lock(self, collection: str) -> asyncio.Lock:
        return self._locks.setdefault(collection, asyncio.Lock())

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Connect to Milvus and load collections; raises DependencyUnavailable while unreachable."""
        await self.store.connect()
        for space in SPACES:
            serving = await self._serving_collection(space, refresh=True)
            if serving is not None and self.capacity is not None:
                count = await self.store.count(serving)
                if count > self.capacity.max_vectors:  # served as before, but said loudly
                    log.warning(
                        "serving collection %s holds %d vectors, above the %d the embedded Milvus Lite "
                        "is allowed (searches take seconds; Upsert into it and ActivateVersion of it "
                        "are refused): %s",
                        serving,
                        count,
                        self.capacity.max_vectors,
                        self.capacity.advice,
                    )

    async def check(self) -> None:
        await self.store.ping()

    async def close(self) -> None:
        await self.batcher.aclose(at_once=True)
        await self.store.close()

    # -------------------------------------------------------------- lookups
    async def _serving_collection(self, space: str, *, refresh: bool = False) -> str | None:
        cached = self._serving.get(space)
        now = time.monotonic()
        if cached is not None and not refresh and now - cached[1] < self.alias_refresh_s:
            return cached[0]
        collection = await self.store.get_alias(self.alias_name(space))
        self._serving[space] = (collection, now)
        return collection

    async def _meta_of(self, collection: str, field_name: str = "version") -> CollectionStats:
        meta = self._meta.get(collection)
        if meta is None:
            if collection not in await self.store.list_collections():
                raise NotFound(f"no collection {collection}", field=field_name)
            meta = await self.store.collection_stats(collection)
            self._meta[collection] = meta
        return meta

    async def _resolve(self, space: str, version: str) -> tuple[str, str]:
        """(collection, version) for an explicit version or the serving one."""
        if version:
            check_version(version)
            collection = self.collection_name(space, version)
            try:
                await self._meta_of(collection)
            except NotFound:
                # the gateway asks for the version of the embedder's model (issue #18): vectors
                # not published yet mean the release ran out of order
                raise NotFound(
                    f"no {space} vectors of version {version} in the retriever (collection "
                    f"{collection}): publish them (python -m recsys_embedder publish) before an "
                    "embedder serves that model",
                    field="version",
                ) from None
            return collection, version
        serving = await self._serving_collection(space)
        parsed = self.parse_collection(serving) if serving else None
        if serving is None or parsed is None:
            raise FailedPrecondition(f"no serving version for space {space}")
        return serving, parsed[1]

    def _index_for(self, meta: CollectionStats) -> IndexConfig:
        return IndexConfig(
            index_type=meta.index_type or self.index.index_type,
            hnsw_m=self.index.hnsw_m,
            hnsw_ef_construction=self.index.hnsw_ef_construction,
            search_ef=self.index.search_ef,
        )

    # -------------------------------------------------------------- search
    async def _run_batch(self, key: SearchKey, vectors: np.ndarray) -> list[RawHits]:
        collection, expr, limit, index = key
        return await self.store.search(collection, vectors, limit, expr, index)

    async def _run_merged(
        self, key: SearchKey, parts: list[np.ndarray], deadlines: list[float | None]
    ) -> list[list[RawHits]]:
        """One Milvus call for the searches of a batch; each search's hits back, in order."""
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        hits = await self._run_batch(key, stacked)
        out: list[list[RawHits]] = []
        offset = 0
        for p in parts:
            out.append(hits[offset : offset + len(p)])
            offset += len(p)
        return out

    async def _search_rows(self, key: SearchKey, vectors: np.ndarray) -> list[RawHits]:
        """Search ``vectors`` (n, d) under ``key``, merged with concurrent searches; a search of
        batch_max_size queries or more (or any, with batching off) is sent at once, alone."""
        if not self.batching or len(vectors) >= self.batch_max_size:
            return await self._run_batch(key, vectors)
        return await self.batcher.submit(key, vectors)

    async def search(
        self,
        space: str | None,
        queries: Sequence[Query],
        k: int,
        flt: MovieFilter | None = None,
        version: str = "",
    ) -> SearchOutcome:
        space = check_space(space)
        if not 1 <= k <= MAX_K:
            raise InvalidArgument(f"k must be 1..{MAX_K}", field="k")
        if not 1 <= len(queries) <= MAX_QUERIES:
            raise InvalidArgument(f"1..{MAX_QUERIES} queries", field="queries")
        expr = build_filter(flt)
        excludes = [
            np.unique(_ids(q.exclude_ids, f"queries[{i}].exclude_ids", MAX_EXCLUDE))
            for i, q in enumerate(queries)
        ]
        collection, version = await self._resolve(space, version)
        self._inflight[collection] += 1
        try:
            meta = await self._meta_of(collection)
            matrix = np.stack(
                [normalise(q.vector, meta.dimension, f"queries[{i}].vector") for i, q in enumerate(queries)]
            )
            results = await self._search_exact(collection, matrix, excludes, k, expr, meta)
        finally:
            self._inflight[collection] -= 1
            if not self._inflight[collection] and collection in self._idle:
                self._idle[collection].set()
        return SearchOutcome(results, version)

    def _overfetch(self, excluded: int) -> int:
        if excluded <= 0:
            return 0
        return min(self.exclude_overfetch, 1 << (excluded - 1).bit_length())

    async def _search_exact(
        self,
        collection: str,
        matrix: np.ndarray,
        excludes: list[np.ndarray],
        k: int,
        expr: str,
        meta: CollectionStats,
    ) -> list[list[Hit]]:
        index = self._index_for(meta)
        ex0 = excludes[0]
        if len(excludes) == 1 and 0 < ex0.size <= self.exclude_in_filter_max and self.batcher.idle:
            # A lone query with no call to share: its exclusion goes into the filter and Milvus
            # returns exactly its top k (Milvus Lite's cost grows with the limit: k + overfetch
            # cost ~3 ms more than k at 1,682 vectors), instead of k + overfetch to drop from.
            not_in = f"movie_id not in {json.dumps([int(x) for x in ex0])}"
            full = f"({expr}) and {not_in}" if expr else not_in
            (hits,) = await self._search_rows((collection, full, k, index), matrix)
            keep = ~np.isin(hits.ids, ex0)  # exact already; kept as a guard
            return [_top(hits.ids[keep], hits.scores[keep], k)]
        # k plus the query's exclusions rounded up to a power of two (capped at exclude_overfetch):
        # exact in one pass for up to exclude_overfetch exclusions, and few distinct limits so
        # concurrent queries still share calls. Milvus Lite materialises every returned row in
        # Python, so a SimilarMovies (1 exclusion) asking k + 64 paid for 64 rows it dropped.
        limits = [k + self._overfetch(int(ex.size)) for ex in excludes]
        groups: dict[int, list[int]] = {}
        for i, lim in enumerate(limits):
            groups.setdefault(lim, []).append(i)
        raw: list[RawHits | None] = [None] * len(excludes)

        async def one(lim: int, rows: list[int]) -> None:
            hits = await self._search_rows((collection, expr, lim, index), matrix[rows])
            for r, h in zip(rows, hits, strict=True):
                raw[r] = h

        await asyncio.gather(*(one(lim, rows) for lim, rows in groups.items()))

        results: list[list[Hit]] = []
        retry: list[int] = []
        for i, got in enumerate(raw):
            assert got is not None
            ex = excludes[i]
            ids, scores = got.ids, got.scores
            if ex.size:
                keep = ~np.isin(ids, ex)
                crowded = not bool(keep.all())
                full_page = ids.shape[0] >= limits[i]
                ids, scores = ids[keep], scores[keep]
                if ids.shape[0] < k and crowded and full_page:
                    retry.append(i)
            results.append(_top(ids, scores, k))

        async def fallback(i: int) -> None:
            ex = excludes[i]
            limit = min(k + int(ex.size), max(self.max_limit, k))
            (hits,) = await self.store.search(collection, matrix[i : i + 1], limit, expr, index)
            keep = ~np.isin(hits.ids, ex)
            if int(keep.sum()) >= k or hits.ids.shape[0] < limit or limit == k + int(ex.size):
                results[i] = _top(hits.ids[keep], hits.scores[keep], k)
                return
            not_in = f"movie_id not in {json.dumps([int(x) for x in ex])}"
            full = f"({expr}) and {not_in}" if expr else not_in
            (hits,) = await self.store.search(collection, matrix[i : i + 1], k, full, index)
            keep = ~np.isin(hits.ids, ex)
            results[i] = _top(hits.ids[keep], hits.scores[keep], k)

        if retry:
            await asyncio.gather(*(fallback(i) for i in retry))
        return results

    # -------------------------------------------------------------- writes
    async def upsert(self, chunks: AsyncIterator[UpsertChunk]) -> tuple[int, int]:
        """Consume the whole stream, validating as it comes; write only when all of it is valid."""
        space: str | None = None
        version = ""
        collection = ""
        dim = 0
        items: dict[int, Item] = {}
        async for chunk in chunks:
            if space is None:
                space = check_space(chunk.space, required=True)
                version = check_version(chunk.version)
                collection = self.collection_name(space, version)
                if collection in await self.store.list_collections():
                    dim = (await self._meta_of(collection)).dimension
                    if chunk.dimension and chunk.dimension != dim:
                        raise InvalidArgument(
                            f"version {version} has dimension {dim}, not {chunk.dimension}", field="dimension"
                        )
                else:
                    if not MIN_DIM <= chunk.dimension <= MAX_DIM:
                        raise InvalidArgument(
                            f"dimension {MIN_DIM}..{MAX_DIM} is required for a new version", field="dimension"
                        )
                    dim = chunk.dimension
            else:
                if chunk.space and chunk.space != space:
                    raise InvalidArgument("space differs from the first message", field="space")
                if chunk.version and chunk.version != version:
                    raise InvalidArgument("version differs from the first message", field="version")
                if chunk.dimension and chunk.dimension != dim:
                    raise InvalidArgument("dimension differs from the first message", field="dimension")
            if len(chunk.items) > MAX_ITEMS_PER_MESSAGE:
                raise InvalidArgument(f"at most {MAX_ITEMS_PER_MESSAGE} items per message", field="items")
            for it in chunk.items:
                if it.movie_id <= 0:
                    raise InvalidArgument("movie_id must be > 0", field="items.movie_id")
                check_year(it.year, "items.year")
                genres = check_genres(it.genres, "items.genres")
                vec = normalise(it.vector, dim, "items.vector")
                items[it.movie_id] = Item(it.movie_id, vec, it.year, genres)
            if len(items) > self.upsert_max_items:
                raise ResourceExhausted(
                    f"more than {self.upsert_max_items} items in one Upsert call; split it into several calls"
                )
            if self.capacity is not None and len(items) > self.capacity.max_vectors:
                raise self.capacity.refusal(collection, len(items), "Upsert into")
        if space is None:
            raise InvalidArgument("empty Upsert stream: space and version are required", field="space")
        async with self._lock(collection):
            self._writing[collection] += 1
            try:
                if collection not in await self.store.list_collections():
                    await self.store.create_collection(collection, dim, self.index)
                    self._meta.pop(collection, None)
                elif (have := (await self._meta_of(collection)).dimension) != dim:
                    # another call created this version meanwhile, with another dimension
                    raise InvalidArgument(
                        f"version {version} has dimension {have}, not {dim}", field="dimension"
                    )
                batch = list(items.values())
                if batch and self.capacity is not None:
                    await self._check_capacity(collection, batch)
                if batch:
                    await self.store.upsert(collection, batch)
                total = await self.store.count(collection)
            finally:
                self._writing[collection] -= 1
        return len(items), total

    async def _check_capacity(self, collection: str, batch: Sequence[Item]) -> None:
        """Refuse (before writing anything) an upsert that would take ``collection`` past the limit."""
        assert self.capacity is not None
        have = await self.store.count(collection)
        if have + len(batch) <= self.capacity.max_vectors:
            return
        present = await self.store.existing_ids(collection, [it.movie_id for it in batch]) if have else []
        after = have + len(batch) - len(present)
        if after > self.capacity.max_vectors:
            raise self.capacity.refusal(collection, after, "Upsert into")

    async def delete(self, space: str | None, version: str, movie_ids: Sequence[int]) -> int:
        space = check_space(space)
        ids = _ids(movie_ids, "movie_ids", MAX_DELETE_IDS, min_count=1)
        collection, _ = await self._resolve(space, version)
        present = await self.store.existing_ids(collection, np.unique(ids).tolist())
        if present:
            async with self._lock(collection):
                await self.store.delete(collection, present)
        return len(present)

    async def get_vectors(
        self, space: str | None, version: str, movie_ids: Sequence[int]
    ) -> tuple[list[Item], list[int]]:
        space = check_space(space)
        ids = _ids(movie_ids, "movie_ids", MAX_GET_IDS, min_count=1)
        collection, _ = await self._resolve(space, version)
        found = {it.movie_id: it for it in await self.store.get(collection, np.unique(ids).tolist())}
        items = [found[i] for i in ids.tolist() if i in found]
        missing = [i for i in ids.tolist() if i not in found]
        return items, missing

    # -------------------------------------------------------------- versions
    async def activate(self, space: str | None, version: str) -> str:
        space = check_space(space)
        check_version(version)
        collection = self.collection_name(space, version)
        async with self._lock(collection):
            if collection not in await self.store.list_collections():
                # the contract: "must exist and be complete (FAILED_PRECONDITION)"
                raise FailedPrecondition(
                    f"version {version} does not exist in space {space}", field="version"
                )
            await self._meta_of(collection)
            if self._writing[collection]:
                raise FailedPrecondition(f"version {version} is being written")
            stats = await self.store.collection_stats(collection)
            if stats.count == 0:
                raise FailedPrecondition(f"version {version} has no vectors")
            if self.capacity is not None and stats.count > self.capacity.max_vectors:
                raise self.capacity.refusal(collection, stats.count, "ActivateVersion of")
            if not stats.index_ready:
                raise FailedPrecondition(f"version {version} is still being indexed")
            alias = self.alias_name(space)
            previous = await self.store.get_alias(alias)
            if previous != collection:
                await self.store.set_alias(alias, collection)
            self._serving[space] = (collection, time.monotonic())
        parsed = self.parse_collection(previous) if previous else None
        return parsed[1] if parsed else ""

    async def drop(self, space: str | None, version: str) -> None:
        space = check_space(space)
        check_version(version)
        collection = self.collection_name(space, version)
        async with self._lock(collection):
            await self._meta_of(collection)
            if await self._serving_collection(space, refresh=True) == collection:
                raise FailedPrecondition(f"version {version} is serving; activate another one first")
            if self._inflight[collection]:  # let searches that resolved it before a swap finish
                idle = self._idle.setdefault(collection, asyncio.Event())
                idle.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(idle.wait(), self.drop_wait_s)
            await self.store.drop_collection(collection)
            self._meta.pop(collection, None)

    async def describe(self) -> tuple[list[CollectionInfo], str]:
        names = await self.store.list_collections()
        serving = {space: await self._serving_collection(space, refresh=True) for space in SPACES}
        out: list[CollectionInfo] = []
        for name in sorted(names):
            parsed = self.parse_collection(name)
            if parsed is None:
                continue
            space, version = parsed
            stats = await self.store.collection_stats(name)
            out.append(
                CollectionInfo(
                    space=space,
                    version=version,
                    collection=name,
                    dimension=stats.dimension,
                    count=stats.count,
                    metric=stats.metric,
                    index_type=stats.index_type,
                    serving=serving[space] == name,
                )
            )
        return out, self.store.backend
