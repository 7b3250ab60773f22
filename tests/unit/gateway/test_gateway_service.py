"""Gateway orchestration against in-memory fakes of the three upstreams."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.errors import InvalidArgument, NotFound, UpstreamError
from recsys_gateway import resilience
from recsys_gateway.service import GatewayOptions, GatewayService

N_MOVIES = 60
DIM = 8


class FakeUpstreams:
    """Catalog with N_MOVIES movies, an embedder that averages item vectors, a brute-force retriever."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        v = rng.normal(size=(N_MOVIES + 1, DIM)).astype(np.float32)
        self.vectors = v / np.linalg.norm(v, axis=1, keepdims=True)
        self.known = set(range(1, N_MOVIES + 1))
        self.history: dict[int, list[int]] = {7: [1, 2, 3, 4, 5]}
        self.calls: list[str] = []
        self.popular_requests: list[catalog_pb2.GetPopularRequest] = []
        self.model_version = "v-test"
        self.items_version = ""  # "" = the same as model_version
        self.items_asked: list[list[int]] = []
        self.metadata_version = 0  # GetMovies' metadata_version; 0 = unversioned (never cached)
        self.columns = False  # answers GetUserHistory(columns=true) in columns (a catalog that can)
        self.last: dict[str, object] = {}  # the last request of each call
        self.fail: dict[str, grpc.StatusCode] = {}
        # Movies added since training (catalog AddMovies): in the retriever, unknown to EmbedItems.
        self.added: dict[int, np.ndarray] = {}
        # Describe's vocabulary, deliberately unsorted with a duplicate (the gateway sorts it).
        self.genres = ["Western", "Action", "Film-Noir", "Action", "Comedy"]

    def _hit(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise UpstreamError(name.split(".")[0], self.fail[name], "boom")

    def _movie(self, mid: int) -> common_pb2.Movie:
        return common_pb2.Movie(movie_id=mid, title=f"Movie {mid}", year=1990 + mid % 10)

    async def get_movies(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.GetMovies")
        found = [self._movie(m) for m in req.movie_ids if m in self.known]
        return catalog_pb2.GetMoviesResponse(
            movies=found,
            missing_ids=[m for m in req.movie_ids if m not in self.known],
            metadata_version=self.metadata_version,
        )

    async def search_movies(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.SearchMovies")
        return catalog_pb2.SearchMoviesResponse()

    async def sample_movies(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.SampleMovies")
        return catalog_pb2.SampleMoviesResponse(movies=[self._movie(m) for m in range(1, req.n + 1)])

    async def get_popular(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.GetPopular")
        self.popular_requests.append(req)
        ids = [m for m in range(1, N_MOVIES + 1) if m not in set(req.exclude_ids)][: req.k]
        return catalog_pb2.GetPopularResponse(movies=[self._movie(m) for m in ids], scores=[1.0] * len(ids))

    async def get_user_history(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.GetUserHistory")
        self.last["catalog.GetUserHistory"] = req
        if req.user_id not in self.history:
            raise UpstreamError("catalog", grpc.StatusCode.NOT_FOUND, f"user {req.user_id} not found")
        rated = self.history[req.user_id]  # newest first, as the catalog answers
        window = rated[: req.limit or 1000]
        if self.columns and req.columns:
            return catalog_pb2.GetUserHistoryResponse(
                columns=common_pb2.HistoryColumns(
                    movie_ids=window,
                    ratings=[5.0] * len(window),
                    rated_at_us=[(10**9 - j) * 10**6 for j in range(len(window))],
                ),
                total=len(rated),
                seen_movie_ids=sorted(rated) if req.include_seen_ids else [],
            )
        return catalog_pb2.GetUserHistoryResponse(
            ratings=[
                common_pb2.Rating(user_id=req.user_id, movie_id=m, rating=5, rated_at={"seconds": 10**9 - j})
                for j, m in enumerate(window)
            ],
            total=len(rated),
            seen_movie_ids=sorted(rated) if req.include_seen_ids else [],
        )

    async def get_user_histories(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.GetUserHistories")
        out, missing = [], []
        for uid in req.user_ids:
            if uid not in self.history:
                missing.append(uid)
                continue
            rated = self.history[uid]
            out.append(
                catalog_pb2.UserHistory(
                    user_id=uid,
                    ratings=[
                        common_pb2.Rating(user_id=uid, movie_id=m, rating=5)
                        for m in rated[: req.limit or 1000]
                    ],
                    total=len(rated),
                    seen_movie_ids=sorted(rated) if req.include_seen_ids else [],
                )
            )
        return catalog_pb2.GetUserHistoriesResponse(histories=out, missing_user_ids=missing)

    async def get_users(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.GetUsers")
        return catalog_pb2.GetUsersResponse(users=[common_pb2.User(user_id=u) for u in req.user_ids])

    async def describe_catalog(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.Describe")
        await asyncio.sleep(0)  # a real call suspends: lets concurrent callers interleave
        return catalog_pb2.DescribeResponse(movie_count=N_MOVIES, genres=self.genres)

    async def record_ratings(self, req):  # type: ignore[no-untyped-def]
        self._hit("catalog.RecordRatings")
        for r in req.ratings:
            self.history.setdefault(r.user_id, []).insert(0, r.movie_id)
        return catalog_pb2.RecordRatingsResponse(stored=req.ratings)

    async def embed_query(self, req):  # type: ignore[no-untyped-def]
        self._hit("embedder.EmbedQuery")
        self.last["embedder.EmbedQuery"] = req
        out = []
        for s in req.signals:
            events = list(s.history_columns.movie_ids) or [m.movie_id for m in s.history]
            trained = {m for m in self.known if m <= N_MOVIES}  # the model knows no movie added since
            ids = [m for m in events if m in trained]
            bad = [m for m in events if m not in trained]
            if not ids and s.demographics.age:
                vec = self.vectors[0]
                out.append(
                    embedder_pb2.QueryVector(
                        vector=common_pb2.Vector(values=vec), space=common_pb2.VECTOR_SPACE_TWO_TOWER
                    )
                )
                continue
            if not ids:
                out.append(embedder_pb2.QueryVector(unknown_movie_ids=bad))
                continue
            q = self.vectors[ids].mean(axis=0)
            for d in s.disliked_movie_ids:
                q = q - 0.5 * self.vectors[d]
            q /= np.linalg.norm(q)
            out.append(
                embedder_pb2.QueryVector(
                    vector=common_pb2.Vector(values=q),
                    space=common_pb2.VECTOR_SPACE_PINSAGE,
                    unknown_movie_ids=bad,
                )
            )
        return embedder_pb2.EmbedQueryResponse(vectors=out, model_version=self.model_version)

    async def embed_items(self, req):  # type: ignore[no-untyped-def]
        self._hit("embedder.EmbedItems")
        self.items_asked.append(list(req.movie_ids))
        trained = {m for m in self.known if m <= N_MOVIES}  # the model knows no movie added since
        found = [m for m in req.movie_ids if m in trained]
        return embedder_pb2.EmbedItemsResponse(
            found_ids=found,
            vectors=[common_pb2.Vector(values=self.vectors[m]) for m in found],
            missing_ids=[m for m in req.movie_ids if m not in trained],
            model_version=self.items_version or self.model_version,
        )

    async def get_vectors(self, req):  # type: ignore[no-untyped-def]
        self._hit("retriever.GetVectors")
        self.last["retriever.GetVectors"] = req
        held = {m: self.vectors[m] for m in self.known if m <= N_MOVIES} | self.added
        return retriever_pb2.GetVectorsResponse(
            items=[
                retriever_pb2.VectorItem(movie_id=m, vector=common_pb2.Vector(values=held[m]))
                for m in req.movie_ids
                if m in held
            ],
            missing_ids=[m for m in req.movie_ids if m not in held],
        )

    async def search(self, req):  # type: ignore[no-untyped-def]
        self._hit("retriever.Search")
        self.last["retriever.Search"] = req
        results = []
        for q in req.queries:
            scores = self.vectors[1:] @ np.asarray(q.vector.values, dtype=np.float32)
            order = np.argsort(-scores)
            excl = set(q.exclude_ids)
            hits = [
                common_pb2.ScoredMovie(movie_id=int(i + 1), score=float(scores[i]))
                for i in order
                if int(i + 1) not in excl
            ][: req.k]
            results.append(retriever_pb2.SearchResult(hits=hits))
        return retriever_pb2.SearchResponse(results=results)


@pytest.fixture
def fake() -> FakeUpstreams:
    return FakeUpstreams()


@pytest.fixture
def svc(fake: FakeUpstreams) -> GatewayService:
    return GatewayService(fake)


async def test_recommend_known_user_excludes_seen_and_explains(svc: GatewayService) -> None:
    resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    ids = [r.movie.movie_id for r in resp.recommendations]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert not set(ids) & {1, 2, 3, 4, 5}
    assert resp.strategy == gateway_pb2.STRATEGY_PERSONALIZED
    assert all(r.because_movie_id in {1, 2, 3, 4, 5} for r in resp.recommendations)
    assert all(r.because_title == f"Movie {r.because_movie_id}" for r in resp.recommendations)
    scores = [r.score for r in resp.recommendations]
    assert scores == sorted(scores, reverse=True)


async def test_every_rated_movie_is_excluded_and_the_window_builds_the_vector(fake: FakeUpstreams) -> None:
    fake.history[8] = list(range(50, 0, -1))  # 50 ratings, newest first: movie 50 is the newest
    svc = GatewayService(fake, GatewayOptions(history_window=5))
    resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=8, k=10))
    ids = [r.movie.movie_id for r in resp.recommendations]
    assert sorted(ids) == list(range(51, N_MOVIES + 1))  # exactly the 10 unseen movies
    hist_req = fake.last["catalog.GetUserHistory"]
    assert hist_req.limit == 5 and hist_req.include_seen_ids  # type: ignore[attr-defined]
    (signal,) = fake.last["embedder.EmbedQuery"].signals  # type: ignore[attr-defined]
    # The window only, in event order: oldest first, the newest last.
    assert [m.movie_id for m in signal.history] == [46, 47, 48, 49, 50]
    (query,) = fake.last["retriever.Search"].queries  # type: ignore[attr-defined]
    assert sorted(query.exclude_ids) == list(range(1, 51))
    assert all(r.because_movie_id in {46, 47, 48, 49, 50} for r in resp.recommendations)


async def test_seen_ids_not_asked_for_when_not_excluding(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake, GatewayOptions(history_window=3))
    await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=5, exclude_seen=False))
    hist_req = fake.last["catalog.GetUserHistory"]
    assert hist_req.limit == 3 and not hist_req.include_seen_ids  # type: ignore[attr-defined]
    (query,) = fake.last["retriever.Search"].queries  # type: ignore[attr-defined]
    assert not query.exclude_ids


def test_exclusion_past_the_upstream_limit_over_fetches_by_the_overflow() -> None:
    from recsys_gateway.service import MAX_EXCLUDE_IDS, MAX_UPSTREAM_K, _exclusion

    few = list(range(1, 5001))
    assert _exclusion(few, 10) == (few, 10)
    many = list(range(1, MAX_EXCLUDE_IDS + 301))
    sent, k = _exclusion(many, 10)
    assert sent == many[:MAX_EXCLUDE_IDS] and k == 310
    sent, k = _exclusion(list(range(1, MAX_EXCLUDE_IDS + 5001)), 10)
    assert len(sent) == MAX_EXCLUDE_IDS and k == MAX_UPSTREAM_K


async def test_recommend_exclude_seen_off_allows_seen(svc: GatewayService) -> None:
    resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=N_MOVIES, exclude_seen=False))
    assert {1, 2, 3, 4, 5} <= {r.movie.movie_id for r in resp.recommendations}


async def test_recommend_feedback_is_reflected(svc: GatewayService, fake: FakeUpstreams) -> None:
    before = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=5))
    first = before.recommendations[0].movie.movie_id
    await svc.record_feedback(
        gateway_pb2.RecordFeedbackRequest(ratings=[common_pb2.Rating(user_id=7, movie_id=first, rating=5)])
    )
    after = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=5))
    assert first not in {r.movie.movie_id for r in after.recommendations}


