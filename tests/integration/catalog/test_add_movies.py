"""AddMovies over the wire against a real PostgreSQL and a real retriever (Milvus Lite), with an
embedder that answers like one (trained vectors for the catalog's movies, a new movie's vector
from its similar movies): the movie is invisible until its vector is in the retriever, a
retriever outage is UNAVAILABLE and leaves it pending, and the retry completes it. Once the
added movie has ratings, RefreshAddedMovies (and `recsys movies refresh`) re-embeds it from the
movies its raters rated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2 as pb
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_catalog.testing import catalog_server
from recsys_core.server import Server
from recsys_core.settings import ServerSettings
from recsys_core.testing import free_port, test_settings, wait_serving
from recsys_core.validation import vector_version
from recsys_data import Dataset
from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings
from recsys_tools.cli import main

pytestmark = pytest.mark.postgres

MODEL, DIM, NEW_ID = "20261207T000000Z-test", 8, 900_001


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Embedder(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, movie_ids: list[int]) -> None:
        rng = np.random.default_rng(3)
        self.vectors = {m: _unit(rng.normal(size=DIM)).astype(np.float32) for m in movie_ids}
        self.new_calls = 0

    async def EmbedItems(self, request: embedder_pb2.EmbedItemsRequest, context: Any) -> Any:
        found = [m for m in request.movie_ids if m in self.vectors]
        return embedder_pb2.EmbedItemsResponse(
            found_ids=found,
            vectors=[common_pb2.Vector(values=self.vectors[m].tolist()) for m in found],
            missing_ids=[m for m in request.movie_ids if m not in self.vectors],
            model_version=MODEL,
        )

    async def ModelInfo(self, request: embedder_pb2.ModelInfoRequest, context: Any) -> Any:
        return embedder_pb2.ModelInfoResponse(version=MODEL, dimension=DIM, metric="IP")

    async def EmbedNewMovie(self, request: embedder_pb2.EmbedNewMovieRequest, context: Any) -> Any:
        self.new_calls += 1
        known = [self.vectors[m] for m in request.neighbour_movie_ids if m in self.vectors]
        vec = _unit(np.mean(known, axis=0)) if known else _unit(np.ones(DIM))
        return embedder_pb2.EmbedNewMovieResponse(
            vector=common_pb2.Vector(values=vec.tolist()),
            unknown_movie_ids=[m for m in request.neighbour_movie_ids if m not in self.vectors],
            model_version=MODEL,
        )


class Retriever:
    """A real retriever on a fixed port that can be stopped and started again (same data)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.app: RetrieverApp | None = None
        self.catalog_target = ""  # the catalog that writes to it (set by the fixture)

    async def start(self) -> None:
        settings = test_settings(
            RetrieverSettings, data_dir=self.data_dir, port=self.port, alias_refresh_s=0.05
        )
        self.app = RetrieverApp(settings)
        await self.app.start()
        async with grpc.aio.insecure_channel(self.target) as ch:
            await wait_serving(ch, "", timeout=60)

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop(0)
            self.app = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def stack(
    loaded_dsn: str, dataset: Dataset, tmp_path: Path
) -> AsyncIterator[tuple[catalog_pb2_grpc.CatalogStub, Embedder, Retriever]]:
    embedder = Embedder(sorted(m.movie_id for m in dataset.movies))
    emb = Server(test_settings(ServerSettings), "embedder")
    emb.add_service(embedder_pb2_grpc.add_EmbedderServicer_to_server, embedder, "recsys.embedder.v1.Embedder")
    emb_port = await emb.start()
    emb.set_serving(True)
    retriever = Retriever(tmp_path / "retriever")
    await retriever.start()
    try:
        async with grpc.aio.insecure_channel(retriever.target) as rch:
            ids = sorted(embedder.vectors)
            first = retriever_pb2.UpsertRequest(
                space=common_pb2.VECTOR_SPACE_PINSAGE,
                version=vector_version(MODEL),
                dimension=DIM,
                items=[
                    retriever_pb2.VectorItem(
                        movie_id=m, vector=common_pb2.Vector(values=embedder.vectors[m].tolist())
                    )
                    for m in ids
                ],
            )
            rstub = retriever_pb2_grpc.RetrieverStub(rch)
            await rstub.Upsert(iter([first]), timeout=60)
            await rstub.ActivateVersion(
                retriever_pb2.ActivateVersionRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE, version=vector_version(MODEL)
                ),
                timeout=30,
            )
        async with catalog_server(
            loaded_dsn, embedder_target=f"127.0.0.1:{emb_port}", retriever_target=retriever.target,
            upstream_timeout_s=5.0,
        ) as (_, port):  # fmt: skip
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                retriever.catalog_target = f"127.0.0.1:{port}"
                yield catalog_pb2_grpc.CatalogStub(ch), embedder, retriever
    finally:
        await retriever.stop()
        await emb.stop(0)


