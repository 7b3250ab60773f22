"""Service logic against the in-memory store: validation, exclusion, filters, versions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recsys_core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from recsys_retriever.memory_store import MemoryStore
from recsys_retriever.service import (
    CapacityLimit,
    Item,
    MovieFilter,
    Query,
    RetrieverService,
    UpsertChunk,
    build_filter,
)

GENRES = ["Action", "Children's", "Sci-Fi", "Drama", "Film-Noir"]
DIM = 8


def make_data(n: int, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    years = rng.integers(1950, 2020, size=n)
    genres = [tuple(g for g in GENRES if rng.random() < 0.35) for _ in range(n)]
    return vecs, years, genres


async def stream(*chunks: UpsertChunk) -> AsyncIterator[UpsertChunk]:
    for c in chunks:
        yield c


async def load(
    svc: RetrieverService, version: str, n: int, dim: int = DIM, seed: int = 0, space: str = "pinsage"
):
    vecs, years, genres = make_data(n, dim, seed)
    items = [Item(i + 1, vecs[i], int(years[i]), genres[i]) for i in range(n)]
    chunks = [
        UpsertChunk(space=space, version=version, dimension=dim, items=items[s : s + 1000])
        for s in range(0, n, 1000)
    ]
    await svc.upsert(stream(*chunks))
    return vecs, years, genres


def brute_force(
    vecs: np.ndarray,
    years: np.ndarray,
    genres: Sequence[tuple[str, ...]],
    q: np.ndarray,
    k: int,
    exclude: Sequence[int] = (),
    flt: MovieFilter | None = None,
) -> list[int]:
    flt = flt or MovieFilter()
    ok = np.ones(len(vecs), dtype=bool)
    for i in range(len(vecs)):
        g = set(genres[i])
        if flt.genres_any and not g & set(flt.genres_any):
            ok[i] = False
        if flt.genres_all and not set(flt.genres_all) <= g:
            ok[i] = False
        if flt.year_min and years[i] < flt.year_min:
            ok[i] = False
        if flt.year_max and years[i] > flt.year_max:
            ok[i] = False
    ex = np.asarray(list(exclude), dtype=np.int64)
    ok[ex[(ex >= 1) & (ex <= len(vecs))] - 1] = False
    scores = vecs @ (q / np.linalg.norm(q))
    cand = np.where(ok)[0]
    order = np.lexsort((cand, -scores[cand]))
    return [int(c) + 1 for c in cand[order][:k]]


@pytest.fixture
async def svc() -> AsyncIterator[RetrieverService]:
    service = RetrieverService(
        MemoryStore(), batch_max_wait_s=0.001, exclude_overfetch=16, exclude_in_filter_max=0
    )
    await service.start()
    yield service
    await service.close()


async def serving(
    svc: RetrieverService, n: int = 300
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    data = await load(svc, "v1", n)
    await svc.activate("pinsage", "v1")
    return data


# ------------------------------------------------------------------------------------- search
async def test_search_matches_brute_force_with_exclusions_and_filters(svc: RetrieverService) -> None:
    vecs, years, genres = await serving(svc)
    rng = np.random.default_rng(1)
    flt = MovieFilter(genres_any=("Drama", "Children's"), year_min=1960, year_max=2010)
    qs = rng.normal(size=(4, DIM)).astype(np.float32)
    excludes = [[], [1, 2, 3], list(range(1, 300, 2)), list(range(1, 280))]
    out = await svc.search(None, [Query(q, ex) for q, ex in zip(qs, excludes, strict=True)], 10, flt)
    assert out.version == "v1"
    for q, ex, hits in zip(qs, excludes, out.results, strict=True):
        assert [h.movie_id for h in hits] == brute_force(vecs, years, genres, q, 10, ex, flt)
        assert not set(ex) & {h.movie_id for h in hits}
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)


async def test_a_crowded_exclusion_is_searched_again_for_k_plus_excluded(svc: RetrieverService) -> None:
    vecs, years, genres = await serving(svc)
    q = vecs[0]
    # Exclude the query's own 100 nearest: they crowd the first k + overfetch hits.
    nearest = brute_force(vecs, years, genres, q, 100)
    store = svc.store
    assert isinstance(store, MemoryStore)
    store.search_calls.clear()
    out = await svc.search(None, [Query(q, nearest)], 20)
    assert [h.movie_id for h in out.results[0]] == brute_force(vecs, years, genres, q, 20, nearest)
    assert [(c[2], "not in" in c[3]) for c in store.search_calls] == [(20 + 16, False), (20 + 100, False)]


async def test_a_lone_query_has_its_exclusion_in_the_filter_and_asks_for_k() -> None:
    """Nothing to batch with: one Milvus call for exactly k with ``not in``; exact either way."""
    svc = RetrieverService(
        MemoryStore(), batch_max_wait_s=0.001, exclude_overfetch=16, exclude_in_filter_max=200
    )
    await svc.start()
    try:
        vecs, years, genres = await serving(svc)
        store = svc.store
        assert isinstance(store, MemoryStore)
        flt = MovieFilter(year_min=1960)
        for ex in (brute_force(vecs, years, genres, vecs[0], 100), [1, 2, 3]):
            store.search_calls.clear()
            out = await svc.search(None, [Query(vecs[0], ex)], 20, flt)
            assert [h.movie_id for h in out.results[0]] == brute_force(
                vecs, years, genres, vecs[0], 20, ex, flt
            )
            assert [(c[2], "not in" in c[3]) for c in store.search_calls] == [(20, True)]
        # more excluded ids than the bound: the over-fetch path
        store.search_calls.clear()
        many = list(range(1, 250))
        out = await svc.search(None, [Query(vecs[0], many)], 20)
        assert [h.movie_id for h in out.results[0]] == brute_force(vecs, years, genres, vecs[0], 20, many)
        assert store.search_calls[0][2] == 20 + 16 and "not in" not in store.search_calls[0][3]
        # concurrent requests: exact, and the over-fetch path lets them share calls
        store.search_calls.clear()
        rng = np.random.default_rng(3)
        qs = rng.normal(size=(8, DIM)).astype(np.float32)
        outs = await asyncio.gather(*(svc.search(None, [Query(q, [1, 2, 3])], 10) for q in qs))
        for q, o in zip(qs, outs, strict=True):
            assert [h.movie_id for h in o.results[0]] == brute_force(vecs, years, genres, q, 10, [1, 2, 3])
        assert len(store.search_calls) < len(qs)
    finally:
        await svc.close()


async def test_beyond_max_limit_the_exclusion_goes_into_the_filter_expression() -> None:
    store = MemoryStore()
    svc = RetrieverService(
        store, batch_max_wait_s=0, exclude_overfetch=16, max_limit=50, exclude_in_filter_max=0
    )
    vecs, years, genres = await load(svc, "v1", 300)
    q = vecs[0]
    flt = MovieFilter(year_min=1960)
    nearest = brute_force(vecs, years, genres, q, 120, flt=flt)
    out = await svc.search(None, [Query(q, nearest)], 20, flt, version="v1")
    assert [h.movie_id for h in out.results[0]] == brute_force(vecs, years, genres, q, 20, nearest, flt)
    limits = [c[2] for c in store.search_calls]
    assert limits == [36, 50, 20] and "not in" in store.search_calls[-1][3]
    assert store.search_calls[-1][3].startswith("(year >= 1960) and movie_id not in [")


async def test_exactly_k_results_when_k_exist_and_all_remaining_when_fewer(svc: RetrieverService) -> None:
    vecs, _, _ = await serving(svc, n=50)
    out = await svc.search(None, [Query(vecs[0], list(range(1, 41)))], 10)
    assert sorted(h.movie_id for h in out.results[0]) == list(range(41, 51))
    out = await svc.search(None, [Query(vecs[0], list(range(1, 46)))], 10)
    assert sorted(h.movie_id for h in out.results[0]) == list(range(46, 51))
    out = await svc.search(None, [Query(vecs[0], list(range(1, 51)))], 10)
    assert out.results[0] == []


async def test_ties_are_ordered_by_movie_id(svc: RetrieverService) -> None:
    v = np.zeros(DIM, np.float32)
    v[0] = 1
    await svc.upsert(stream(UpsertChunk("pinsage", "t", DIM, [Item(i, v.copy()) for i in (5, 3, 9, 1)])))
    out = await svc.search(None, [Query(v)], 3, version="t")
    assert [h.movie_id for h in out.results[0]] == [1, 3, 5]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    k=st.integers(1, 40),
    exclude=st.lists(st.integers(1, 120), max_size=110),
    genres_any=st.lists(st.sampled_from(GENRES), max_size=2),
    year_min=st.sampled_from([0, 1970, 1990]),
    seed=st.integers(0, 1000),
)
async def test_search_property_against_brute_force(
    k: int, exclude: list[int], genres_any: list[str], year_min: int, seed: int
) -> None:
    svc = RetrieverService(MemoryStore(), batch_max_wait_s=0, exclude_overfetch=8, exclude_in_filter_max=0)
    vecs, years, genres = await load(svc, "p", 120)
    q = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    flt = MovieFilter(genres_any=tuple(genres_any), year_min=year_min)
    out = await svc.search("pinsage", [Query(q, exclude)], k, flt, version="p")
    assert [h.movie_id for h in out.results[0]] == brute_force(vecs, years, genres, q, k, exclude, flt)


async def test_search_uses_an_explicit_version_and_needs_a_serving_one_otherwise(
    svc: RetrieverService,
) -> None:
    vecs, _, _ = await load(svc, "v1", 20)
    with pytest.raises(FailedPrecondition):
        await svc.search(None, [Query(vecs[0])], 5)
    out = await svc.search(None, [Query(vecs[0])], 5, version="v1")
    assert out.version == "v1" and len(out.results[0]) == 5
    with pytest.raises(NotFound):
        await svc.search(None, [Query(vecs[0])], 5, version="nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 1001}, "k"),
        ({"queries": []}, "queries"),
        ({"queries": [Query(np.ones(DIM))] * 257}, "queries"),
        ({"queries": [Query(np.ones(DIM + 1))]}, "queries[0].vector"),
        ({"queries": [Query(np.ones(DIM)), Query(np.zeros(DIM))]}, "queries[1].vector"),
        ({"queries": [Query(np.full(DIM, np.nan))]}, "queries[0].vector"),
        ({"queries": [Query(np.ones(DIM), [0])]}, "queries[0].exclude_ids"),
        ({"queries": [Query(np.ones(DIM), range(1, 100_002))]}, "queries[0].exclude_ids"),
        ({"flt": MovieFilter(genres_any=('Action"] or year > 0 or ["',))}, "filter.genres_any"),
        ({"flt": MovieFilter(genres_all=("Drama\\",))}, "filter.genres_all"),
        ({"flt": MovieFilter(genres_any=("A",) * 33)}, "filter.genres_any"),
        ({"flt": MovieFilter(year_min=2000, year_max=1990)}, "filter.year_min"),
        ({"flt": MovieFilter(year_max=-1)}, "filter.year_max"),
        ({"space": "word2vec"}, "space"),
        ({"version": "bad version!"}, "version"),
    ],
)
async def test_invalid_search_arguments_name_the_field(
    svc: RetrieverService, kwargs: dict[str, object], field: str
) -> None:
    await serving(svc, n=20)
    args: dict[str, object] = {
        "space": None,
        "queries": [Query(np.ones(DIM))],
        "k": 5,
        "flt": None,
        "version": "",
    }
    args.update(kwargs)
    with pytest.raises(InvalidArgument) as exc:
        await svc.search(**args)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_filter_expressions_are_built_from_validated_values_only() -> None:
    assert build_filter(None) == ""
    assert build_filter(MovieFilter()) == ""
    expr = build_filter(
        MovieFilter(genres_any=("Sci-Fi", "Children's"), genres_all=("Drama",), year_min=1990)
    )
    assert expr == (
        'array_contains_any(genres, ["Children\'s", "Sci-Fi"]) and '
        'array_contains_all(genres, ["Drama"]) and year >= 1990'
    )
    for bad in ['Drama"', "a\\b", "", "  ", "-abc", "é", "a\x1fb", "a\x00b"]:
        with pytest.raises(InvalidArgument):
            build_filter(MovieFilter(genres_any=(bad,)))
    # parentheses are part of the shared genre rule, and stay inside the quoted literal
    assert build_filter(MovieFilter(genres_any=("x) or (1",))) == 'array_contains_any(genres, ["x) or (1"])'


# ------------------------------------------------------------------------------------- upsert
async def test_upsert_is_idempotent_and_counts(svc: RetrieverService) -> None:
    vecs, _, _ = make_data(5)
    items = [Item(i + 1, vecs[i], 2000, ("Drama",)) for i in range(5)]
    assert await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM, items))) == (5, 5)
    assert await svc.upsert(
        stream(UpsertChunk("pinsage", "v1", DIM, items[:3]), UpsertChunk(items=items[3:]))
    ) == (
        5,
        5,
    )
    got, missing = await svc.get_vectors(None, "v1", [5, 42, 1])
    assert [g.movie_id for g in got] == [5, 1] and missing == [42]
    np.testing.assert_allclose(got[0].vector, vecs[4], rtol=1e-6)
    assert got[0].genres == ("Drama",) and got[0].year == 2000


async def test_vectors_are_normalised_on_write(svc: RetrieverService) -> None:
    v = np.arange(1, DIM + 1, dtype=np.float32)
    await svc.upsert(stream(UpsertChunk("two_tower", "n", DIM, [Item(1, v)])))
    (item,), _ = await svc.get_vectors("two_tower", "n", [1])
    assert abs(float(np.linalg.norm(item.vector)) - 1.0) < 1e-6


async def test_a_dimension_mismatch_rejects_the_whole_call_and_writes_nothing(svc: RetrieverService) -> None:
    vecs, _, _ = make_data(3)
    good = [Item(i + 1, vecs[i]) for i in range(3)]
    bad = Item(4, np.ones(DIM + 1, np.float32))
    with pytest.raises(InvalidArgument) as exc:
        await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM, good), UpsertChunk(items=[bad])))
    assert exc.value.field == "items.vector"
    assert await svc.store.list_collections() == []
    await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM, good)))
    with pytest.raises(InvalidArgument):
        await svc.upsert(
            stream(UpsertChunk("pinsage", "v1", 0, [Item(9, vecs[0])]), UpsertChunk(items=[bad]))
        )
    assert await svc.store.count("recsys_pinsage__v1") == 3


@pytest.mark.parametrize(
    ("chunks", "field"),
    [
        ([], "space"),
        ([UpsertChunk(None, "v1", DIM)], "space"),
        ([UpsertChunk("pinsage", "", DIM)], "version"),
        ([UpsertChunk("pinsage", "x" * 65, DIM)], "version"),
        ([UpsertChunk("pinsage", "v-1", DIM)], "version"),
        ([UpsertChunk("pinsage", "v1", 0)], "dimension"),
        ([UpsertChunk("pinsage", "v1", 1)], "dimension"),
        ([UpsertChunk("pinsage", "v1", 4097)], "dimension"),
        ([UpsertChunk("pinsage", "v1", DIM), UpsertChunk("two_tower")], "space"),
        ([UpsertChunk("pinsage", "v1", DIM), UpsertChunk(version="v2")], "version"),
        ([UpsertChunk("pinsage", "v1", DIM), UpsertChunk(dimension=DIM + 1)], "dimension"),
        ([UpsertChunk("pinsage", "v1", DIM, [Item(0, np.ones(DIM))])], "items.movie_id"),
        ([UpsertChunk("pinsage", "v1", DIM, [Item(1, np.ones(DIM), year=-5)])], "items.year"),
        ([UpsertChunk("pinsage", "v1", DIM, [Item(1, np.ones(DIM), genres=("x'; drop",))])], "items.genres"),
        ([UpsertChunk("pinsage", "v1", DIM, [Item(1, np.full(DIM, np.inf))])], "items.vector"),
        ([UpsertChunk("pinsage", "v1", DIM, [Item(i, np.ones(DIM)) for i in range(1, 1002)])], "items"),
    ],
)
async def test_invalid_upserts_name_the_field(
    svc: RetrieverService, chunks: list[UpsertChunk], field: str
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await svc.upsert(stream(*chunks))
    assert exc.value.field == field
    assert await svc.store.list_collections() == []


async def test_an_existing_version_keeps_its_dimension(svc: RetrieverService) -> None:
    await load(svc, "v1", 5)
    with pytest.raises(InvalidArgument) as exc:
        await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM * 2, [Item(1, np.ones(DIM * 2))])))
    assert exc.value.field == "dimension"


async def test_too_many_items_in_one_call_is_resource_exhausted() -> None:
    svc = RetrieverService(MemoryStore(), upsert_max_items=10)
    items = [Item(i, np.ones(DIM, np.float32)) for i in range(1, 12)]
    with pytest.raises(ResourceExhausted):
        await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM, items)))


# ------------------------------------------------------------------------------------- versions
async def test_activate_rollback_and_drop(svc: RetrieverService) -> None:
    vecs1, *_ = await load(svc, "v1", 30, seed=1)
    await load(svc, "v2", 30, seed=2)
    with pytest.raises(FailedPrecondition):  # the contract says FAILED_PRECONDITION, not NOT_FOUND
        await svc.activate(None, "v3")
    assert await svc.activate(None, "v1") == ""
    assert await svc.activate(None, "v2") == "v1"
    assert (await svc.search(None, [Query(vecs1[0])], 3)).version == "v2"
    assert await svc.activate(None, "v1") == "v2"  # rollback
    assert (await svc.search(None, [Query(vecs1[0])], 3)).version == "v1"
    with pytest.raises(FailedPrecondition):
        await svc.drop(None, "v1")
    await svc.drop(None, "v2")
    with pytest.raises(NotFound):
        await svc.drop(None, "v2")
    infos, backend = await svc.describe()
    assert backend == "memory"
    assert [(i.space, i.version, i.count, i.dimension, i.serving, i.metric) for i in infos] == [
        ("pinsage", "v1", 30, DIM, True, "IP")
    ]


async def test_an_empty_version_cannot_be_activated(svc: RetrieverService) -> None:
    await svc.upsert(stream(UpsertChunk("pinsage", "empty", DIM)))
    with pytest.raises(FailedPrecondition):
        await svc.activate(None, "empty")


async def test_spaces_are_independent(svc: RetrieverService) -> None:
    await load(svc, "v1", 10, space="pinsage")
    await load(svc, "v1", 10, dim=4, space="two_tower")
    await svc.activate("two_tower", "v1")
    with pytest.raises(FailedPrecondition):
        await svc.search("pinsage", [Query(np.ones(DIM))], 3)
    out = await svc.search("two_tower", [Query(np.ones(4))], 3)
    assert len(out.results[0]) == 3


# ------------------------------------------------------------------------------------- delete/get
async def test_delete_counts_only_existing_ids(svc: RetrieverService) -> None:
    vecs, *_ = await serving(svc, n=10)
    assert await svc.delete(None, "", [1, 2, 99]) == 2
    out = await svc.search(None, [Query(vecs[0])], 10)
    assert {h.movie_id for h in out.results[0]} == set(range(3, 11))
    for bad, field in (([], "movie_ids"), ([0], "movie_ids"), (list(range(1, 10_002)), "movie_ids")):
        with pytest.raises(InvalidArgument) as exc:
            await svc.delete(None, "", bad)
        assert exc.value.field == field
    with pytest.raises(InvalidArgument):
        await svc.get_vectors(None, "", list(range(1, 1002)))


# ------------------------------------------------------------------------ Milvus Lite size guard
LIMIT = CapacityLimit(50, "set RECSYS_RETRIEVER_MILVUS_URI to a Milvus server")


async def test_an_upsert_past_the_lite_limit_is_refused_and_writes_nothing() -> None:
    svc = RetrieverService(MemoryStore(), capacity=LIMIT)
    await load(svc, "v1", 40)
    # replacing existing ids does not grow the collection: allowed up to exactly the limit
    await load(svc, "v1", 50)
    assert (await svc.describe())[0][0].count == 50
    vecs, *_ = make_data(60)
    more = [Item(i + 1, vecs[i]) for i in range(51)]  # 1 new id past 50
    with pytest.raises(FailedPrecondition) as exc:
        await svc.upsert(stream(UpsertChunk("pinsage", "v1", DIM, more)))
    assert "51 vectors" in str(exc.value) and "RECSYS_RETRIEVER_MILVUS_URI" in str(exc.value)
    assert (await svc.describe())[0][0].count == 50  # nothing written
    # a new collection larger than the limit on its own: refused while the stream is read
    with pytest.raises(FailedPrecondition):
        await load(svc, "v2", 60)
    assert [i.version for i in (await svc.describe())[0]] == ["v1"]


async def test_activating_a_collection_above_the_lite_limit_is_refused() -> None:
    store = MemoryStore()
    big = RetrieverService(store)  # e.g. loaded before the guard, or with a larger limit
    await load(big, "v1", 60)
    svc = RetrieverService(store, capacity=LIMIT)
    with pytest.raises(FailedPrecondition, match="ActivateVersion"):
        await svc.activate(None, "v1")
    # without a limit (a Milvus server) the same collection activates
    assert await big.activate(None, "v1") == ""


async def test_a_serving_collection_above_the_limit_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    big = RetrieverService(store)
    await load(big, "v1", 60)
    await big.activate(None, "v1")
    svc = RetrieverService(store, capacity=LIMIT)
    with caplog.at_level("WARNING", logger="recsys.retriever"):
        await svc.start()
    assert any("60 vectors" in r.getMessage() and "MILVUS_URI" in r.getMessage() for r in caplog.records)
    assert (await svc.search(None, [Query(make_data(1)[0][0])], 3)).version == "v1"  # still served