async def test_anonymous_likes_and_dislikes_are_excluded_and_dislikes_count(svc: GatewayService) -> None:
    liked = [common_pb2.RatedMovie(movie_id=m) for m in (10, 11, 12)]
    only_likes = await svc.recommend(gateway_pb2.RecommendRequest(liked=liked, k=20))
    with_dislike = await svc.recommend(
        gateway_pb2.RecommendRequest(liked=liked, disliked_movie_ids=[30], k=20)
    )
    for resp in (only_likes, with_dislike):
        ids = {r.movie.movie_id for r in resp.recommendations}
        assert not ids & {10, 11, 12, 30}
        assert len(ids) == 20
    assert [r.movie.movie_id for r in only_likes.recommendations] != [
        r.movie.movie_id for r in with_dislike.recommendations
    ]


async def test_all_unknown_likes_fall_back_to_popular(svc: GatewayService) -> None:
    resp = await svc.recommend(
        gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=9999)], k=5)
    )
    assert resp.strategy == gateway_pb2.STRATEGY_POPULAR
    assert list(resp.unknown_movie_ids) == [9999]
    assert len(resp.recommendations) == 5


async def test_demographics_use_two_tower(svc: GatewayService) -> None:
    resp = await svc.recommend(
        gateway_pb2.RecommendRequest(
            demographics=common_pb2.Demographics(gender=1, age=25, occupation="4"), k=5
        )
    )
    assert resp.strategy == gateway_pb2.STRATEGY_DEMOGRAPHIC
    assert len(resp.recommendations) == 5
    assert all(r.because_movie_id == 0 for r in resp.recommendations)


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (gateway_pb2.RecommendRequest(), "user_id"),
        (gateway_pb2.RecommendRequest(user_id=-3), "user_id"),
        (gateway_pb2.RecommendRequest(user_id=7, k=101), "k"),
        (gateway_pb2.RecommendRequest(user_id=7, k=-1), "k"),
        (gateway_pb2.RecommendRequest(user_id=7, liked=[common_pb2.RatedMovie(movie_id=1)]), "user_id"),
        (gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=0)]), "liked[0].movie_id"),
        (
            gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1, rating=float("nan"))]),
            "liked[0].rating",
        ),
        (
            gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1)], disliked_movie_ids=[1]),
            "disliked_movie_ids",
        ),
        (
            gateway_pb2.RecommendRequest(
                user_id=7, filter=common_pb2.MovieFilter(year_min=2000, year_max=1990)
            ),
            "filter.year_min",
        ),
        (gateway_pb2.RecommendRequest(demographics=common_pb2.Demographics(age=300)), "demographics.age"),
    ],
)
async def test_recommend_invalid(svc: GatewayService, fake: FakeUpstreams, req, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as exc:
        await svc.recommend(req)
    assert exc.value.field == field
    assert fake.calls == []  # nothing reached an upstream


async def test_unknown_user_is_not_found_from_catalog(svc: GatewayService) -> None:
    with pytest.raises(UpstreamError) as exc:
        await svc.recommend(gateway_pb2.RecommendRequest(user_id=12345))
    assert exc.value.status_code == grpc.StatusCode.NOT_FOUND


async def test_upstream_unavailable_names_upstream(svc: GatewayService, fake: FakeUpstreams) -> None:
    fake.fail["retriever.Search"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError) as exc:
        await svc.recommend(gateway_pb2.RecommendRequest(user_id=7))
    assert exc.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert "retriever" in str(exc.value)


async def test_similar_movies(svc: GatewayService) -> None:
    resp = await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=3, k=7))
    ids = [r.movie.movie_id for r in resp.movies]
    assert len(ids) == 7 and 3 not in ids and len(set(ids)) == 7
    with pytest.raises(NotFound):
        await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=5000))