async def _search(target: str, vector: list[float], k: int = 5) -> list[int]:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await retriever_pb2_grpc.RetrieverStub(ch).Search(
            retriever_pb2.SearchRequest(
                queries=[retriever_pb2.SearchQuery(vector=common_pb2.Vector(values=vector))],
                k=k,
                version=vector_version(MODEL),
            ),
            timeout=30,
        )
    return [h.movie_id for h in resp.results[0].hits]


async def _visible(stub: catalog_pb2_grpc.CatalogStub, title: str) -> tuple[bool, bool, bool]:
    """Whether movie NEW_ID is in GetMovies, in SearchMovies(title), and in ListMovies."""
    got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[NEW_ID]), timeout=10)
    hits = await stub.SearchMovies(pb.SearchMoviesRequest(query=title), timeout=10)
    page = await stub.ListMovies(pb.ListMoviesRequest(after_id=NEW_ID - 1, page_size=5), timeout=10)
    return (
        bool(got.movies),
        any(h.movie.movie_id == NEW_ID for h in hits.hits),
        any(m.movie_id == NEW_ID for m in page.movies),
    )


async def _retry_until_done(
    stub: catalog_pb2_grpc.CatalogStub, within_s: float = 20.0
) -> pb.AddMoviesResponse:
    """RetryPendingMovies until it succeeds: the catalog's channel to a restarted retriever
    reconnects after its backoff (UNAVAILABLE meanwhile, nothing else)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            return await stub.RetryPendingMovies(pb.RetryPendingMoviesRequest(), timeout=30)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


def _new_movie(title: str, similar: list[int], genres: list[str], movie_id: int = NEW_ID) -> pb.NewMovie:
    return pb.NewMovie(
        movie=common_pb2.Movie(movie_id=movie_id, title=title, year=2026, genres=genres),
        similar_movie_ids=similar,
    )


async def test_add_fail_retry(
    stack: tuple[catalog_pb2_grpc.CatalogStub, Embedder, Retriever], dataset: Dataset
) -> None:
    stub, embedder, retriever = stack
    genres = list(dataset.movies[0].genres) or []
    similar = [dataset.movies[0].movie_id, dataset.movies[1].movie_id]
    title = "Zyzzyva Returns"

    # retriever down: UNAVAILABLE naming it and saying what to do; the movie is nowhere
    await retriever.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AddMovies(pb.AddMoviesRequest(movies=[_new_movie(title, similar, genres)]), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert "retriever" in (err.value.details() or "") and "retry-pending" in (err.value.details() or "")
    assert await _visible(stub, title) == (False, False, False)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RetryPendingMovies(pb.RetryPendingMoviesRequest(), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await _visible(stub, title) == (False, False, False)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a pending movie cannot be rated yet
        await stub.RecordRatings(
            pb.RecordRatingsRequest(
                ratings=[common_pb2.Rating(user_id=1, movie_id=NEW_ID, rating=4.0)], create_missing_users=True
            ),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # back: the retry completes it; the vector is the one from its similar movies
    await retriever.start()
    done = await _retry_until_done(stub)
    assert [(m.movie_id, m.inserted, m.inductive) for m in done.movies] == [(NEW_ID, True, True)]
    assert done.model_version == MODEL and done.vector_version == vector_version(MODEL) and done.pending == 0
    assert await _visible(stub, title) == (True, True, True)
    expected = _unit(np.mean([embedder.vectors[m] for m in similar], axis=0))
    assert (await _search(retriever.target, expected.tolist(), k=1)) == [NEW_ID]
    assert (await stub.RetryPendingMovies(pb.RetryPendingMoviesRequest(), timeout=30)).movies == []

    # the same call again: an update, idempotent (one movie, its vector replaced)
    calls = embedder.new_calls
    again = await stub.AddMovies(
        pb.AddMoviesRequest(movies=[_new_movie(title + " II", similar[:1], genres)]), timeout=30
    )
    assert [(m.movie_id, m.inserted) for m in again.movies] == [(NEW_ID, False)]
    assert embedder.new_calls == calls + 1
    got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[NEW_ID]), timeout=10)
    assert got.movies[0].title == title + " II"
    assert (await _search(retriever.target, embedder.vectors[similar[0]].tolist(), k=2))[:2].count(
        NEW_ID
    ) == 1

    # a movie the model was trained on keeps its trained vector (only its metadata changes)
    trained = dataset.movies[2]
    upd = await stub.AddMovies(
        pb.AddMoviesRequest(
            movies=[
                pb.NewMovie(movie=common_pb2.Movie(movie_id=trained.movie_id, title="Renamed", year=1999))
            ]
        ),
        timeout=30,
    )
    assert [(m.movie_id, m.inserted, m.inductive) for m in upd.movies] == [(trained.movie_id, False, False)]
    assert (await _search(retriever.target, embedder.vectors[trained.movie_id].tolist(), k=1)) == [
        trained.movie_id
    ]


async def test_bad_input(
    stack: tuple[catalog_pb2_grpc.CatalogStub, Embedder, Retriever], dataset: Dataset
) -> None:
    stub, _, _ = stack
    cases = [
        (_new_movie("", [], []), "movies[0].movie.title"),
        (pb.NewMovie(movie=common_pb2.Movie(movie_id=NEW_ID, title="x", year=1500)), "movies[0].movie.year"),
        (_new_movie("x", [], ["Not A Genre"]), "movies[0].movie.genres"),
        (_new_movie("x", [123_456_789], []), "movies[0].similar_movie_ids[0]"),
    ]
    for movie, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.AddMovies(pb.AddMoviesRequest(movies=[movie]), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert field in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AddMovies(pb.AddMoviesRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_no_retriever_version_for_the_model_is_failed_precondition(
    loaded_dsn: str, tmp_path: Path
) -> None:
    embedder = Embedder([1, 2, 3])
    emb = Server(test_settings(ServerSettings), "embedder")
    emb.add_service(embedder_pb2_grpc.add_EmbedderServicer_to_server, embedder, "recsys.embedder.v1.Embedder")
    emb_port = await emb.start()
    emb.set_serving(True)
    retriever = Retriever(tmp_path / "empty-retriever")
    await retriever.start()
    try:
        async with catalog_server(
            loaded_dsn, embedder_target=f"127.0.0.1:{emb_port}", retriever_target=retriever.target
        ) as (_, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = catalog_pb2_grpc.CatalogStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.AddMovies(
                        pb.AddMoviesRequest(movies=[_new_movie("Nowhere", [1], [], NEW_ID + 1)]), timeout=30
                    )
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "publish" in (err.value.details() or "")
                got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[NEW_ID + 1]), timeout=10)
                assert not got.movies
    finally:
        await retriever.stop()
        await emb.stop(0)


async def test_without_upstreams_add_is_refused(loaded_dsn: str) -> None:
    async with catalog_server(loaded_dsn) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await catalog_pb2_grpc.CatalogStub(ch).AddMovies(
                    pb.AddMoviesRequest(movies=[_new_movie("x", [], [])]), timeout=10
                )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "RECSYS_CATALOG_EMBEDDER_TARGET" in (err.value.details() or "")


async def test_cli_add_and_retry_pending(
    stack: tuple[catalog_pb2_grpc.CatalogStub, Embedder, Retriever],
    dataset: Dataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`recsys movies add FILE` and `recsys movies retry-pending` against the real catalog."""
    stub, _, retriever = stack
    ids = (NEW_ID + 10, NEW_ID + 11)
    f = tmp_path / "new.csv"
    f.write_text(
        "movie_id,title,year,genres,similar_movie_ids\n"
        f"{ids[0]},Cli Movie One,2026,{'|'.join(dataset.movies[0].genres)},{dataset.movies[0].movie_id}\n"
        f"{ids[1]},Cli Movie Two,,,\n"
    )
    cmd = ["movies", "add", str(f), "--catalog", retriever.catalog_target]
    await retriever.stop()
    assert await asyncio.to_thread(main, cmd) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and f"movies [{ids[0]}, {ids[1]}] are pending" in err
    assert not (await stub.GetMovies(pb.GetMoviesRequest(movie_ids=list(ids)), timeout=10)).movies

    await retriever.start()
    retry = ["movies", "retry-pending", "--catalog", retriever.catalog_target]
    for _ in range(40):  # the catalog's channel reconnects after its backoff
        code = await asyncio.to_thread(main, retry)
        if code == 0:
            break
        await asyncio.sleep(0.5)
    assert code == 0
    out = capsys.readouterr().out
    assert f"added movie {ids[0]} (inductive vector)" in out and f"added movie {ids[1]}" in out
    assert "0 pending" in out
    got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=list(ids)), timeout=10)
    assert [m.title for m in got.movies] == ["Cli Movie One", "Cli Movie Two"]

    assert await asyncio.to_thread(main, cmd) == 0  # the same file again: updates
    out = capsys.readouterr().out
    assert f"updated movie {ids[0]}" in out and f"updated movie {ids[1]}" in out


