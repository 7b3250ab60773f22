"""The gateway's caches: item vectors (one model version, absent ids, bound) and movie cards
(the catalog's metadata version, the age bound, absent ids, bound)."""

from __future__ import annotations

import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2
from recsys.common.v1 import common_pb2
from recsys_gateway.caches import ItemVectors, MovieMetadata


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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _answer(
    version: int, titles: dict[int, str], missing: tuple[int, ...] = ()
) -> catalog_pb2.GetMoviesResponse:
    return catalog_pb2.GetMoviesResponse(
        movies=[common_pb2.Movie(movie_id=m, title=t) for m, t in titles.items()],
        missing_ids=missing,
        metadata_version=version,
    )


def test_cards_are_kept_per_version_with_absent_ids() -> None:
    c = MovieMetadata(ttl_s=10, clock=Clock())
    assert c.lookup([1, 2]) == ({}, [1, 2])
    got, newer = c.store([1, 2, 3], _answer(5, {1: "a", 2: "b"}, (3,)))
    assert sorted(got) == [1, 2] and newer and c.version == 5
    found, missing = c.lookup([3, 2, 1, 4])
    assert {m: v.title for m, v in found.items()} == {1: "a", 2: "b"} and missing == [4]  # 3: absent
    got, newer = c.store([4], _answer(5, {4: "d"}))
    assert not newer and c.lookup([4])[0][4].title == "d"


def test_a_higher_version_drops_everything_a_lower_one_is_not_kept() -> None:
    c = MovieMetadata(ttl_s=10, clock=Clock())
    c.store([1, 2], _answer(5, {1: "a", 2: "b"}))
    got, newer = c.store([3], _answer(6, {3: "c"}))  # the catalog changed some movie
    assert newer and got[3].title == "c"
    assert c.lookup([1, 2, 3])[1] == [1, 2]  # what was read at 5 is asked for again
    got, newer = c.store([1], _answer(5, {1: "old"}))  # read before the change: used, not kept
    assert not newer and got[1].title == "old" and c.lookup([1])[1] == [1]
    c.store([1], _answer(0, {1: "unversioned"}))  # a catalog without versions: never kept
    assert c.lookup([1])[1] == [1] and c.version == 6


def test_age_bound() -> None:
    clock = Clock()
    c = MovieMetadata(ttl_s=10, clock=clock)
    c.store([1, 2], _answer(5, {1: "a"}, (2,)))
    clock.now += 9.9
    assert sorted(c.lookup([1, 2])[0]) == [1] and c.lookup([1, 2])[1] == []
    clock.now += 0.1  # 10 s after the read: both read again (the absent one too)
    assert c.lookup([1, 2]) == ({}, [1, 2])


def test_cards_bound_and_off() -> None:
    c = MovieMetadata(ttl_s=10, max_entries=3, clock=Clock())
    c.store([1, 2], _answer(1, {1: "a", 2: "b"}))
    c.store([3, 4], _answer(1, {3: "c", 4: "d"}))  # would pass 3: starts over
    assert len(c) == 2 and c.lookup([1, 3])[1] == [1]
    off = MovieMetadata(ttl_s=0)
    off.store([1], _answer(1, {1: "a"}))
    assert len(off) == 0 and off.lookup([1]) == ({}, [1])
    with pytest.raises(ValueError):
        MovieMetadata(ttl_s=-1)


def _count(cache: str, result: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "recsys_gateway_cache_lookups_total", {"cache": cache, "result": result}
    )
    return value or 0.0


def test_hits_and_misses_are_exported_per_cache() -> None:
    """recsys_gateway_cache_lookups_total{cache,result}: the dashboard's hit-rate panel."""
    before = {(c, r): _count(c, r) for c in ("item_vectors", "movies") for r in ("hit", "miss")}
    v = ItemVectors()
    v.lookup("v1", [1, 2, 3])
    v.store("v1", [1, 2, 3], [1, 3], _rows([1, 3]))
    v.lookup("v1", [1, 2, 4])  # 1 hit, 2 hit (held absent), 4 miss
    m = MovieMetadata(ttl_s=60.0)
    m.lookup([5, 6])
    m.store([5, 6], catalog_pb2.GetMoviesResponse(movies=[common_pb2.Movie(movie_id=5)], metadata_version=1))
    m.lookup([5, 6, 7])
    delta = {k: _count(*k) - b for k, b in before.items()}
    assert delta == {
        ("item_vectors", "hit"): 2,
        ("item_vectors", "miss"): 4,
        ("movies", "hit"): 2,
        ("movies", "miss"): 3,
    }