async def test_similar_movies_of_a_movie_added_since_training(
    svc: GatewayService, fake: FakeUpstreams
) -> None:
    """issue #20: EmbedItems does not know a movie added by AddMovies; its vector comes from the
    retriever's version of the same model, and the neighbours are those of that vector."""
    new_id = N_MOVIES + 1
    fake.added[new_id] = fake.vectors[9].copy()  # its inductive vector: that of movie 9
    # Listed in the catalog only once promoted: before that, NOT_FOUND (never a pending movie).
    with pytest.raises(NotFound):
        await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=new_id, k=5))
    fake.known.add(new_id)  # promoted: the catalog lists it ...
    fake.items_asked.clear()
    resp = await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=new_id, k=5))
    ids = [r.movie.movie_id for r in resp.movies]
    scores = fake.vectors[1 : N_MOVIES + 1] @ fake.vectors[9]
    expected = [int(i + 1) for i in np.argsort(-scores)][:5]  # movie 9 first: same vector
    assert ids == expected and new_id not in ids
    assert all(r.because_movie_id == new_id for r in resp.movies)
    got = fake.last["retriever.GetVectors"]
    assert list(got.movie_ids) == [new_id] and got.version == "v_test"  # the model's version
    assert fake.last["retriever.Search"].version == "v_test"
    # A listed movie neither the model nor the retriever holds stays NOT_FOUND.
    fake.known.add(new_id + 1)
    with pytest.raises(NotFound):
        await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=new_id + 1, k=5))