async def _expected_neighbours(
    stub: catalog_pb2_grpc.CatalogStub, movie_id: int, raters: list[int]
) -> list[int]:
    """RefreshAddedMovies' neighbours computed here from the catalog's own state: the movies the
    raters rated, by common raters desc, rating count desc, id; at most 50."""
    co: dict[int, int] = {}
    for u in raters:
        hist = await stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=u, limit=10_000), timeout=10)
        for r in hist.ratings:
            if r.movie_id != movie_id:
                co[r.movie_id] = co.get(r.movie_id, 0) + 1
    got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=sorted(co)), timeout=10)
    counts = {m.movie_id: m.rating_count for m in got.movies if not m.added_since_training}
    return sorted(counts, key=lambda m: (-co[m], -counts[m], m))[:50]


async def test_refresh_added_movies_after_ratings(
    stack: tuple[catalog_pb2_grpc.CatalogStub, Embedder, Retriever],
    dataset: Dataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stub, embedder, retriever = stack
    mid = NEW_ID + 20
    similar = [dataset.movies[5].movie_id]
    await stub.AddMovies(pb.AddMoviesRequest(movies=[_new_movie("Refresh Me", similar, [], mid)]), timeout=30)
    got = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[mid, similar[0]]), timeout=10)
    assert [m.added_since_training for m in got.movies] == [True, False]
    # no ratings since it was added: nothing to do (idempotent)
    first = await stub.RefreshAddedMovies(pb.RefreshAddedMoviesRequest(), timeout=30)
    assert [m.movie_id for m in first.movies if m.movie_id == mid] == []

    raters = sorted({int(u) for u in dataset.interactions.user_ids})[:2]
    await stub.RecordRatings(
        pb.RecordRatingsRequest(
            ratings=[common_pb2.Rating(user_id=u, movie_id=mid, rating=4.0) for u in raters]
        ),
        timeout=10,
    )
    expected = await _expected_neighbours(stub, mid, raters)
    assert len(expected) >= 10  # a real neighbourhood, not just the similar id
    done = await stub.RefreshAddedMovies(pb.RefreshAddedMoviesRequest(), timeout=30)
    mine = [m for m in done.movies if m.movie_id == mid]
    assert len(mine) == 1 and mine[0].inductive and mine[0].rating_count == 2
    neighbours = list(mine[0].neighbour_movie_ids)
    fill = [i for i in similar if i not in expected]
    assert neighbours == (expected + fill)[:50]
    assert (
        done.model_version == MODEL and done.vector_version == vector_version(MODEL) and done.remaining == 0
    )
    async with grpc.aio.insecure_channel(retriever.target) as rch:
        vec = await retriever_pb2_grpc.RetrieverStub(rch).GetVectors(
            retriever_pb2.GetVectorsRequest(version=vector_version(MODEL), movie_ids=[mid]), timeout=10
        )
    want = _unit(np.mean([embedder.vectors[m] for m in neighbours], axis=0))
    np.testing.assert_allclose(np.asarray(vec.items[0].vector.values), want, atol=1e-5)
    calls = embedder.new_calls
    again = await stub.RefreshAddedMovies(pb.RefreshAddedMoviesRequest(), timeout=30)
    assert again.movies == [] and again.remaining == 0 and embedder.new_calls == calls

    # one more rating with the retriever down: UNAVAILABLE naming it, nothing recorded
    third = sorted({int(u) for u in dataset.interactions.user_ids})[2]
    await stub.RecordRatings(
        pb.RecordRatingsRequest(ratings=[common_pb2.Rating(user_id=third, movie_id=mid, rating=3.0)]),
        timeout=10,
    )
    await retriever.stop()
    cmd = ["movies", "refresh", "--catalog", retriever.catalog_target]
    assert await asyncio.to_thread(main, cmd) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "retriever" in err and "recsys movies refresh" in err
    await retriever.start()
    for _ in range(40):  # the catalog's channel reconnects after its backoff
        code = await asyncio.to_thread(main, cmd)
        if code == 0:
            break
        await asyncio.sleep(0.5)
    assert code == 0
    out = capsys.readouterr().out
    assert f"refreshed movie {mid}: 3 rating(s)" in out and "0 still stale" in out
    assert await asyncio.to_thread(main, cmd) == 0
    assert "0 movie(s) refreshed" in capsys.readouterr().out
