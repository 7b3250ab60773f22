"""The catalog gRPC server over the wire: every RPC, error codes, health, reflection, start-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from recsys.catalog.v1 import catalog_pb2 as pb
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys_catalog.server import CatalogServer
from recsys_catalog.servicer import SERVICE_NAME
from recsys_catalog.settings import CatalogSettings
from recsys_catalog.store import create_database
from recsys_catalog.testing import catalog_server, create_temp_database, drop_temp_database, prepare_catalog
from recsys_core.errors import bad_request_fields
from recsys_core.testing import health_status, reflection_file_containing, reflection_services, test_settings
from recsys_data import Dataset

pytestmark = pytest.mark.postgres

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def channel(loaded_dsn: str) -> AsyncIterator[grpc.aio.Channel]:
    async with catalog_server(loaded_dsn) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> catalog_pb2_grpc.CatalogStub:
    return catalog_pb2_grpc.CatalogStub(channel)


async def expect_code(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    assert await health_status(channel, "") == SERVING
    assert await health_status(channel, SERVICE_NAME) == SERVING
    assert SERVICE_NAME in await reflection_services(channel)
    files = await reflection_file_containing(channel, f"{SERVICE_NAME}.GetMovies")
    assert any(f.name.endswith("catalog.proto") for f in files)


async def test_movies_rpcs(stub: catalog_pb2_grpc.CatalogStub, dataset: Dataset) -> None:
    resp = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[2, 123_456, 1, 2]), timeout=10)
    assert [m.movie_id for m in resp.movies] == [2, 1, 2] and list(resp.missing_ids) == [123_456]
    assert resp.movies[0].title and resp.movies[0].rating_count >= 0
    target = dataset.movies[4]
    hits = (await stub.SearchMovies(pb.SearchMoviesRequest(query=target.title.lower()), timeout=10)).hits
    assert hits[0].movie.movie_id == target.movie_id and hits[0].similarity == pytest.approx(1.0)
    a = await stub.SampleMovies(pb.SampleMoviesRequest(n=5, seed=9, min_ratings=1), timeout=10)
    b = await stub.SampleMovies(pb.SampleMoviesRequest(n=5, seed=9, min_ratings=1), timeout=10)
    assert [m.movie_id for m in a.movies] == [m.movie_id for m in b.movies] and len(a.movies) == 5
    flt = common_pb2.MovieFilter(genres_any=["Drama"], year_min=1900, year_max=2100)
    pop = await stub.GetPopular(
        pb.GetPopularRequest(k=5, filter=flt, ranking=pb.POPULARITY_RANKING_MOST_RATED), timeout=10
    )
    assert len(pop.movies) == len(pop.scores) and all("Drama" in m.genres for m in pop.movies)
    assert list(pop.scores) == sorted(pop.scores, reverse=True)
    bayes = await stub.GetPopular(pb.GetPopularRequest(k=3), timeout=10)
    assert len(bayes.movies) == 3
    page = await stub.ListMovies(pb.ListMoviesRequest(page_size=7), timeout=10)
    assert len(page.movies) == 7 and page.next_after_id == page.movies[-1].movie_id
    info = await stub.Describe(pb.DescribeRequest(), timeout=10)
    assert info.movie_count >= len(dataset.movies) and info.schema_version >= 1
    assert set(dataset.genres) <= set(info.genres) and info.loaded_at.seconds > 0


async def test_users_and_ratings_rpcs(stub: catalog_pb2_grpc.CatalogStub, dataset: Dataset) -> None:
    uid = int(dataset.interactions.user_ids[0])
    users = await stub.GetUsers(pb.GetUsersRequest(user_ids=[uid, 888_888]), timeout=10)
    assert [u.user_id for u in users.users] == [uid] and list(users.missing_ids) == [888_888]
    hist = await stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=uid, limit=2), timeout=10)
    assert len(hist.ratings) == min(2, hist.total) and hist.total >= 1
    many = await stub.GetUserHistories(pb.GetUserHistoriesRequest(user_ids=[uid, 888_888]), timeout=10)
    assert [h.user_id for h in many.histories] == [uid] and list(many.missing_user_ids) == [888_888]
    assert not hist.seen_movie_ids and not many.histories[0].seen_movie_ids  # not asked for
    rated = sorted({int(m) for m in dataset.interactions.movie_ids[dataset.interactions.user_ids == uid]})
    seen = await stub.GetUserHistory(
        pb.GetUserHistoryRequest(user_id=uid, limit=1, include_seen_ids=True), timeout=10
    )
    assert len(seen.ratings) == 1 and list(seen.seen_movie_ids) == rated and seen.total == len(rated)
    many = await stub.GetUserHistories(
        pb.GetUserHistoriesRequest(user_ids=[uid], limit=1, include_seen_ids=True), timeout=10
    )
    assert list(many.histories[0].seen_movie_ids) == rated

    when = Timestamp()
    when.FromDatetime(dt.datetime(2020, 5, 17, 12, 0, 0))
    req = pb.RecordRatingsRequest(
        ratings=[
            common_pb2.Rating(user_id=90_001, movie_id=3, rating=3.5, rated_at=when),
            common_pb2.Rating(user_id=90_001, movie_id=4, rating=5.0),  # unset: now
        ],
        create_missing_users=True,
    )
    rec = await stub.RecordRatings(req, timeout=10)
    assert list(rec.created_user_ids) == [90_001] and rec.superseded == 0
    assert rec.stored[0].rated_at == when and rec.stored[1].rated_at.seconds > when.seconds
    hist = await stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=90_001), timeout=10)
    assert [r.movie_id for r in hist.ratings] == [4, 3] and hist.total == 2
    replay = await stub.RecordRatings(req, timeout=10)  # same events again: same state
    assert list(replay.created_user_ids) == [] and len(replay.stored) == 2
    older = Timestamp()
    older.FromDatetime(dt.datetime(2019, 1, 1))
    stale = pb.RecordRatingsRequest(
        ratings=[common_pb2.Rating(user_id=90_001, movie_id=3, rating=1, rated_at=older)]
    )
    rec = await stub.RecordRatings(stale, timeout=10)
    assert rec.superseded == 1 and len(rec.stored) == 0
    again = await stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=90_001), timeout=10)
    assert [(r.movie_id, r.rating) for r in again.ratings] == [(4, 5.0), (3, 3.5)]

    up = await stub.UpsertMovies(
        pb.UpsertMoviesRequest(movies=[common_pb2.Movie(movie_id=77_777, title="Zebra Quest", year=2025)]),
        timeout=10,
    )
    assert (up.inserted, up.updated) == (1, 0)


async def test_invalid_arguments(stub: catalog_pb2_grpc.CatalogStub) -> None:
    IA = grpc.StatusCode.INVALID_ARGUMENT
    await expect_code(stub.GetMovies(pb.GetMoviesRequest(movie_ids=list(range(1, 1002)))), IA)
    await expect_code(stub.GetMovies(pb.GetMoviesRequest()), IA)
    await expect_code(stub.SearchMovies(pb.SearchMoviesRequest(query="   ")), IA)
    await expect_code(stub.SearchMovies(pb.SearchMoviesRequest(query="x", limit=101)), IA)
    await expect_code(stub.SampleMovies(pb.SampleMoviesRequest(n=0)), IA)
    bad_genre = common_pb2.MovieFilter(genres_any=["Not A Genre"])
    err = await expect_code(stub.GetPopular(pb.GetPopularRequest(k=5, filter=bad_genre)), IA)
    assert "filter.genres_any" in bad_request_fields(err)
    await expect_code(stub.GetPopular(pb.GetPopularRequest(k=0)), IA)
    await expect_code(stub.GetUsers(pb.GetUsersRequest(user_ids=[0])), IA)
    await expect_code(stub.ListMovies(pb.ListMoviesRequest(page_size=5001)), IA)
    await expect_code(stub.UpsertMovies(pb.UpsertMoviesRequest(movies=[common_pb2.Movie(movie_id=5)])), IA)
    for rating in (0.0, 5.5, 2.25, math.nan):
        bad = pb.RecordRatingsRequest(ratings=[common_pb2.Rating(user_id=1, movie_id=1, rating=rating)])
        err = await expect_code(stub.RecordRatings(bad), IA)
        assert "ratings[0].rating" in bad_request_fields(err)
    future = Timestamp()
    future.FromDatetime(dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
    bad = pb.RecordRatingsRequest(
        ratings=[
            common_pb2.Rating(user_id=1, movie_id=1, rating=3),
            common_pb2.Rating(user_id=1, movie_id=2, rating=3, rated_at=future),
        ]
    )
    err = await expect_code(stub.RecordRatings(bad), IA)
    assert "ratings[1].rated_at" in bad_request_fields(err)
    unknown_movie = pb.RecordRatingsRequest(
        ratings=[common_pb2.Rating(user_id=1, movie_id=9_999_999, rating=3)]
    )
    await expect_code(stub.RecordRatings(unknown_movie), IA)


async def test_not_found(stub: catalog_pb2_grpc.CatalogStub) -> None:
    NF = grpc.StatusCode.NOT_FOUND
    await expect_code(stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=777_777)), NF)
    unknown_user = pb.RecordRatingsRequest(ratings=[common_pb2.Rating(user_id=777_777, movie_id=1, rating=3)])
    await expect_code(stub.RecordRatings(unknown_user), NF)


async def test_unreachable_database_at_start_then_serving(pg_admin_dsn: str, dataset_dir: Path) -> None:
    """The database does not exist yet: NOT_SERVING + UNAVAILABLE, retried until it appears."""
    name, dsn = await create_temp_database(pg_admin_dsn)
    await drop_temp_database(pg_admin_dsn, name)  # a DSN to a database that is not there
    settings = test_settings(CatalogSettings, dsn=dsn, connect_retry_initial_s=0.1, connect_retry_max_s=0.2)
    app = CatalogServer(settings)
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = catalog_pb2_grpc.CatalogStub(ch)
            await asyncio.sleep(0.3)
            assert await health_status(ch, SERVICE_NAME) == NOT_SERVING
            err = await expect_code(stub.Describe(pb.DescribeRequest()), grpc.StatusCode.UNAVAILABLE)
            assert "postgresql" in (err.details() or "")
            # the database appears but has no schema: still refused, with the reason
            await create_database(pg_admin_dsn, name)
            await asyncio.sleep(0.6)
            assert await health_status(ch, SERVICE_NAME) == NOT_SERVING
            err = await expect_code(stub.Describe(pb.DescribeRequest()), grpc.StatusCode.FAILED_PRECONDITION)
            assert "recsys catalog migrate" in (err.details() or "")
            await prepare_catalog(dsn, dataset_dir)
            await app.wait_ready(10)
            assert await health_status(ch, SERVICE_NAME) == SERVING
            assert (await stub.Describe(pb.DescribeRequest(), timeout=10)).movie_count > 0
    finally:
        await app.stop(0)
        await drop_temp_database(pg_admin_dsn, name)


async def test_a_refused_login_is_unavailable_with_the_reason(pg_admin_dsn: str) -> None:
    """pg_hba.conf / role / password refusal: NOT_SERVING and UNAVAILABLE naming what to check,
    not an asyncpg error (retried: the operator may fix the server without restarting us)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_admin_dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"recsys_no_such_role:x@{host}" + (f":{parts.port}" if parts.port else "")
    dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    settings = test_settings(CatalogSettings, dsn=dsn, connect_retry_initial_s=0.1, connect_retry_max_s=0.2)
    app = CatalogServer(settings)
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = catalog_pb2_grpc.CatalogStub(ch)
            await asyncio.sleep(0.3)
            assert await health_status(ch, SERVICE_NAME) == NOT_SERVING
            err = await expect_code(stub.Describe(pb.DescribeRequest()), grpc.StatusCode.UNAVAILABLE)
            details = err.details() or ""
            assert "postgresql" in details and "pg_hba.conf" in details, details
    finally:
        await app.stop(0)
