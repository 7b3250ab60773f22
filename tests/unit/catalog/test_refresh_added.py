"""RefreshAddedMovies rules with a fake store and a fake embedder+retriever: which added movies
are re-embedded (ratings since, or another model), with which neighbours (co-rated first, then
the similar ids they were added with), idempotence, and failures that record nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import grpc
import pytest
from recsys_catalog.model import AddedToRefresh, Movie, PendingMovie, RefreshedMovie
from recsys_catalog.service import REFRESH_HINT, CatalogService, MovieVector
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, InvalidArgument
from recsys_core.validation import MAX_NEIGHBOURS


class Store:
    """Movies 1..80 from the data set, added movies with their state, ratings (user, movie)."""

    def __init__(self) -> None:
        self.movies = {i: Movie(i, f"Movie {i}", 2000, ("Drama",)) for i in range(1, 81)}
        self.ratings: set[tuple[int, int]] = set()
        # movie id -> (model, rating count when embedded, similar ids, neighbours used)
        self.added: dict[int, tuple[str, int, tuple[int, ...], tuple[int, ...]]] = {}
        self.marked: list[list[RefreshedMovie]] = []

    def add(self, mid: int, model: str, similar: tuple[int, ...]) -> None:
        self.movies[mid] = Movie(mid, f"Added {mid}", 2026, ("Drama",))
        self.added[mid] = (model, self.count(mid), similar, similar)

    def rate(self, user: int, mid: int) -> None:
        self.ratings.add((user, mid))

    def count(self, mid: int) -> int:
        return sum(1 for _, m in self.ratings if m == mid)

    def _stale(self, model: str) -> list[int]:
        return sorted(m for m, (mv, n, _, _) in self.added.items() if mv != model or self.count(m) != n)

    async def added_to_refresh(self, model_version: str, limit: int) -> list[AddedToRefresh]:
        out = []
        for m in self._stale(model_version)[:limit]:
            base = self.movies[m]
            movie = Movie(m, base.title, base.year, base.genres, rating_count=self.count(m))
            out.append(AddedToRefresh(movie, self.added[m][2]))
        return out

    async def count_to_refresh(self, model_version: str) -> int:
        return len(self._stale(model_version))

    async def co_rated_neighbours(self, movie_ids: Sequence[int], limit: int) -> dict[int, tuple[int, ...]]:
        out = {}
        for target in movie_ids:
            raters = {u for u, m in self.ratings if m == target}
            co = Counter(m for u, m in self.ratings if u in raters and m != target and m not in self.added)
            if co:
                ranked = sorted(co, key=lambda m: (-co[m], -self.count(m), m))
                out[target] = tuple(ranked[:limit])
        return out

    async def mark_refreshed(self, model_version: str, refreshed: Sequence[RefreshedMovie]) -> None:
        self.marked.append(list(refreshed))
        for r in refreshed:
            if r.inductive:
                self.added[r.movie_id] = (
                    model_version,
                    r.rating_count,
                    self.added[r.movie_id][2],
                    r.neighbour_ids,
                )
            else:
                del self.added[r.movie_id]


class Pipeline:
    """Serves model ``model``; it knows the movies in ``trained``; ``down`` fails the upsert."""

    def __init__(self) -> None:
        self.model = "m-1"
        self.trained = set(range(1, 81))
        self.down: Exception | None = None
        self.embedded: list[list[PendingMovie]] = []
        self.index: dict[int, tuple[float, ...]] = {}
        self.upserted_into: list[str] = []

    async def model_version(self) -> str:
        return self.model

    async def embed(self, movies: Sequence[PendingMovie]) -> tuple[str, list[MovieVector]]:
        self.embedded.append(list(movies))
        out = []
        for p in movies:
            mid = p.movie.movie_id
            if mid in self.trained:
                out.append(MovieVector(mid, (1.0, 0.0), inductive=False))
            else:
                unknown = tuple(i for i in p.similar_ids if i not in self.trained)
                vec = (float(len(p.similar_ids)), 1.0)
                out.append(MovieVector(mid, vec, inductive=True, unknown_similar_ids=unknown))
        return self.model, out

    async def upsert(
        self, model_version: str, movies: Sequence[PendingMovie], vectors: Sequence[MovieVector]
    ) -> str:
        if self.down is not None:
            raise self.down
        for v in vectors:
            self.index[v.movie_id] = v.values
        version = model_version.replace("-", "_")
        self.upserted_into.append(version)
        return version


@pytest.fixture
def parts() -> tuple[CatalogService, Store, Pipeline]:
    store, pipeline = Store(), Pipeline()
    return CatalogService(store, vectors=pipeline), store, pipeline  # type: ignore[arg-type]


async def test_nothing_changed_nothing_done(parts: tuple[CatalogService, Store, Pipeline]) -> None:
    service, store, pipeline = parts
    store.add(100, "m-1", (1, 2))
    result = await service.refresh_added_movies(0)
    assert (result.movies, result.model_version, result.vector_version, result.remaining) == (
        [],
        "m-1",
        "m_1",
        0,
    )
    assert pipeline.embedded == [] and pipeline.index == {}


async def test_ratings_since_make_co_rated_movies_the_neighbours(
    parts: tuple[CatalogService, Store, Pipeline],
) -> None:
    service, store, pipeline = parts
    store.add(100, "m-1", (1, 2))
    store.add(101, "m-1", (3,))  # no ratings since: left alone
    # users 1 and 2 rated the new movie; movie 7 is rated by both, 5 and 6 by one
    for user, movies in {1: (100, 7, 5), 2: (100, 7, 6, 101), 3: (5, 6)}.items():
        for m in movies:
            store.rate(user, m)
    result = await service.refresh_added_movies(0)
    assert [(m.movie_id, m.inductive, m.rating_count) for m in result.movies] == [
        (100, True, 2),
        (101, True, 1),
    ]
    # 7 (two common raters) first, then 5 and 6 (one each; as many ratings: by id), then the
    # similar ids it was added with; the other added movie (101) is never a neighbour
    assert result.movies[0].neighbour_ids == (7, 5, 6, 1, 2)
    assert result.movies[1].neighbour_ids == (6, 7, 3)  # 101 got a rating from user 2 too
    assert [p.similar_ids for p in pipeline.embedded[0]] == [(7, 5, 6, 1, 2), (6, 7, 3)]
    assert set(pipeline.index) == {100, 101} and pipeline.upserted_into == ["m_1"]
    assert result.remaining == 0 and store.added[100][:2] == ("m-1", 2)
    # idempotent: the same state again does nothing
    again = await service.refresh_added_movies(0)
    assert again.movies == [] and len(pipeline.embedded) == 1
    # one more rating: only that movie again
    store.rate(3, 100)
    third = await service.refresh_added_movies(0)
    assert [m.movie_id for m in third.movies] == [100] and third.movies[0].rating_count == 3


async def test_neighbours_are_capped_and_unknown_ones_not_recorded(
    parts: tuple[CatalogService, Store, Pipeline],
) -> None:
    service, store, pipeline = parts
    store.add(100, "m-1", (1, 2, 3))
    for m in range(1, 81):  # one user rated everything: 79 co-rated movies (ties by id)
        store.rate(1, m)
    store.rate(1, 100)
    pipeline.trained.discard(4)  # a neighbour the model does not know is dropped by the embedder
    result = await service.refresh_added_movies(0)
    used = result.movies[0].neighbour_ids
    sent = pipeline.embedded[0][0].similar_ids
    assert len(sent) == MAX_NEIGHBOURS and sent == tuple(range(1, MAX_NEIGHBOURS + 1))
    assert 4 not in used and len(used) == MAX_NEIGHBOURS - 1


async def test_another_model_reembeds_and_a_trained_movie_is_added_no_more(
    parts: tuple[CatalogService, Store, Pipeline],
) -> None:
    service, store, pipeline = parts
    store.add(100, "m-1", (1,))
    store.add(101, "m-1", (2,))
    pipeline.model = "m-2"  # a retrain: it learned 101 (it had ratings in the training data), not 100
    pipeline.trained.add(101)
    result = await service.refresh_added_movies(0)
    assert [(m.movie_id, m.inductive) for m in result.movies] == [(100, True), (101, False)]
    assert result.model_version == "m-2" and pipeline.upserted_into == ["m_2"]
    assert store.added == {100: ("m-2", 0, (1,), (1,))}
    assert (await service.refresh_added_movies(0)).movies == []


async def test_limit_and_remaining(parts: tuple[CatalogService, Store, Pipeline]) -> None:
    service, store, _ = parts
    for mid in range(100, 105):
        store.add(mid, "m-0", ())
    first = await service.refresh_added_movies(2)
    assert [m.movie_id for m in first.movies] == [100, 101] and first.remaining == 3
    second = await service.refresh_added_movies(100)
    assert [m.movie_id for m in second.movies] == [102, 103, 104] and second.remaining == 0
    for bad in (-1, 101):
        with pytest.raises(InvalidArgument) as err:
            await service.refresh_added_movies(bad)
        assert err.value.field == "limit"


@pytest.mark.parametrize(
    "failure",
    [
        DependencyUnavailable("retriever", "127.0.0.1:1: connection refused"),
        FailedPrecondition("retriever: no PinSage version m_1 for the embedder's model m-1"),
    ],
)
async def test_upstream_failure_records_nothing(
    parts: tuple[CatalogService, Store, Pipeline], failure: Exception
) -> None:
    service, store, pipeline = parts
    store.add(100, "m-1", (1,))
    store.rate(1, 100)
    pipeline.down = failure
    with pytest.raises(type(failure)) as err:
        await service.refresh_added_movies(0)
    assert REFRESH_HINT in err.value.message
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)
    assert store.marked == [] and store.added[100][1] == 0  # still stale: the next run retries
    pipeline.down = None
    assert [m.movie_id for m in (await service.refresh_added_movies(0)).movies] == [100]


async def test_without_upstreams_failed_precondition() -> None:
    service = CatalogService(Store())  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition):
        await service.refresh_added_movies(0)
