"""The gateway's item-vector cache (caches.ItemVectors): one model version, absent ids, bound."""

from __future__ import annotations

import numpy as np
import pytest
from recsys_gateway.caches import ItemVectors


def _rows(ids: list[int]) -> np.ndarray:
    return np.asarray([[float(i), 1.0] for i in ids], dtype=np.float32)


def test_lookup_store_and_absent_ids() -> None:
    c = ItemVectors()
    found, missing = c.lookup("v1", [1, 2, 3])
    assert found == {} and missing == [1, 2, 3]
    got = c.store("v1", [1, 2, 3], [1, 3], _rows([1, 3]))
    assert sorted(got) == [1, 3]
    found, missing = c.lookup("v1", [3, 2, 1, 4])
    assert sorted(found) == [1, 3] and missing == [4]  # 2 is known to be absent
    np.testing.assert_array_equal(found[3], [3.0, 1.0])


def test_another_version_starts_over_and_is_not_stored() -> None:
    c = ItemVectors()
    c.lookup("v1", [1])
    c.store("v1", [1], [1], _rows([1]))
    c.store("v0", [2], [2], _rows([2]))  # an answer of another model: not kept
    assert len(c) == 1
    found, missing = c.lookup("v2", [1])
    assert found == {} and missing == [1] and c.version == "v2" and len(c) == 0


def test_bound_and_off() -> None:
    c = ItemVectors(max_entries=3)
    c.lookup("v", [])
    c.store("v", [1, 2], [1, 2], _rows([1, 2]))
    c.store("v", [3, 4], [3, 4], _rows([3, 4]))  # would pass 3: starts over
    assert len(c) == 2 and c.lookup("v", [1, 3])[1] == [1]
    off = ItemVectors(max_entries=0)
    off.lookup("v", [])
    assert sorted(off.store("v", [1], [1], _rows([1]))) == [1] and len(off) == 0
    with pytest.raises(ValueError):
        ItemVectors(max_entries=-1)