async def test_because_you_liked_names_a_movie_added_since_training(
    svc: GatewayService, fake: FakeUpstreams
) -> None:
    """issue #20: a liked movie the model does not know (added by AddMovies) is a "because you
    liked" candidate with its vector from the retriever's version of the model; never named
    while the catalog does not list it; the same picks as if the model had its vector."""
    new_id = N_MOVIES + 1
    fake.added[new_id] = fake.vectors[9].copy()
    req = gateway_pb2.RecommendRequest(
        liked=[common_pb2.RatedMovie(movie_id=1), common_pb2.RatedMovie(movie_id=new_id)]
    )
    # Pending (in the retriever, not listed by the catalog): never named.
    resp = await svc.recommend(req)
    assert list(resp.unknown_movie_ids) == [new_id]
    assert resp.recommendations and all(r.because_movie_id == 1 for r in resp.recommendations)
    # Its inductive vector: that of the first hit (so it is that hit's closest liked movie).
    first = resp.recommendations[0].movie.movie_id
    fake.added[new_id] = fake.vectors[first].copy()
    fake.known.add(new_id)  # promoted: the catalog lists it
    resp = await svc.recommend(req)
    hits = [r.movie.movie_id for r in resp.recommendations]
    pool = {1: fake.vectors[1], new_id: fake.vectors[first]}
    expected = {h: max(pool, key=lambda m: float(fake.vectors[h] @ pool[m])) for h in hits}
    assert {r.movie.movie_id: r.because_movie_id for r in resp.recommendations} == expected
    assert new_id in expected.values()  # the data makes the added movie the pick for some hit
    named = [r for r in resp.recommendations if r.because_movie_id == new_id]
    assert all(r.because_title == f"Movie {new_id}" for r in named)
    got = fake.last["retriever.GetVectors"]
    assert list(got.movie_ids) == [new_id] and got.version == "v_test"
    # The retriever refusing GetVectors (no fallbacks here) is the caller's error, as for other hops.
    fake.fail["retriever.GetVectors"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError):
        await svc.recommend(req)


