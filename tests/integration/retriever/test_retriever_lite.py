"""The retriever over gRPC against real Milvus Lite: every RPC, invalid cases, exactness, alias swaps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.errors import bad_request_fields
from recsys_core.testing import health_status, reflection_file_containing, reflection_services

PINSAGE = common_pb2.VECTOR_SPACE_PINSAGE
DIM = 16


def query(v: np.ndarray, exclude: Any = ()) -> retriever_pb2.SearchQuery:
    return retriever_pb2.SearchQuery(
        vector=common_pb2.Vector(values=list(map(float, v))), exclude_ids=list(exclude)
    )


async def load(lite: Any, data: Any, version: str, upsert_stream: Any, activate: bool = True) -> None:
    resp = await lite.stub.Upsert(upsert_stream(data.requests(version)), timeout=60)
    assert resp.upserted == len(data.ids) and resp.total == len(data.ids)
    if activate:
        await lite.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(space=PINSAGE, version=version))


async def expect_invalid(call: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
    assert field in bad_request_fields(exc.value), (field, exc.value.details())


async def test_health_and_reflection(lite: Any) -> None:
    assert await health_status(lite.channel, "") == 1
    assert await health_status(lite.channel, "recsys.retriever.v1.Retriever") == 1
    assert "recsys.retriever.v1.Retriever" in await reflection_services(lite.channel)
    files = await reflection_file_containing(lite.channel, "recsys.retriever.v1.Retriever.Search")
    assert any(f.name.endswith("retriever.proto") for f in files)


async def test_every_rpc_end_to_end_exact_against_brute_force(
    lite: Any, dataset: Any, upsert_stream: Any
) -> None:
    data = dataset(1500, DIM)
    await load(lite, data, "v1", upsert_stream)
    rng = np.random.default_rng(7)
    qs = rng.normal(size=(6, DIM)).astype(np.float32)
    nearest, _ = data.brute_force(qs[3], 1200)  # the 1200 nearest: forces the exclusion fallback
    excludes = [
        [],
        [1, 2, 3],
        list(range(1, 1500, 3)),
        nearest,
        list(range(1, 1496)),
        list(range(2, 100_001)),
    ]
    flt: dict[str, Any] = {"genres_any": ["Drama", "Children's"], "year_min": 1960, "year_max": 2015}
    resp = await lite.stub.Search(
        retriever_pb2.SearchRequest(
            space=PINSAGE,
            queries=[query(q, ex) for q, ex in zip(qs, excludes, strict=True)],
            k=25,
            filter=common_pb2.MovieFilter(**flt),
        ),
        timeout=60,
    )
    assert resp.version == "v1" and len(resp.results) == 6
    for q, ex, result in zip(qs, excludes, resp.results, strict=True):
        want, want_scores = data.brute_force(q, 25, ex, **flt)
        got = [h.movie_id for h in result.hits]
        assert got == want
        assert not set(got) & set(ex)
        np.testing.assert_allclose([h.score for h in result.hits], want_scores, atol=1e-5)
    # genres_all and unfiltered, exactly k
    resp = await lite.stub.Search(
        retriever_pb2.SearchRequest(
            queries=[query(qs[0])], k=1000, filter=common_pb2.MovieFilter(genres_all=["Drama", "Comedy"])
        )
    )
    assert [h.movie_id for h in resp.results[0].hits] == data.brute_force(
        qs[0], 1000, genres_all=["Drama", "Comedy"]
    )[0]

    got = await lite.stub.GetVectors(
        retriever_pb2.GetVectorsRequest(space=PINSAGE, movie_ids=[7, 999_999, 3])
    )
    assert [i.movie_id for i in got.items] == [7, 3] and list(got.missing_ids) == [999_999]
    np.testing.assert_allclose(got.items[0].vector.values, data.vecs[6], atol=1e-6)
    assert got.items[0].year == data.years[6] and tuple(got.items[0].genres) == data.genres[6]

    deleted = await lite.stub.Delete(retriever_pb2.DeleteRequest(space=PINSAGE, movie_ids=[1, 2, 999_999]))
    assert deleted.deleted == 2
    resp = await lite.stub.Search(retriever_pb2.SearchRequest(queries=[query(data.vecs[0])], k=5))
    assert 1 not in [h.movie_id for h in resp.results[0].hits]

    desc = await lite.stub.Describe(retriever_pb2.DescribeRequest())
    assert desc.backend == "lite"
    (info,) = desc.collections
    assert (info.space, info.version, info.dimension, info.count, info.metric, info.serving) == (
        PINSAGE,
        "v1",
        DIM,
        1498,
        "IP",
        True,
    )
    assert info.index_type == "FLAT" and info.collection == "recsys_pinsage__v1"


async def test_upsert_dimension_mismatch_rejects_the_whole_call(
    lite: Any, dataset: Any, upsert_stream: Any
) -> None:
    data = dataset(600, DIM)
    reqs = data.requests("v1", chunk=200)
    reqs[2].items[5].vector.values.append(0.5)
    await expect_invalid(lite.stub.Upsert(upsert_stream(reqs)), "items.vector")
    desc = await lite.stub.Describe(retriever_pb2.DescribeRequest())
    assert list(desc.collections) == []  # nothing of it is visible
    await load(lite, data, "v1", upsert_stream, activate=False)
    bad = dataset(10, DIM + 1, first_id=5000)
    await expect_invalid(lite.stub.Upsert(upsert_stream(bad.requests("v1"))), "dimension")
    desc = await lite.stub.Describe(retriever_pb2.DescribeRequest())
    assert desc.collections[0].count == 600


async def test_invalid_arguments_name_the_field(lite: Any, dataset: Any, upsert_stream: Any) -> None:
    data = dataset(50, DIM)
    await load(lite, data, "v1", upsert_stream)
    v = data.vecs[0]
    S = retriever_pb2.SearchRequest
    stub = lite.stub
    await expect_invalid(stub.Search(S(queries=[query(v)], k=0)), "k")
    await expect_invalid(stub.Search(S(queries=[query(v)], k=1001)), "k")
    await expect_invalid(stub.Search(S(queries=[], k=5)), "queries")
    await expect_invalid(stub.Search(S(queries=[query(v[:-1])], k=5)), "queries[0].vector")
    await expect_invalid(stub.Search(S(queries=[query(v), query(v * np.nan)], k=5)), "queries[1].vector")
    await expect_invalid(stub.Search(S(queries=[query(v, [-4])], k=5)), "queries[0].exclude_ids")
    injection = 'Drama"]) or (movie_id > 0 or array_contains_any(genres, ["x'
    await expect_invalid(
        stub.Search(S(queries=[query(v)], k=5, filter=common_pb2.MovieFilter(genres_any=[injection]))),
        "filter.genres_any",
    )
    await expect_invalid(
        stub.Search(S(queries=[query(v)], k=5, filter=common_pb2.MovieFilter(year_min=2001, year_max=2000))),
        "filter.year_min",
    )
    unknown_space: Any = 9
    await expect_invalid(stub.Search(S(space=unknown_space, queries=[query(v)], k=5)), "space")
    await expect_invalid(stub.Search(S(queries=[query(v)], k=5, version="no way")), "version")
    await expect_invalid(stub.Delete(retriever_pb2.DeleteRequest(movie_ids=[])), "movie_ids")
    await expect_invalid(stub.GetVectors(retriever_pb2.GetVectorsRequest(movie_ids=[0])), "movie_ids")
    no_space = data.requests("v2")
    no_space[0].space = common_pb2.VECTOR_SPACE_UNSPECIFIED
    await expect_invalid(stub.Upsert(upsert_stream(no_space)), "space")

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Search(S(queries=[query(v)], k=5, version="v9"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Search(S(space=common_pb2.VECTOR_SPACE_TWO_TOWER, queries=[query(v)], k=5))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.DropVersion(retriever_pb2.DropVersionRequest(version="v1"))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    empty = dataset(0, DIM)
    await stub.Upsert(upsert_stream(empty.requests("empty")))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="empty"))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_alias_swap_under_concurrent_searches_loses_no_query(
    lite: Any, dataset: Any, upsert_stream: Any
) -> None:
    v1 = dataset(400, DIM, seed=1, first_id=1)
    v2 = dataset(400, DIM, seed=2, first_id=10_001)
    await load(lite, v1, "v1", upsert_stream)
    await load(lite, v2, "v2", upsert_stream, activate=False)
    rng = np.random.default_rng(3)
    stop = asyncio.Event()
    answered: dict[str, int] = {"v1": 0, "v2": 0}

    async def searcher() -> None:
        while not stop.is_set():
            q = rng.normal(size=DIM).astype(np.float32)
            resp = await lite.stub.Search(
                retriever_pb2.SearchRequest(queries=[query(q, [1, 10_001])], k=10), timeout=30
            )
            data = v1 if resp.version == "v1" else v2
            assert [h.movie_id for h in resp.results[0].hits] == data.brute_force(q, 10, [1, 10_001])[0]
            answered[resp.version] += 1

    async def swapper() -> None:
        for i in range(8):
            await asyncio.sleep(0.05)
            version = "v2" if i % 2 == 0 else "v1"
            prev = await lite.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version=version))
            assert prev.previous_version == ("v1" if version == "v2" else "v2")
        await asyncio.sleep(0.05)
        stop.set()

    await asyncio.gather(swapper(), *(searcher() for _ in range(8)))
    assert answered["v1"] > 0 and answered["v2"] > 0
    # Rolled back to v1 at the end; v2 can be dropped, v1 cannot.
    await lite.stub.DropVersion(retriever_pb2.DropVersionRequest(version="v2"))
    desc = await lite.stub.Describe(retriever_pb2.DescribeRequest())
    assert [(c.version, c.serving) for c in desc.collections] == [("v1", True)]


async def test_concurrent_searches_are_batched(lite: Any, dataset: Any, upsert_stream: Any) -> None:
    data = dataset(300, DIM)
    await load(lite, data, "v1", upsert_stream)
    batcher = lite.app.service.batcher
    calls0, requests0 = batcher.stats.batches, batcher.stats.submitted
    qs = np.random.default_rng(5).normal(size=(40, DIM)).astype(np.float32)
    resps = await asyncio.gather(
        *(lite.stub.Search(retriever_pb2.SearchRequest(queries=[query(q)], k=5)) for q in qs)
    )
    for q, r in zip(qs, resps, strict=True):
        assert [h.movie_id for h in r.results[0].hits] == data.brute_force(q, 5)[0]
    assert batcher.stats.submitted - requests0 == 40
    assert batcher.stats.batches - calls0 < 40


async def test_state_survives_a_restart(
    tmp_path: Path, dataset: Any, upsert_stream: Any, retriever_factory: Any
) -> None:
    start, stop = retriever_factory
    data = dataset(200, DIM)
    r = await start(data_dir=tmp_path / "r")
    try:
        await load(r, data, "v1", upsert_stream)
    finally:
        await stop(r)
    r = await start(data_dir=tmp_path / "r")  # Lite reopens its collections released: they get loaded
    try:
        resp = await r.stub.Search(retriever_pb2.SearchRequest(queries=[query(data.vecs[5])], k=3))
        assert resp.version == "v1" and resp.results[0].hits[0].movie_id == 6
    finally:
        await stop(r)


async def test_lite_refuses_a_collection_above_its_size_limit(
    tmp_path: Path, dataset: Any, upsert_stream: Any, retriever_factory: Any
) -> None:
    start, stop = retriever_factory
    r = await start(data_dir=tmp_path / "r", lite_max_vectors=150)
    try:
        await load(r, dataset(150, DIM), "v1", upsert_stream)  # exactly the limit: fine
        for data in (dataset(200, DIM), dataset(10, DIM, first_id=151)):  # a new one, one that grows v1
            version = "v2" if len(data.ids) == 200 else "v1"
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await r.stub.Upsert(upsert_stream(data.requests(version)), timeout=60)
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.value.details()
            details = exc.value.details() or ""
            assert "RECSYS_RETRIEVER_LITE_MAX_VECTORS" in details and "RECSYS_RETRIEVER_MILVUS_URI" in details
        desc = await r.stub.Describe(retriever_pb2.DescribeRequest(), timeout=10)
        assert [(c.version, c.count) for c in desc.collections] == [("v1", 150)]  # nothing written
    finally:
        await stop(r)
