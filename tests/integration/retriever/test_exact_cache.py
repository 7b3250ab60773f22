"""Milvus Lite's exact in-memory copy (recsys_retriever.exact, issue #15): the same hits as Lite's
own search for every filter the service builds, and never stale after a write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from recsys_retriever.exact import parse_filter
from recsys_retriever.service import IndexConfig, Item, MovieFilter, build_filter
from recsys_retriever.store import MilvusStore, StoreConfig

GENRES = ["Action", "Children's", "Sci-Fi", "Drama", "Rock and Roll", "Film (Noir)"]


def _items(n: int, dim: int, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    out = []
    for i in range(n):
        g = tuple(GENRES[j] for j in range(len(GENRES)) if rng.random() < 0.3)
        out.append(Item(i + 1, v[i], int(rng.choice([0, 1950, 1980, 1995, 2010])), g))
    return out


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    st = MilvusStore(StoreConfig(uri=str(tmp_path / "m.db"), lite_exact_cache_mb=64))
    await st.connect()
    await st.create_collection("c", 16, IndexConfig())
    await st.upsert("c", _items(600, 16))
    yield st
    await st.close()


FILTERS = [
    MovieFilter(),
    MovieFilter(genres_any=("Action", "Rock and Roll")),
    MovieFilter(genres_all=("Drama", "Film (Noir)")),
    MovieFilter(genres_any=("Sci-Fi",), genres_all=("Children's",), year_min=1980, year_max=2000),
    MovieFilter(year_min=1990),
    MovieFilter(genres_any=("Western",)),  # no movie has it
    MovieFilter(genres_all=("Drama", "Western")),
]


async def _both(store: MilvusStore, q: np.ndarray, limit: int, expr: str):  # type: ignore[no-untyped-def]
    store._exact_on = True
    cached = await store.search("c", q, limit, expr, IndexConfig())
    store._exact_on = False
    lite = await store.search("c", q, limit, expr, IndexConfig())
    store._exact_on = True
    return cached, lite


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: build_filter(f) or "none")
async def test_the_copy_answers_as_lite_does(store: MilvusStore, flt: MovieFilter) -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(4, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base = build_filter(flt)
    seen = json.dumps(sorted({int(x) for x in rng.integers(1, 600, 40)}))
    exprs = [base, f"({base}) and movie_id not in {seen}" if base else f"movie_id not in {seen}"]
    for expr in exprs:
        assert parse_filter(expr) is not None, expr  # understood: the copy answers
        for limit in (1, 10, 74):
            cached, lite = await _both(store, q, limit, expr)
            for c, lt in zip(cached, lite, strict=True):
                assert c.ids.tolist() == lt.ids.tolist(), (expr, limit)
                np.testing.assert_allclose(c.scores, lt.scores, rtol=1e-5, atol=1e-6)
    assert store._exact["c"] is not None  # the copy was used


async def test_a_write_is_seen_by_the_next_search(store: MilvusStore) -> None:
    q = np.eye(16, dtype=np.float32)[:1]
    (before,) = await store.search("c", q, 5, "", IndexConfig())
    target = int(before.ids[-1])
    # make another movie the best match, then delete the old best
    await store.upsert("c", [Item(7, np.eye(16, dtype=np.float32)[0], 2000, ("Drama",))])
    (after,) = await store.search("c", q, 5, "", IndexConfig())
    assert int(after.ids[0]) == 7 and after.scores[0] == pytest.approx(1.0)
    await store.delete("c", [7, target])
    (gone,) = await store.search("c", q, 10, "", IndexConfig())
    assert 7 not in gone.ids.tolist() and target not in gone.ids.tolist()
    # and a copy read again matches Lite's own answer
    cached, lite = await _both(store, q, 10, "")
    assert cached[0].ids.tolist() == lite[0].ids.tolist()


def test_expressions_it_does_not_understand_go_to_lite() -> None:
    for expr in ["movie_id in [1, 2]", "year > 1990", "year >= 1990 or year <= 1950", "(year >= 1990"]:
        assert parse_filter(expr) is None, expr
    assert parse_filter("") == []