async def test_because_with_the_retriever_down_is_flagged_and_skips_added_movies(fake: FakeUpstreams) -> None:
    new_id = N_MOVIES + 1
    fake.added[new_id] = fake.vectors[9].copy()
    fake.known.add(new_id)
    svc = GatewayService(fake, GatewayOptions(fallbacks=True))
    fake.fail["retriever.GetVectors"] = grpc.StatusCode.UNAVAILABLE
    req = gateway_pb2.RecommendRequest(
        liked=[common_pb2.RatedMovie(movie_id=1), common_pb2.RatedMovie(movie_id=new_id)]
    )
    resp = await svc.recommend(req)
    assert resp.recommendations and all(r.because_movie_id == 1 for r in resp.recommendations)
    assert list(resp.degraded) == [resilience.RETRIEVER_BECAUSE]


async def test_catalog_passthrough_validation(svc: GatewayService) -> None:
    with pytest.raises(InvalidArgument):
        await svc.get_movies(gateway_pb2.GetMoviesRequest(movie_ids=list(range(1, 1002))))
    with pytest.raises(InvalidArgument):
        await svc.search_movies(gateway_pb2.SearchMoviesRequest(query="   "))
    with pytest.raises(InvalidArgument):
        await svc.sample_movies(gateway_pb2.SampleMoviesRequest(n=1000))
    quiz = await svc.sample_movies(gateway_pb2.SampleMoviesRequest())
    assert len(quiz.movies) == 16
    with pytest.raises(InvalidArgument):
        await svc.record_feedback(
            gateway_pb2.RecordFeedbackRequest(
                ratings=[common_pb2.Rating(user_id=1, movie_id=1, rating=float("inf"))]
            )
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_list_genres_is_the_catalog_vocabulary_sorted(svc: GatewayService, fake: FakeUpstreams) -> None:
    resp = await svc.list_genres(gateway_pb2.ListGenresRequest())
    assert list(resp.genres) == ["Action", "Comedy", "Film-Noir", "Western"]
    assert fake.calls == ["catalog.Describe"]


async def test_list_genres_cached_for_the_ttl(fake: FakeUpstreams) -> None:
    clock = Clock()
    svc = GatewayService(fake, GatewayOptions(genres_ttl_s=60), clock=clock)
    first = await svc.list_genres(gateway_pb2.ListGenresRequest())
    fake.genres = ["Drama"]
    clock.now += 59.9
    assert (await svc.list_genres(gateway_pb2.ListGenresRequest())).genres == first.genres
    assert fake.calls == ["catalog.Describe"]
    clock.now += 0.1  # 60 s after the read: read again
    assert list((await svc.list_genres(gateway_pb2.ListGenresRequest())).genres) == ["Drama"]
    assert fake.calls == ["catalog.Describe"] * 2


async def test_list_genres_ttl_zero_always_reads(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake, GatewayOptions(genres_ttl_s=0))
    for _ in range(3):
        await svc.list_genres(gateway_pb2.ListGenresRequest())
    assert fake.calls == ["catalog.Describe"] * 3


async def test_list_genres_concurrent_misses_share_one_read(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake)
    results = await asyncio.gather(*(svc.list_genres(gateway_pb2.ListGenresRequest()) for _ in range(10)))
    assert fake.calls == ["catalog.Describe"]
    assert all(r == results[0] for r in results)


async def test_list_genres_catalog_unavailable_names_it_and_caches_nothing(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake)
    fake.fail["catalog.Describe"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(UpstreamError) as exc:
        await svc.list_genres(gateway_pb2.ListGenresRequest())
    assert exc.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert str(exc.value).startswith("catalog")
    del fake.fail["catalog.Describe"]  # back: the next call reads at once (no cached failure)
    assert list((await svc.list_genres(gateway_pb2.ListGenresRequest())).genres)
    assert fake.calls == ["catalog.Describe"] * 2


async def test_list_genres_empty_catalog(fake: FakeUpstreams) -> None:
    fake.genres = []
    resp = await GatewayService(fake).list_genres(gateway_pb2.ListGenresRequest())
    assert list(resp.genres) == []


async def test_the_fallback_asks_for_the_configured_popularity(fake: FakeUpstreams) -> None:
    """Default: the recency-weighted ranking at the catalog's half-life; options override both."""
    req = gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=9999)], k=5)
    await GatewayService(fake).recommend(req)
    sent = fake.popular_requests[-1]
    assert sent.ranking == catalog_pb2.POPULARITY_RANKING_RECENT and sent.half_life_days == 0.0
    opts = GatewayOptions(
        popular_ranking=catalog_pb2.POPULARITY_RANKING_MOST_RATED, popular_half_life_days=3.0
    )
    await GatewayService(fake, opts).recommend(req)
    sent = fake.popular_requests[-1]
    assert sent.ranking == catalog_pb2.POPULARITY_RANKING_MOST_RATED and sent.half_life_days == 3.0


