"""Exact exclusion for a heavy user (issue #14 item 5), and the movie-card cache's invalidation
(issue #15), through the real gateway.

A real catalog (PostgreSQL, bulk-loaded) holds 5,200 movies and one user who rated 5,000 of
them; a real retriever (Milvus Lite, exact index) holds a vector per movie, arranged so that the
user's rated movies are the 5,000 nearest to the query: every one of them must be excluded for
the answer to be right. The embedder is a recording fake (its query vector is fixed), so the
test sees what reaches it: at most the gateway's history window of events, oldest first.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_catalog.testing import (
    admin_dsn_or_reason,
    catalog_server,
    create_temp_database,
    drop_temp_database,
)
from recsys_gateway.server import GatewayApp

from .fakes import FakeEmbedder, fake_server, gateway_settings, load_vectors, quick_retriever

pytestmark = pytest.mark.postgres

N_MOVIES, N_SEEN, HEAVY, OTHER = 5200, 5000, 1, 2
WINDOW, K, DIM = 100, 10, 8
T0 = 1_000_000_000  # unix seconds of the heavy user's first rating; one more second per movie
CARD_TTL_S = 3.0  # the gateway's MOVIE_CACHE_TTL_S here


def _vectors() -> np.ndarray:
    """Row m = movie m (row 0 unused). The query is e0: rated movies score 0.99..0.9, the others
    0.5..0.1, so the top 5,000 of a search without exclusion are exactly the rated movies."""
    rng = np.random.default_rng(5)
    v = np.zeros((N_MOVIES + 1, DIM), dtype=np.float32)
    seen_score = np.linspace(0.99, 0.9, N_SEEN)
    unseen_score = np.linspace(0.5, 0.1, N_MOVIES - N_SEEN)
    score = np.concatenate([[0.0], seen_score, unseen_score])
    rest = rng.normal(size=(N_MOVIES + 1, DIM - 1))
    rest /= np.linalg.norm(rest, axis=1, keepdims=True)
    v[:, 0] = score
    v[:, 1:] = rest * np.sqrt(1 - score**2)[:, None]
    return v


def _write_dataset(folder: Path) -> Path:
    """ml-latest layout: 5,200 movies; the heavy user rated 1..5000 (in id order, one a second,
    ratings 0.5..5 in turn, low ones included), another user rated three unseen movies."""
    folder.mkdir(parents=True)
    with (folder / "movies.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "title", "genres"])
        w.writerows([m, f"Movie {m} (2001)", "Drama"] for m in range(1, N_MOVIES + 1))
    with (folder / "ratings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        w.writerows([HEAVY, m, 0.5 * (1 + m % 10), T0 + m] for m in range(1, N_SEEN + 1))
        w.writerows([OTHER, m, 4.0, T0 + m] for m in (N_SEEN + 1, N_SEEN + 2, N_SEEN + 3))
    return folder


@dataclass
class Stack:
    gateway: gateway_pb2_grpc.GatewayStub
    embedder: FakeEmbedder
    catalog: catalog_pb2_grpc.CatalogStub


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    admin, reason = asyncio.run(admin_dsn_or_reason())
    if admin is None:
        pytest.skip(reason)
    name, dsn = asyncio.run(create_temp_database(admin, prefix="recsys_excl"))
    yield dsn
    asyncio.run(drop_temp_database(admin, name))


@pytest.fixture
async def stack(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    vectors = _vectors()
    data = _write_dataset(tmp_path / "heavy-latest")
    retriever = quick_retriever(tmp_path / "retriever")
    fake = FakeEmbedder(vectors, form=embedder_pb2.USER_FORM_PINSAGE)
    async with catalog_server(pg_dsn, dataset=data) as (_, catalog_port):
        retriever_port = await retriever.start()
        embedder, embedder_port = await fake_server(
            "embedder", embedder_pb2_grpc.add_EmbedderServicer_to_server, fake, "recsys.embedder.v1.Embedder"
        )
        gateway = None
        try:
            await load_vectors(retriever_port, vectors)
            gateway = await GatewayApp.started(
                gateway_settings(
                    catalog_port,
                    embedder_port,
                    retriever_port,
                    history_window=WINDOW,
                    upstream_timeout_s=30.0,
                    movie_cache_ttl_s=CARD_TTL_S,
                ),
                wait_for_upstreams=False,
            )
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as ch,
                grpc.aio.insecure_channel(f"127.0.0.1:{catalog_port}") as cat,
            ):
                yield Stack(gateway_pb2_grpc.GatewayStub(ch), fake, catalog_pb2_grpc.CatalogStub(cat))
        finally:
            if gateway is not None:
                await gateway.stop(0)
            await embedder.stop(0)
            await retriever.server.stop(0)


async def test_a_user_with_5000_ratings_gets_k_unseen_movies(stack: Stack) -> None:
    resp = await stack.gateway.Recommend(gateway_pb2.RecommendRequest(user_id=HEAVY, k=K), timeout=60)
    ids = [r.movie.movie_id for r in resp.recommendations]
    # Exactly k, none rated, and the right ones: the unseen movies nearest to the query.
    assert ids == list(range(N_SEEN + 1, N_SEEN + 1 + K))
    assert resp.strategy == gateway_pb2.STRATEGY_PERSONALIZED and resp.model_version == "fake-1"
    # The embedder got the history window only: the 100 newest events, oldest first.
    (req,) = stack.embedder.queries
    (signal,) = req.signals
    # It travels as packed columns from the real catalog (HISTORY_COLUMNS, on by default).
    assert not signal.history
    cols = signal.history_columns
    history = list(cols.movie_ids)
    assert len(history) == WINDOW
    assert history == list(range(N_SEEN - WINDOW + 1, N_SEEN + 1))
    times = list(cols.rated_at_us)
    assert times == sorted(times) and times[-1] == (T0 + N_SEEN) * 1_000_000
    # Low ratings travel as ordinary history (the embedder decides what they mean).
    assert min(cols.ratings) == 0.5
    assert [r for m, r in zip(history, cols.ratings, strict=True) if m == N_SEEN] == [0.5 * (1 + N_SEEN % 10)]
    # Explanations name movies from the window the user liked.
    assert all(
        N_SEEN - WINDOW < r.because_movie_id <= N_SEEN and r.because_title for r in resp.recommendations
    )


async def test_without_exclusion_the_rated_movies_come_first(stack: Stack) -> None:
    # The control: the arrangement really puts the rated movies on top.
    resp = await stack.gateway.Recommend(
        gateway_pb2.RecommendRequest(user_id=HEAVY, k=K, exclude_seen=False), timeout=60
    )
    assert [r.movie.movie_id for r in resp.recommendations] == list(range(1, K + 1))


async def test_exclusion_holds_when_few_unseen_movies_match(stack: Stack) -> None:
    # k = 100 of the 200 unseen movies, and the last page of them: still exact.
    resp = await stack.gateway.Recommend(gateway_pb2.RecommendRequest(user_id=HEAVY, k=100), timeout=60)
    ids = [r.movie.movie_id for r in resp.recommendations]
    assert ids == list(range(N_SEEN + 1, N_SEEN + 101))


async def _titles(stack: Stack, k: int = K) -> dict[int, str]:
    resp = await stack.gateway.Recommend(gateway_pb2.RecommendRequest(user_id=HEAVY, k=k), timeout=60)
    return {r.movie.movie_id: r.movie.title for r in resp.recommendations}


async def _rename(stack: Stack, movie_id: int, title: str) -> None:
    movie = common_pb2.Movie(movie_id=movie_id, title=title, year=2001, genres=["Drama"])
    await stack.catalog.UpsertMovies(catalog_pb2.UpsertMoviesRequest(movies=[movie]), timeout=30)


async def test_a_changed_movie_is_served_changed_within_the_cache_bound(stack: Stack) -> None:
    first = N_SEEN + 1
    assert (await _titles(stack))[first + 1] == f"Movie {first + 1}"
    # Catalog-driven: renaming moves the catalog's metadata version. The cards of this answer
    # are all cached, so the old title is still served ...
    await _rename(stack, first + 1, "Renamed Once")
    assert (await _titles(stack))[first + 1] == f"Movie {first + 1}"
    # ... until any GetMovies answer reports the newer version: asking for one more movie makes
    # the gateway fetch it, see the version and read the cached cards again, at once.
    titles = await _titles(stack, K + 1)
    assert titles[first + 1] == "Renamed Once" and titles[first + K] == f"Movie {first + K}"
    # Age bound: with every card cached and nothing asked of the catalog, a change (here a
    # rename, and the rating stats, which never move the version) shows within MOVIE_CACHE_TTL_S.
    renamed_at = asyncio.get_running_loop().time()
    await _rename(stack, first + 2, "Renamed Twice")
    await stack.gateway.RecordFeedback(
        gateway_pb2.RecordFeedbackRequest(
            ratings=[common_pb2.Rating(user_id=OTHER, movie_id=first + 3, rating=5.0)]
        ),
        timeout=30,
    )
    while (await _titles(stack, K + 1))[first + 2] != "Renamed Twice":
        assert asyncio.get_running_loop().time() - renamed_at < CARD_TTL_S + 1.0
        await asyncio.sleep(0.1)
    resp = await stack.gateway.Recommend(gateway_pb2.RecommendRequest(user_id=HEAVY, k=K), timeout=60)
    card = next(r.movie for r in resp.recommendations if r.movie.movie_id == first + 3)
    assert card.rating_count == 1 and card.rating_mean == 5.0


# --------------------------------------------- issue #16 item 6: one validation rule, one answer
async def _code(call: Any, req: Any) -> tuple[grpc.StatusCode, str]:
    try:
        await call(req, timeout=30)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_one_rule_gives_one_answer_in_every_rpc(stack: Stack) -> None:
    gw = stack.gateway
    liked = [common_pb2.RatedMovie(movie_id=N_SEEN + 1, rating=5.0)]
    unknown = common_pb2.MovieFilter(genres_any=["Dramaa"])
    # An unknown genre is INVALID_ARGUMENT everywhere (before: OK with 0 results in Recommend
    # and SimilarMovies, INVALID_ARGUMENT in SampleMovies).
    calls = [
        (gw.Recommend, gateway_pb2.RecommendRequest(user_id=HEAVY, k=K, filter=unknown)),
        (gw.Recommend, gateway_pb2.RecommendRequest(liked=liked, k=K, filter=unknown)),
        (gw.SimilarMovies, gateway_pb2.SimilarMoviesRequest(movie_id=N_SEEN + 1, k=K, filter=unknown)),
        (gw.SampleMovies, gateway_pb2.SampleMoviesRequest(n=5, filter=unknown)),
    ]
    for call, req in calls:
        code, details = await _code(call, req)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (req, code, details)
        assert "unknown genre 'Dramaa'" in details, details
    # The known genre is served in each of them.
    drama = common_pb2.MovieFilter(genres_all=["Drama"])
    resp = await gw.Recommend(gateway_pb2.RecommendRequest(liked=liked, k=K, filter=drama), timeout=30)
    assert len(resp.recommendations) == K
    similar = await gw.SimilarMovies(
        gateway_pb2.SimilarMoviesRequest(movie_id=N_SEEN + 1, k=K, filter=drama), timeout=30
    )
    assert len(similar.movies) == K
    # One year range: 1850 is refused by the gateway as by the catalog (gateway was 1800..2200).
    for year_filter in (common_pb2.MovieFilter(year_min=1850), common_pb2.MovieFilter(year_max=2150)):
        for call, req in (
            (gw.Recommend, gateway_pb2.RecommendRequest(liked=liked, k=K, filter=year_filter)),
            (gw.SampleMovies, gateway_pb2.SampleMoviesRequest(n=5, filter=year_filter)),
        ):
            code, details = await _code(call, req)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (req, details)
            assert "must be 1870..2100 or 0" in details, details
    # Search: trimmed, then checked (a padded 200-character query was refused before).
    padded = "   " + "Movie 5001 " + "x" * 189 + "   "
    assert len(padded.strip()) == 200 and len(padded) > 200
    hits = await gw.SearchMovies(gateway_pb2.SearchMoviesRequest(query=padded), timeout=30)
    assert hits is not None
    code, details = await _code(gw.SearchMovies, gateway_pb2.SearchMoviesRequest(query="y" * 201))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 200 characters" in details


async def test_a_genre_added_to_the_catalog_is_known_to_the_gateway_soon(stack: Stack) -> None:
    gw = stack.gateway
    liked = [common_pb2.RatedMovie(movie_id=N_SEEN + 1, rating=5.0)]
    noir = common_pb2.MovieFilter(genres_any=["Neo-Noir"])
    code, _ = await _code(gw.Recommend, gateway_pb2.RecommendRequest(liked=liked, k=K, filter=noir))
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # the gateway has read the vocabulary now
    movie = common_pb2.Movie(movie_id=N_MOVIES + 1, title="New (2020)", year=2020, genres=["Neo-Noir"])
    await stack.catalog.UpsertMovies(catalog_pb2.UpsertMoviesRequest(movies=[movie]), timeout=30)
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # re-read at most once a second (GENRES_RECHECK_S), well before the 60 s TTL
        code, details = await _code(gw.Recommend, gateway_pb2.RecommendRequest(liked=liked, k=K, filter=noir))
        if code == grpc.StatusCode.OK:
            break
        assert asyncio.get_running_loop().time() < deadline, details
        await asyncio.sleep(0.2)
