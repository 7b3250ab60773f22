"""Read-mostly data the gateway keeps between requests (issue #15: fewer hops per Recommend).

Neither is a second source of truth: each holds answers of its upstream, with the rule below
that says when an answer may no longer be used.

``ItemVectors``: PinSage movie vectors by movie id, for the "because you liked ..." pick, held
for ONE model version at a time. Vectors are immutable within a model version (the embedder
serves one artifact per version), so an entry never goes stale: the cache is keyed by the
``model_version`` the embedder reports, cleared when a request reports another one, and only
fills from EmbedItems responses of that same version. Ids the model does not know are held as
absent too, so they are not asked for again. Bounded: past ``max_entries`` the cache starts
over (a model of 100,000 movies at 64 floats is 26 MB).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from prometheus_client import Counter
from recsys.catalog.v1 import catalog_pb2
from recsys.common.v1 import common_pb2

#: Default bound of ItemVectors (entries, absent ids included).
ITEM_VECTORS_MAX = 200_000

LOOKUPS = Counter(
    "recsys_gateway_cache_lookups",
    "Ids looked up in the gateway's caches, by cache and result (hit: served from the cache,"
    " held absent included; miss: fetched from the upstream)",
    ["cache", "result"],
)


class _Counts:
    """Pre-bound hit/miss counters of one cache (one ``inc`` per lookup, not per id)."""

    def __init__(self, cache: str) -> None:
        self.hit = LOOKUPS.labels(cache=cache, result="hit")
        self.miss = LOOKUPS.labels(cache=cache, result="miss")

    def add(self, asked: int, missing: int) -> None:
        if asked > missing:
            self.hit.inc(asked - missing)
        if missing:
            self.miss.inc(missing)


class ItemVectors:
    def __init__(self, max_entries: int = ITEM_VECTORS_MAX) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._version = ""
        self._vec: dict[int, np.ndarray | None] = {}
        self._counts = _Counts("item_vectors")

    @property
    def version(self) -> str:
        return self._version

    def __len__(self) -> int:
        return len(self._vec)

    def lookup(self, version: str, ids: Iterable[int]) -> tuple[dict[int, np.ndarray], list[int]]:
        """Known vectors of ``ids`` for ``version`` and the ids not cached (to fetch).

        A version other than the cached one empties the cache first (a new model serves)."""
        if version != self._version:
            self._vec.clear()
            self._version = version
        found: dict[int, np.ndarray] = {}
        missing: list[int] = []
        vec = self._vec
        asked = 0
        for mid in ids:
            asked += 1
            if mid in vec:
                v = vec[mid]
                if v is not None:
                    found[mid] = v
            else:
                missing.append(mid)
        self._counts.add(asked, len(missing))
        return found, missing

    def store(
        self, version: str, asked: Sequence[int], found_ids: Sequence[int], vectors: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Remember an EmbedItems answer (``vectors`` rows = ``found_ids``); asked ids it did not
        find are remembered as absent. Nothing is kept when ``version`` is not the cached one
        (the answer came from another model) or when caching is off; returns the answer's
        vectors by id either way."""
        got = {int(m): vectors[i] for i, m in enumerate(found_ids)}
        if version != self._version or self._max == 0:
            return got
        if len(self._vec) + len(asked) > self._max:
            self._vec.clear()
        for mid in asked:
            self._vec[int(mid)] = got.get(int(mid))
        return got


#: Default bound of MovieMetadata (entries, absent ids included): ~1 KB each.
MOVIES_MAX = 200_000
#: Default age bound of MovieMetadata entries (seconds): how stale a card's rating_count and
#: rating_mean may be, and a metadata change at most, when no catalog answer reports it sooner.
MOVIES_TTL_S = 10.0


class MovieMetadata:
    """Catalog movies by id, for the cards of Recommend and SimilarMovies.

    The catalog drives invalidation: each GetMovies answer carries the ``metadata_version`` it
    was read at (one snapshot with the movies), which grows whenever any movie's metadata
    changes. An answer with a HIGHER version than the cache's drops everything held (and the
    caller is told, so it can re-read what it took from the cache for the same request); one
    with the SAME version is kept; a LOWER one (read before a change another answer already
    reported) or 0 (a catalog that does not version) is used for its request and kept nowhere.

    Every entry is also served for at most ``ttl_s`` after it was read: rating_count and
    rating_mean change with every rating without moving the version, and a gateway whose
    requests all hit the cache asks the catalog nothing, so learns no new version. ``ttl_s``
    is therefore the stated bound: a changed movie is served changed within ``ttl_s``, and
    sooner when any GetMovies answer reports the change first. Ids the catalog does not know
    are held as absent under the same rules. Bounded: past ``max_entries`` it starts over.
    ``ttl_s`` 0 turns the cache off.
    """

    def __init__(
        self,
        ttl_s: float = MOVIES_TTL_S,
        max_entries: int = MOVIES_MAX,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0 or max_entries < 0:
            raise ValueError("ttl_s and max_entries must be >= 0")
        self._ttl = ttl_s
        self._max = max_entries if ttl_s > 0 else 0
        self._clock = clock
        self._version = 0
        self._movies: dict[int, tuple[float, common_pb2.Movie | None]] = {}
        self._counts = _Counts("movies")

    @property
    def version(self) -> int:
        return self._version

    def __len__(self) -> int:
        return len(self._movies)

    def lookup(self, ids: Iterable[int]) -> tuple[dict[int, common_pb2.Movie], list[int]]:
        """Fresh cached movies among ``ids`` and the ids to fetch (not cached, or too old).
        Ids cached as absent are in neither."""
        found: dict[int, common_pb2.Movie] = {}
        missing: list[int] = []
        if self._max == 0:
            return found, list(ids)  # off: not counted
        oldest = self._clock() - self._ttl
        held = self._movies
        asked = 0
        for mid in ids:
            asked += 1
            entry = held.get(mid)
            if entry is None or entry[0] <= oldest:
                missing.append(mid)
            elif entry[1] is not None:
                found[mid] = entry[1]
        self._counts.add(asked, len(missing))
        return found, missing

    def lookup_stale(self, ids: Iterable[int]) -> tuple[dict[int, common_pb2.Movie], list[int]]:
        """Degraded mode (the catalog is down): cached movies among ``ids`` whatever their age,
        and the ids with no entry at all. Ids cached as absent are in neither."""
        found: dict[int, common_pb2.Movie] = {}
        uncached: list[int] = []
        held = self._movies
        for mid in ids:
            entry = held.get(mid)
            if entry is None:
                uncached.append(mid)
            elif entry[1] is not None:
                found[mid] = entry[1]
        return found, uncached

    def store(
        self, asked: Sequence[int], answer: catalog_pb2.GetMoviesResponse
    ) -> tuple[dict[int, common_pb2.Movie], bool]:
        """Remember a GetMovies answer to ``asked``; returns its movies by id and whether it
        reported a newer version than the cache held (everything taken from the cache before
        may be stale)."""
        got = {m.movie_id: m for m in answer.movies}
        version = answer.metadata_version
        newer = version > self._version
        if newer:
            self._movies.clear()
            self._version = version
        if self._max == 0 or version == 0 or version < self._version:
            return got, newer
        if len(self._movies) + len(asked) > self._max:
            self._movies.clear()
        now = self._clock()
        for mid in asked:
            self._movies[mid] = (now, got.get(mid))
        return got, newer