async def test_because_vectors_are_cached_per_model_version(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake)
    first = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert fake.calls.count("embedder.EmbedItems") == 1
    again = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert fake.calls.count("embedder.EmbedItems") == 1  # every vector cached: no embedder hop
    assert [(r.movie.movie_id, r.because_movie_id) for r in again.recommendations] == [
        (r.movie.movie_id, r.because_movie_id) for r in first.recommendations
    ]
    # only the vectors not yet cached are asked for
    await svc.recommend(gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=40)], k=10))
    assert fake.calls.count("embedder.EmbedItems") == 2
    assert not set(fake.items_asked[-1]) & set(fake.items_asked[0])
    # a new model: everything is asked for again
    fake.model_version = "v-next"
    await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert fake.calls.count("embedder.EmbedItems") == 3
    assert set(fake.items_asked[-1]) == set(fake.items_asked[0])


async def test_because_never_compares_two_models_vectors(fake: FakeUpstreams) -> None:
    """EmbedItems answering from another model than EmbedQuery: no "because" from it, nothing cached."""
    fake.items_version = "v-other"
    svc = GatewayService(fake)
    resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert len(resp.recommendations) == 10
    assert all(r.because_movie_id == 0 for r in resp.recommendations)
    await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert fake.calls.count("embedder.EmbedItems") == 2  # nothing was cached


