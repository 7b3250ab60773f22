"""gRPC servicer: proto <-> domain conversion only.

Methods raise the kit's domain errors (from the service or the store); the kit's interceptor is
the one place that turns them into status codes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys_core.validation import timestamp_to_datetime

from recsys_catalog.model import (
    AddResult,
    ColumnHistory,
    History,
    Movie,
    MovieFilter,
    Rating,
    RefreshResult,
    User,
)
from recsys_catalog.service import CatalogService

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["Catalog"].full_name

_RANKINGS = {
    catalog_pb2.POPULARITY_RANKING_UNSPECIFIED: "bayesian_average",
    catalog_pb2.POPULARITY_RANKING_BAYESIAN_AVERAGE: "bayesian_average",
    catalog_pb2.POPULARITY_RANKING_MOST_RATED: "most_rated",
    catalog_pb2.POPULARITY_RANKING_RECENT: "recent",
}
_GENDER_TO_PB = {"F": common_pb2.GENDER_FEMALE, "M": common_pb2.GENDER_MALE}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _since_epoch(value: dt.datetime) -> dt.timedelta:
    """``value`` (naive = UTC) as the time since the Unix epoch, exact to the microsecond."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)) - _EPOCH


def _set_timestamp(ts: Timestamp, value: dt.datetime) -> None:
    """``ts`` = ``value`` exactly (to the microsecond; naive = UTC). Set field by field: a
    history of 1,000 events is built on every Recommend by user id, and Timestamp.FromDatetime
    plus a copy into the message cost ~4x this (issue #15's profile)."""
    d = _since_epoch(value)
    ts.seconds = d.days * 86400 + d.seconds
    ts.nanos = d.microseconds * 1000


