"""An in-memory `VectorStore`: exact numpy search, for unit tests and as a brute-force oracle.

It understands exactly the filter expressions `service.build_filter` and the exclusion fallback
produce (genre any/all, year bounds, ``movie_id not in [...]``) and counts its calls, so tests can
see how many searches a request cost. Not for production: no persistence, no limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from recsys_core.errors import DependencyUnavailable, NotFound

from recsys_retriever.service import CollectionStats, IndexConfig, Item, RawHits

_ANY = re.compile(r"array_contains_any\(genres, (\[[^\]]*\])\)")
_ALL = re.compile(r"array_contains_all\(genres, (\[[^\]]*\])\)")
_YMIN = re.compile(r"year >= (\d+)")
_YMAX = re.compile(r"year <= (\d+)")
_NOT_IN = re.compile(r"movie_id not in (\[[-\d, ]*\])")


@dataclass
class _Collection:
    dimension: int
    index: IndexConfig
    rows: dict[int, Item] = field(default_factory=dict)


def matches(item: Item, expr: str) -> bool:
    """Evaluate one of the service's filter expressions on an item."""
    if not expr:
        return True
    if (m := _ANY.search(expr)) and not set(json.loads(m.group(1))) & set(item.genres):
        return False
    if (m := _ALL.search(expr)) and not set(json.loads(m.group(1))) <= set(item.genres):
        return False
    if (m := _YMIN.search(expr)) and item.year < int(m.group(1)):
        return False
    if (m := _YMAX.search(expr)) and item.year > int(m.group(1)):
        return False
    return not ((m := _NOT_IN.search(expr)) and item.movie_id in set(json.loads(m.group(1))))


class MemoryStore:
    backend = "memory"

    def __init__(self) -> None:
        self.collections: dict[str, _Collection] = {}
        self.aliases: dict[str, str] = {}
        self.available = True
        self.search_calls: list[tuple[str, int, int, str]] = []  # (collection, nq, limit, expr)

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("milvus", "memory store switched off")

    def _get(self, name: str) -> _Collection:
        self._check()
        if name not in self.collections:
            raise NotFound(f"no collection {name}")
        return self.collections[name]

    async def connect(self) -> None:
        self._check()

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def list_collections(self) -> list[str]:
        self._check()
        return list(self.collections)

    async def create_collection(self, name: str, dimension: int, index: IndexConfig) -> None:
        self._check()
        self.collections.setdefault(name, _Collection(dimension, index))

    async def drop_collection(self, name: str) -> None:
        self._check()
        self.collections.pop(name, None)

    async def collection_stats(self, name: str) -> CollectionStats:
        c = self._get(name)
        return CollectionStats(c.dimension, len(c.rows), "IP", c.index.index_type, True)

    async def count(self, name: str) -> int:
        return len(self._get(name).rows)

    async def get_alias(self, alias: str) -> str | None:
        self._check()
        return self.aliases.get(alias)

    async def set_alias(self, alias: str, collection: str) -> None:
        self._get(collection)
        self.aliases[alias] = collection

    async def upsert(self, name: str, items: Sequence[Item]) -> None:
        c = self._get(name)
        for it in items:
            c.rows[it.movie_id] = it

    async def existing_ids(self, name: str, ids: Sequence[int]) -> list[int]:
        c = self._get(name)
        return [int(i) for i in ids if int(i) in c.rows]

    async def delete(self, name: str, ids: Sequence[int]) -> None:
        c = self._get(name)
        for i in ids:
            c.rows.pop(int(i), None)

    async def get(self, name: str, ids: Sequence[int]) -> list[Item]:
        c = self._get(name)
        return [c.rows[int(i)] for i in ids if int(i) in c.rows]

    async def search(
        self, name: str, vectors: np.ndarray, limit: int, expr: str, index: IndexConfig
    ) -> list[RawHits]:
        c = self._get(name)
        self.search_calls.append((name, int(vectors.shape[0]), limit, expr))
        rows = [it for it in c.rows.values() if matches(it, expr)]
        if not rows:
            empty = RawHits(np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty for _ in range(vectors.shape[0])]
        ids = np.array([it.movie_id for it in rows], dtype=np.int64)
        mat = np.stack([it.vector for it in rows]).astype(np.float32)
        out: list[RawHits] = []
        for q in np.asarray(vectors, dtype=np.float32):
            scores = mat @ q
            order = np.lexsort((ids, -scores))[:limit]
            out.append(RawHits(ids[order], scores[order]))
        return out
