"""Read-mostly data the gateway keeps between requests (issue #15: fewer hops per Recommend).

``ItemVectors``: PinSage movie vectors by movie id, for the "because you liked ..." pick, held
for ONE model version at a time. Vectors are immutable within a model version (the embedder
serves one artifact per version), so an entry never goes stale: the cache is keyed by the
``model_version`` the embedder reports, cleared when a request reports another one, and only
fills from EmbedItems responses of that same version. Ids the model does not know are held as
absent too, so they are not asked for again. Bounded: past ``max_entries`` the cache starts
over (a model of 100,000 movies at 64 floats is 26 MB).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Default bound of ItemVectors (entries, absent ids included).
ITEM_VECTORS_MAX = 200_000


class ItemVectors:
    def __init__(self, max_entries: int = ITEM_VECTORS_MAX) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._version = ""
        self._vec: dict[int, np.ndarray | None] = {}

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
        for mid in ids:
            if mid in vec:
                v = vec[mid]
                if v is not None:
                    found[mid] = v
            else:
                missing.append(mid)
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