async def test_item_vector_cache_off(fake: FakeUpstreams) -> None:
    svc = GatewayService(fake, GatewayOptions(item_vector_cache=0))
    for _ in range(2):
        resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
        assert all(r.because_movie_id in {1, 2, 3, 4, 5} for r in resp.recommendations)
    assert fake.calls.count("embedder.EmbedItems") == 2


async def test_versioned_cards_come_from_the_cache(fake: FakeUpstreams) -> None:
    fake.metadata_version = 3
    svc = GatewayService(fake, GatewayOptions())
    req = gateway_pb2.RecommendRequest(user_id=7, k=5)
    first = await svc.recommend(req)
    similar = await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=1, k=5))
    fake.calls.clear()
    assert await svc.recommend(req) == first
    assert await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=1, k=5)) == similar
    assert "catalog.GetMovies" not in fake.calls
    # Unversioned answers (an older catalog) are never cached: every Recommend reads them.
    fake.metadata_version = 0
    plain = GatewayService(fake, GatewayOptions())
    await plain.recommend(req)
    fake.calls.clear()
    await plain.recommend(req)
    assert fake.calls.count("catalog.GetMovies") == 1


async def test_history_as_columns_gives_the_same_answer(fake: FakeUpstreams) -> None:
    """HISTORY_COLUMNS: the catalog's packed columns reach the embedder reversed into event order,
    with the same answer as per-event messages (and a catalog without columns still works)."""
    fake.history[7] = [5, 3, 9, 1, 2]  # newest first
    req = gateway_pb2.RecommendRequest(user_id=7, k=5)
    messages = await GatewayService(fake, GatewayOptions(history_columns=False)).recommend(req)
    sent = fake.last["embedder.EmbedQuery"].signals[0]  # type: ignore[attr-defined]
    assert [m.movie_id for m in sent.history] == [2, 1, 9, 3, 5]
    old_catalog = await GatewayService(fake, GatewayOptions()).recommend(req)  # asks, gets messages
    fake.columns = True
    columns = await GatewayService(fake, GatewayOptions()).recommend(req)
    sent = fake.last["embedder.EmbedQuery"].signals[0]  # type: ignore[attr-defined]
    assert not sent.history and list(sent.history_columns.movie_ids) == [2, 1, 9, 3, 5]
    assert list(sent.history_columns.rated_at_us) == sorted(sent.history_columns.rated_at_us)
    assert columns == messages == old_catalog
    assert {r.movie.movie_id for r in columns.recommendations}.isdisjoint(fake.history[7])


async def test_search_uses_the_item_vectors_of_the_query_vectors_model(fake: FakeUpstreams) -> None:
    """issue #18: Recommend and SimilarMovies search the retriever version of the model the
    embedder answered with, so a query vector never meets another model's item vectors, also
    while the embedders switch models and before the alias moves."""
    svc = GatewayService(fake)
    fake.model_version = "20261123T101500Z-ml-100k"
    resp = await svc.recommend(gateway_pb2.RecommendRequest(user_id=7, k=10))
    assert resp.model_version == "20261123T101500Z-ml-100k"
    assert fake.last["retriever.Search"].version == "20261123T101500Z_ml_100k"
    fake.model_version = "20261201T000000Z-ml-100k"
    await svc.recommend(gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=40)], k=10))
    assert fake.last["retriever.Search"].version == "20261201T000000Z_ml_100k"
    await svc.similar_movies(gateway_pb2.SimilarMoviesRequest(movie_id=3, k=5))
    assert fake.last["retriever.Search"].version == "20261201T000000Z_ml_100k"
