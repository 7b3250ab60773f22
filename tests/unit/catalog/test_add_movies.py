"""AddMovies / RetryPendingMovies rules with a fake store and a fake embedder+retriever: input
checks, staging before the vectors, promotion only after them, failures leave movies pending."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import grpc
import pytest
from recsys_catalog.model import Movie, PendingMovie
from recsys_catalog.service import RETRY_HINT, CatalogService, MovieVector
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, InvalidArgument


class Store:
    """The AddMovies part of the store: listed movies, a staging table, promotion."""

    def __init__(self) -> None:
        self.movies = {i: Movie(i, f"Movie {i}", 2000, ("Drama",)) for i in range(1, 11)}
        self.pending: dict[int, PendingMovie] = {}
        self.failures: list[tuple[list[int], str]] = []
        self.added: dict[int, str] = {}  # movie id -> the model of its inductive vector

    async def genres(self) -> tuple[str, ...]:
        return ("Comedy", "Drama")

    async def listed_movie_ids(self, movie_ids: Sequence[int]) -> set[int]:
        return {i for i in movie_ids if i in self.movies}

    async def stage_movies(self, pending: Sequence[PendingMovie]) -> list[PendingMovie]:
        out = []
        for p in pending:
            old = self.pending.get(p.movie.movie_id)
            staged = PendingMovie(p.movie, p.similar_ids, (old.revision if old else 0) + 1)
            self.pending[p.movie.movie_id] = staged
            out.append(staged)
        return out

    async def pending_movies(self, limit: int) -> list[PendingMovie]:
        return list(self.pending.values())[:limit]

    async def promote_movies(
        self, staged: Sequence[PendingMovie], model_version: str, inductive_ids: Collection[int]
    ) -> dict[int, bool]:
        done = {}
        for p in staged:
            if self.pending.get(p.movie.movie_id) == p:
                del self.pending[p.movie.movie_id]
                done[p.movie.movie_id] = p.movie.movie_id not in self.movies
                self.movies[p.movie.movie_id] = p.movie
                if p.movie.movie_id in inductive_ids:
                    self.added[p.movie.movie_id] = model_version
                else:
                    self.added.pop(p.movie.movie_id, None)
        return done

    async def pending_failed(self, movie_ids: Sequence[int], error: str) -> None:
        self.failures.append((list(movie_ids), error))

    async def count_pending(self) -> int:
        return len(self.pending)


class Pipeline:
    """Movies 1..10 are known to the model; ``down`` makes the retriever unavailable."""

    def __init__(self) -> None:
        self.down: Exception | None = None
        self.index: dict[int, tuple[float, ...]] = {}

    async def embed(self, movies: Sequence[PendingMovie]) -> tuple[str, list[MovieVector]]:
        out = []
        for p in movies:
            mid = p.movie.movie_id
            if mid <= 10:
                out.append(MovieVector(mid, (1.0, 0.0), inductive=False))
            else:
                unknown = tuple(i for i in p.similar_ids if i > 10)
                out.append(MovieVector(mid, (0.0, 1.0), inductive=True, unknown_similar_ids=unknown))
        return "m-1", out

    async def upsert(
        self, model_version: str, movies: Sequence[PendingMovie], vectors: Sequence[MovieVector]
    ) -> str:
        if self.down is not None:
            raise self.down
        for v in vectors:
            self.index[v.movie_id] = v.values
        return "m_1"


@pytest.fixture
def parts() -> tuple[CatalogService, Store, Pipeline]:
    store, pipeline = Store(), Pipeline()
    return CatalogService(store, vectors=pipeline), store, pipeline  # type: ignore[arg-type]


def movie(
    mid: int, title: str = "New", year: int | None = 2026, genres: tuple[str, ...] = ("Drama",)
) -> Movie:
    return Movie(mid, title, year, genres)


async def test_add_lists_the_movie_after_its_vector(parts: tuple[CatalogService, Store, Pipeline]) -> None:
    service, store, pipeline = parts
    result = await service.add_movies([(movie(11, "  Brand New "), [1, 2, 2]), (movie(3, "Retitled"), [])])
    assert [(m.movie_id, m.inserted, m.inductive) for m in result.movies] == [
        (11, True, True),
        (3, False, False),
    ]
    assert (result.model_version, result.vector_version, result.pending) == ("m-1", "m_1", 0)
    assert store.movies[11].title == "Brand New" and store.movies[3].title == "Retitled"
    assert set(pipeline.index) == {11, 3}
    assert not store.pending
    assert store.added == {11: "m-1"}  # an added movie (refresh re-embeds it); 3 is a trained one


async def test_add_again_is_idempotent(parts: tuple[CatalogService, Store, Pipeline]) -> None:
    service, store, _ = parts
    first = await service.add_movies([(movie(11), [1])])
    again = await service.add_movies([(movie(11, "New title"), [1])])
    assert first.movies[0].inserted and not again.movies[0].inserted
    assert store.movies[11].title == "New title"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ((movie(11, "   "), []), "movies[0].movie.title"),
        ((movie(0), []), "movies[0].movie.movie_id"),
        ((movie(11, year=1700), []), "movies[0].movie.year"),
        ((movie(11, year=2500), []), "movies[0].movie.year"),
        ((movie(11, genres=("Western",)), []), "movies[0].movie.genres"),
        ((movie(11, genres=('Bad"genre',)), []), "movies[0].movie.genres"),
        ((movie(11), [1, 99]), "movies[0].similar_movie_ids[1]"),
        ((movie(11), [11]), "movies[0].similar_movie_ids[0]"),
        ((movie(11), [-3]), "movies[0].similar_movie_ids[0]"),
        ((movie(11), list(range(1, 52))), "movies[0].similar_movie_ids"),
    ],
)
async def test_bad_input_is_invalid_argument_and_stores_nothing(
    parts: tuple[CatalogService, Store, Pipeline], entry: tuple[Movie, list[int]], field: str
) -> None:
    service, store, pipeline = parts
    with pytest.raises(InvalidArgument) as err:
        await service.add_movies([entry])
    assert err.value.field == field, err.value.message
    assert not store.pending and 11 not in store.movies and not pipeline.index


async def test_a_similar_movie_still_pending_is_unknown(
    parts: tuple[CatalogService, Store, Pipeline],
) -> None:
    service, _, pipeline = parts
    pipeline.down = DependencyUnavailable("retriever", "127.0.0.1:1: connection refused")
    with pytest.raises(DependencyUnavailable):
        await service.add_movies([(movie(11), [1])])
    with pytest.raises(InvalidArgument, match="unknown movie 11"):
        await service.add_movies([(movie(12), [11])])


async def test_call_limits(parts: tuple[CatalogService, Store, Pipeline]) -> None:
    service, _, _ = parts
    with pytest.raises(InvalidArgument, match="at least one"):
        await service.add_movies([])
    with pytest.raises(InvalidArgument, match="at most 100"):
        await service.add_movies([(movie(100 + i), []) for i in range(101)])
    with pytest.raises(InvalidArgument, match="appears twice"):
        await service.add_movies([(movie(11), []), (movie(11), [])])
    with pytest.raises(InvalidArgument, match="limit"):
        await service.retry_pending(101)


@pytest.mark.parametrize(
    "failure",
    [
        DependencyUnavailable("retriever", "127.0.0.1:1: connection refused"),
        FailedPrecondition("retriever: no PinSage version m_1 for the embedder's model m-1"),
    ],
)
async def test_a_failed_upsert_leaves_the_movie_pending_until_a_retry(
    parts: tuple[CatalogService, Store, Pipeline], failure: Exception
) -> None:
    service, store, pipeline = parts
    pipeline.down = failure
    with pytest.raises(type(failure)) as err:
        await service.add_movies([(movie(11), [1])])
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)
    assert RETRY_HINT in err.value.message and "1 movie(s) stay pending" in err.value.message
    assert 11 not in store.movies and 11 in store.pending
    assert store.failures and store.failures[0][0] == [11]
    with pytest.raises(type(failure)):  # still down: still pending
        await service.retry_pending(0)
    assert 11 in store.pending

    pipeline.down = None
    result = await service.retry_pending(0)
    assert [m.movie_id for m in result.movies] == [11] and result.pending == 0
    assert 11 in store.movies and 11 in pipeline.index and not store.pending
    assert (await service.retry_pending(0)).movies == []  # nothing left


async def test_same_call_again_completes_a_pending_movie(
    parts: tuple[CatalogService, Store, Pipeline],
) -> None:
    service, store, pipeline = parts
    pipeline.down = DependencyUnavailable("retriever", "down")
    with pytest.raises(DependencyUnavailable):
        await service.add_movies([(movie(11), [1])])
    pipeline.down = None
    result = await service.add_movies([(movie(11), [1])])
    assert result.movies[0].inserted and not store.pending and 11 in store.movies


async def test_without_upstreams_add_is_failed_precondition() -> None:
    service = CatalogService(Store())  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match="RECSYS_CATALOG_EMBEDDER_TARGET"):
        await service.add_movies([(movie(11), [])])
    with pytest.raises(FailedPrecondition):
        await service.retry_pending(0)