def _timestamp(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    _set_timestamp(ts, value)
    return ts


def movie_to_pb(m: Movie) -> common_pb2.Movie:
    return common_pb2.Movie(
        movie_id=m.movie_id,
        title=m.title,
        year=m.year or 0,
        genres=list(m.genres),
        imdb_id=m.imdb_id or "",
        tmdb_id=m.tmdb_id or 0,
        poster_url=m.poster_url or "",
        info_url=m.info_url or "",
        rating_count=m.rating_count,
        rating_mean=m.rating_mean,
        added_since_training=m.added_since_training,
    )


def movie_from_pb(m: common_pb2.Movie) -> Movie:
    return Movie(
        movie_id=m.movie_id,
        title=m.title,
        year=m.year or None,
        genres=tuple(m.genres),
        imdb_id=m.imdb_id or None,
        tmdb_id=m.tmdb_id or None,
        poster_url=m.poster_url or None,
        info_url=m.info_url or None,
    )


def add_result_to_pb(r: AddResult) -> catalog_pb2.AddMoviesResponse:
    return catalog_pb2.AddMoviesResponse(
        movies=[
            catalog_pb2.AddedMovie(
                movie_id=m.movie_id,
                inserted=m.inserted,
                inductive=m.inductive,
                unknown_similar_ids=m.unknown_similar_ids,
            )
            for m in r.movies
        ],
        model_version=r.model_version,
        vector_version=r.vector_version,
        pending=r.pending,
    )


def refresh_result_to_pb(r: RefreshResult) -> catalog_pb2.RefreshAddedMoviesResponse:
    return catalog_pb2.RefreshAddedMoviesResponse(
        movies=[
            catalog_pb2.RefreshedMovie(
                movie_id=m.movie_id,
                inductive=m.inductive,
                rating_count=m.rating_count,
                neighbour_movie_ids=m.neighbour_ids,
            )
            for m in r.movies
        ],
        model_version=r.model_version,
        vector_version=r.vector_version,
        remaining=r.remaining,
    )


def user_to_pb(u: User) -> common_pb2.User:
    return common_pb2.User(
        user_id=u.user_id,
        demographics=common_pb2.Demographics(
            gender=_GENDER_TO_PB.get(u.gender or "", common_pb2.GENDER_UNSPECIFIED),
            age=u.age or 0,
            occupation=u.occupation or "",
            zip_code=u.zip_code or "",
        ),
    )


def rating_to_pb(r: Rating) -> common_pb2.Rating:
    return common_pb2.Rating(
        user_id=r.user_id, movie_id=r.movie_id, rating=r.rating, rated_at=_timestamp(r.rated_at)
    )


def filter_from_pb(f: common_pb2.MovieFilter) -> MovieFilter:
    return MovieFilter(
        genres_any=tuple(f.genres_any),
        genres_all=tuple(f.genres_all),
        year_min=f.year_min or None,
        year_max=f.year_max or None,
    )


def _add_ratings(container: Any, ratings: Sequence[Rating]) -> None:
    """Append ``ratings`` to a repeated Rating field, built in place (no per-event message built
    and then copied in: a history is up to 1,000 of them on every Recommend by user id)."""
    add = container.add
    for r in ratings:
        _set_timestamp(add(user_id=r.user_id, movie_id=r.movie_id, rating=r.rating).rated_at, r.rated_at)


def _put_columns(out: common_pb2.HistoryColumns, h: ColumnHistory) -> None:
    """A ColumnHistory as packed columns: three list extends, no per-event Python."""
    out.movie_ids.extend(h.movie_ids)
    out.ratings.extend(h.ratings)
    out.rated_at_us.extend(h.rated_at_us)


def fill_history(out: catalog_pb2.UserHistory, h: History) -> catalog_pb2.UserHistory:
    """A row history as one Rating message per event (histories asked for as columns are read
    as columns by the store and copied by _put_columns)."""
    out.user_id = h.user_id
    out.total = h.total
    out.seen_movie_ids.extend(h.seen_movie_ids)
    _add_ratings(out.ratings, h.ratings)
    return out


def history_to_pb(h: History) -> catalog_pb2.UserHistory:
    return fill_history(catalog_pb2.UserHistory(), h)


class CatalogServicer(catalog_pb2_grpc.CatalogServicer):
    def __init__(self, service: CatalogService) -> None:
        self._service = service

    async def GetMovies(
        self, request: catalog_pb2.GetMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetMoviesResponse:
        movies, missing, version = await self._service.get_movies_versioned(list(request.movie_ids))
        return catalog_pb2.GetMoviesResponse(
            movies=[movie_to_pb(m) for m in movies], missing_ids=missing, metadata_version=version
        )

    async def SearchMovies(
        self, request: catalog_pb2.SearchMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.SearchMoviesResponse:
        hits = await self._service.search_movies(request.query, request.limit)
        return catalog_pb2.SearchMoviesResponse(
            hits=[catalog_pb2.SearchHit(movie=movie_to_pb(h.movie), similarity=h.similarity) for h in hits]
        )

    async def SampleMovies(
        self, request: catalog_pb2.SampleMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.SampleMoviesResponse:
        movies = await self._service.sample_movies(
            request.n,
            request.seed,
            request.min_ratings,
            filter_from_pb(request.filter),
            list(request.exclude_ids),
        )
        return catalog_pb2.SampleMoviesResponse(movies=[movie_to_pb(m) for m in movies])

    async def GetPopular(
        self, request: catalog_pb2.GetPopularRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetPopularResponse:
        ranked = await self._service.get_popular(
            request.k,
            filter_from_pb(request.filter),
            list(request.exclude_ids),
            ranking=_RANKINGS.get(request.ranking, f"enum value {request.ranking}"),
            half_life_days=request.half_life_days,
        )
        return catalog_pb2.GetPopularResponse(
            movies=[movie_to_pb(m) for m, _ in ranked], scores=[s for _, s in ranked]
        )

    async def GetUsers(
        self, request: catalog_pb2.GetUsersRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetUsersResponse:
        users, missing = await self._service.get_users(list(request.user_ids))
        return catalog_pb2.GetUsersResponse(users=[user_to_pb(u) for u in users], missing_ids=missing)

    async def GetUserHistory(
        self, request: catalog_pb2.GetUserHistoryRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetUserHistoryResponse:
        if request.columns:  # one statement, arrays end to end (store/sql/history_columns.sql)
            c = await self._service.get_user_history_columns(
                request.user_id, request.limit, request.include_seen_ids
            )
            out = catalog_pb2.GetUserHistoryResponse(total=c.total, seen_movie_ids=c.seen_movie_ids)
            _put_columns(out.columns, c)
            return out
        h = await self._service.get_user_history(request.user_id, request.limit, request.include_seen_ids)
        out = catalog_pb2.GetUserHistoryResponse(total=h.total, seen_movie_ids=h.seen_movie_ids)
        _add_ratings(out.ratings, h.ratings)
        return out

    async def GetUserHistories(
        self, request: catalog_pb2.GetUserHistoriesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetUserHistoriesResponse:
        if request.columns:
            cols, missing = await self._service.get_user_histories_columns(
                list(request.user_ids), request.limit, request.include_seen_ids
            )
            out = catalog_pb2.GetUserHistoriesResponse(missing_user_ids=missing)
            for c in cols:
                one = out.histories.add(user_id=c.user_id, total=c.total, seen_movie_ids=c.seen_movie_ids)
                _put_columns(one.columns, c)
            return out
        histories, missing = await self._service.get_user_histories(
            list(request.user_ids), request.limit, request.include_seen_ids
        )
        out = catalog_pb2.GetUserHistoriesResponse(missing_user_ids=missing)
        for h in histories:
            fill_history(out.histories.add(), h)
        return out

    async def RecordRatings(
        self, request: catalog_pb2.RecordRatingsRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.RecordRatingsResponse:
        events = [
            (
                r.user_id,
                r.movie_id,
                float(r.rating),
                timestamp_to_datetime(r.rated_at, f"ratings[{i}].rated_at")
                if r.HasField("rated_at")
                else None,
            )
            for i, r in enumerate(request.ratings)
        ]
        result = await self._service.record_ratings(events, request.create_missing_users)
        return catalog_pb2.RecordRatingsResponse(
            stored=[rating_to_pb(r) for r in result.stored],
            superseded=result.superseded,
            created_user_ids=result.created_user_ids,
        )

    async def UpsertMovies(
        self, request: catalog_pb2.UpsertMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.UpsertMoviesResponse:
        result = await self._service.upsert_movies([movie_from_pb(m) for m in request.movies])
        return catalog_pb2.UpsertMoviesResponse(inserted=result.inserted, updated=result.updated)

    async def AddMovies(
        self, request: catalog_pb2.AddMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.AddMoviesResponse:
        result = await self._service.add_movies(
            [(movie_from_pb(m.movie), list(m.similar_movie_ids)) for m in request.movies]
        )
        return add_result_to_pb(result)

    async def RetryPendingMovies(
        self, request: catalog_pb2.RetryPendingMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.AddMoviesResponse:
        return add_result_to_pb(await self._service.retry_pending(request.limit))

    async def RefreshAddedMovies(
        self, request: catalog_pb2.RefreshAddedMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.RefreshAddedMoviesResponse:
        return refresh_result_to_pb(await self._service.refresh_added_movies(request.limit))

    async def ListMovies(
        self, request: catalog_pb2.ListMoviesRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListMoviesResponse:
        movies, next_after = await self._service.list_movies(request.after_id, request.page_size)
        return catalog_pb2.ListMoviesResponse(
            movies=[movie_to_pb(m) for m in movies], next_after_id=next_after
        )

    async def Describe(
        self, request: catalog_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.DescribeResponse:
        info = await self._service.describe()
        response = catalog_pb2.DescribeResponse(
            movie_count=info.movie_count,
            user_count=info.user_count,
            rating_count=info.rating_count,
            schema_version=info.schema_version,
            genres=list(info.genres),
            dataset_name=info.dataset_name or "",
            dataset_sha256=info.dataset_sha256 or "",
        )
        if info.loaded_at is not None:
            response.loaded_at.CopyFrom(_timestamp(info.loaded_at))
        return response
