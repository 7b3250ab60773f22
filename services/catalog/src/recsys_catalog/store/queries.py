"""The RPC queries: the reads and writes behind the catalog's RPCs (service.py's CatalogStore).

Plain named SQL (``sql/<name>.sql``) with ``$n`` parameters, never text built from input;
batch reads with ``= ANY($1::bigint[])``; writes inside one transaction (``PgPool._write``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg
from recsys_core.validation import GENRE_SEP, RATING_MAX

from recsys_catalog.model import (
    AddedToRefresh,
    CatalogInfo,
    ColumnHistory,
    History,
    Movie,
    MovieFilter,
    PendingMovie,
    Rating,
    RefreshedMovie,
    SearchHit,
    UnknownMovies,
    UnknownUsers,
    UpsertResult,
    User,
)
from recsys_catalog.store.pool import PgPool
from recsys_catalog.store.sql import statement

# movies
SQL_GET_MOVIES = statement("get_movies")
SQL_SEARCH = statement("search_movies")
SQL_SAMPLE = statement("sample_movies")
SQL_POPULAR_COUNT = statement("popular_most_rated")
SQL_POPULAR_BAYES = statement("popular_bayesian")
SQL_POPULAR_BAYES_BAR = statement("popular_bayesian_bar")
SQL_RECENT_SCORES = statement("recent_scores")
SQL_POPULAR_SCORED = statement("popular_scored")
SQL_FORCE_CUSTOM_PLAN = statement("force_custom_plan")
SQL_GLOBAL_MEAN = statement("global_rating_mean")
SQL_LIST_MOVIES = statement("list_movies")
SQL_UPSERT_MOVIES = statement("upsert_movies")
SQL_ADD_GENRES = statement("add_genres")
SQL_GENRES = statement("list_genres")
# AddMovies (pending_movies, migrations/0004_pending_movies.sql)
SQL_STAGE_MOVIES = statement("stage_movies")
SQL_PENDING_MOVIES = statement("pending_movies")
SQL_PROMOTE_MOVIES = statement("promote_movies")
SQL_PENDING_FAILED = statement("pending_failed")
SQL_COUNT_PENDING = statement("count_pending")
SQL_LISTED_MOVIE_IDS = statement("listed_movie_ids")
SQL_MARK_ADDED = statement("mark_added_movies")
# RefreshAddedMovies (movies.added_*, migrations/0005_added_movies.sql)
SQL_ADDED_TO_REFRESH = statement("added_to_refresh")
SQL_COUNT_TO_REFRESH = statement("count_to_refresh")
SQL_CO_RATED = statement("co_rated_neighbours")
SQL_MARK_REFRESHED = statement("mark_refreshed")
# users and ratings
SQL_GET_USERS = statement("get_users")
SQL_EXISTING_USERS = statement("existing_users")
SQL_HISTORIES = statement("histories")
SQL_HISTORY_COLUMNS = statement("history_columns")
SQL_SEEN_IDS = statement("seen_movie_ids")
SQL_LOCK_MOVIES = statement("lock_movies")
SQL_CREATE_USERS = statement("create_users")
SQL_UPSERT_RATINGS = statement("upsert_ratings")
SQL_REFRESH_AGGREGATES = statement("refresh_movie_aggregates")
# describe
SQL_COUNTS = statement("count_rows")
SQL_SCHEMA_VERSION = statement("schema_version")
SQL_LAST_LOAD = statement("last_load")


def _movie(row: Any) -> Movie:
    count = int(row["rating_count"])
    return Movie(
        movie_id=row["movie_id"],
        title=row["title"],
        year=row["year"],
        genres=tuple(row["genres"] or ()),
        imdb_id=row["imdb_id"],
        tmdb_id=row["tmdb_id"],
        poster_url=row["poster_url"],
        info_url=row["info_url"],
        rating_count=count,
        rating_mean=float(row["rating_sum"]) / count if count else 0.0,
        added_since_training=bool(row["added_since_training"]),
    )


def _ids_text(ids: Sequence[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def _user(row: Any) -> User:
    return User(
        user_id=row["user_id"],
        gender=row["gender"],
        age=row["age"],
        occupation=row["occupation"],
        zip_code=row["zip_code"],
    )


def _filter_args(flt: MovieFilter, exclude_ids: Sequence[int]) -> list[Any]:
    return [
        list(flt.genres_any) or None,
        list(flt.genres_all) or None,
        flt.year_min,
        flt.year_max,
        list(exclude_ids),
    ]


class RpcQueries(PgPool):
    """The reads and writes of the catalog's RPCs (part of ``PgStore``)."""

    # --- movies ------------------------------------------------------------------------------

    async def get_movies(self, movie_ids: Sequence[int]) -> tuple[dict[int, Movie], int]:
        """The known movies among ``movie_ids`` and the metadata version they were read at
        (migrations/0003_movies_version.sql)."""

        async def op(conn: asyncpg.Connection) -> tuple[dict[int, Movie], int]:
            rows = await conn.fetch(SQL_GET_MOVIES, list(movie_ids))
            version = int(rows[0]["movies_version"]) if rows else 0
            return {r["movie_id"]: _movie(r) for r in rows if r["movie_id"] is not None}, version

        return await self._read(op)

    async def search_movies(self, query: str, limit: int) -> list[SearchHit]:
        async def op(conn: asyncpg.Connection) -> list[SearchHit]:
            rows = await conn.fetch(SQL_SEARCH, query, limit)
            return [SearchHit(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def sample_movies(
        self, n: int, seed: int, min_ratings: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[Movie]:
        async def op(conn: asyncpg.Connection) -> list[Movie]:
            args = [*_filter_args(flt, exclude_ids), min_ratings, seed, n]
            return [_movie(r) for r in await conn.fetch(SQL_SAMPLE, *args)]

        return await self._read(op)

    async def popular_most_rated(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[tuple[Movie, float]]:
        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            rows = await conn.fetch(SQL_POPULAR_COUNT, *_filter_args(flt, exclude_ids), k)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def popular_bayesian(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int], prior_weight: float, prior_mean: float
    ) -> list[tuple[Movie, float]]:
        """Exact top-k by Bayesian average without scanning every movie: the k-th best score T
        among the most-rated movies is a bar; a movie with n ratings scores at most
        (5n + C*mean) / (n + C), so only n >= C (T - mean) / (5 - T) can reach T, and the
        final query reads just those through the rating_count index."""

        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            args = [*_filter_args(flt, exclude_ids), k, prior_weight, prior_mean]
            bar = await conn.fetchval(SQL_POPULAR_BAYES_BAR, *args, max(4 * k, 200))
            min_count = 1
            if bar is not None and prior_mean < bar < RATING_MAX:
                min_count = max(1, math.floor(prior_weight * (bar - prior_mean) / (RATING_MAX - bar)))
            rows = await conn.fetch(SQL_POPULAR_BAYES, *args, min_count)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def recent_scores(self, half_life_days: float) -> tuple[list[int], list[float]]:
        """Movie ids and their recency-weighted counts (movies rated inside the window)."""

        async def op(conn: asyncpg.Connection) -> tuple[list[int], list[float]]:
            rows = await conn.fetch(SQL_RECENT_SCORES, half_life_days * 86400.0)
            return [int(r["movie_id"]) for r in rows], [float(r["score"]) for r in rows]

        return await self._read(op)

    async def popular_scored(
        self,
        k: int,
        flt: MovieFilter,
        exclude_ids: Sequence[int],
        movie_ids: Sequence[int],
        scores: Sequence[float],
    ) -> list[tuple[Movie, float]]:
        async def op(conn: asyncpg.Connection) -> list[tuple[Movie, float]]:
            args = [*_filter_args(flt, exclude_ids), k, movie_ids, scores]
            # A generic plan (asyncpg's prepared statement, from the 6th call on) guesses the
            # arrays' length and nests a loop over them: 380 ms instead of 3 ms on ml-100k.
            async with conn.transaction(readonly=True):
                await conn.execute(SQL_FORCE_CUSTOM_PLAN)
                rows = await conn.fetch(SQL_POPULAR_SCORED, *args)
            return [(_movie(r), float(r["score"])) for r in rows]

        return await self._read(op)

    async def global_rating_mean(self) -> float | None:
        async def op(conn: asyncpg.Connection) -> float | None:
            value = await conn.fetchval(SQL_GLOBAL_MEAN)
            return None if value is None else float(value)

        return await self._read(op)

    async def list_movies(self, after_id: int, page_size: int) -> list[Movie]:
        async def op(conn: asyncpg.Connection) -> list[Movie]:
            return [_movie(r) for r in await conn.fetch(SQL_LIST_MOVIES, after_id, page_size)]

        return await self._read(op)

    async def upsert_movies(self, movies: Sequence[Movie]) -> UpsertResult:
        cols: list[list[Any]] = [[] for _ in range(8)]
        all_genres: set[str] = set()
        for m in movies:
            for col, value in zip(
                cols,
                (
                    m.movie_id,
                    m.title,
                    m.year,
                    # one text per movie (arrays of arrays must be rectangular);
                    # upsert_movies.sql splits it on E'\x1f', which is GENRE_SEP
                    GENRE_SEP.join(m.genres),
                    m.imdb_id,
                    m.tmdb_id,
                    m.poster_url,
                    m.info_url,
                ),
                strict=True,
            ):
                col.append(value)
            all_genres.update(m.genres)

        async def op(conn: asyncpg.Connection) -> UpsertResult:
            rows = await conn.fetch(SQL_UPSERT_MOVIES, *cols)
            await conn.execute(SQL_ADD_GENRES, sorted(all_genres))
            inserted = sum(1 for r in rows if r["inserted"])
            return UpsertResult(inserted=inserted, updated=len(rows) - inserted)

        return await self._write(op)

    # --- AddMovies: staged movies, promoted once their vectors are in the retriever --------

    async def listed_movie_ids(self, movie_ids: Sequence[int]) -> set[int]:
        async def op(conn: asyncpg.Connection) -> set[int]:
            return {int(r["movie_id"]) for r in await conn.fetch(SQL_LISTED_MOVIE_IDS, list(movie_ids))}

        return await self._read(op)

    async def stage_movies(self, pending: Sequence[PendingMovie]) -> list[PendingMovie]:
        """Write ``pending`` to the staging table (not listed); the same movies with the
        revision each got."""
        cols: list[list[Any]] = [[] for _ in range(9)]
        for p in pending:
            m = p.movie
            values = (
                m.movie_id,
                m.title,
                m.year,
                GENRE_SEP.join(m.genres),
                m.imdb_id,
                m.tmdb_id,
                m.poster_url,
                m.info_url,
                ",".join(str(i) for i in p.similar_ids),
            )
            for col, value in zip(cols, values, strict=True):
                col.append(value)

        async def op(conn: asyncpg.Connection) -> dict[int, int]:
            return {int(r["movie_id"]): int(r["revision"]) for r in await conn.fetch(SQL_STAGE_MOVIES, *cols)}

        revisions = await self._write(op)
        return [PendingMovie(p.movie, p.similar_ids, revisions[p.movie.movie_id]) for p in pending]

    async def pending_movies(self, limit: int) -> list[PendingMovie]:
        """The oldest ``limit`` staged movies."""

        async def op(conn: asyncpg.Connection) -> list[PendingMovie]:
            rows = await conn.fetch(SQL_PENDING_MOVIES, limit)
            return [
                PendingMovie(
                    Movie(
                        movie_id=r["movie_id"],
                        title=r["title"],
                        year=r["year"],
                        genres=tuple(r["genres"] or ()),
                        imdb_id=r["imdb_id"],
                        tmdb_id=r["tmdb_id"],
                        poster_url=r["poster_url"],
                        info_url=r["info_url"],
                    ),
                    tuple(int(i) for i in r["similar_ids"] or ()),
                    int(r["revision"]),
                )
                for r in rows
            ]

        return await self._read(op)

    async def promote_movies(
        self, staged: Sequence[PendingMovie], model_version: str, inductive_ids: Collection[int]
    ) -> dict[int, bool]:
        """List the staged movies whose revision is still the one given (one transaction:
        pending row deleted, movie written, its genres in the vocabulary, those of
        ``inductive_ids`` marked as added movies of ``model_version``, the others not);
        ``{movie_id: inserted}`` of those promoted (a movie staged again meanwhile is left to
        that call)."""
        genres = sorted({g for p in staged for g in p.movie.genres})

        async def op(conn: asyncpg.Connection) -> dict[int, bool]:
            rows = await conn.fetch(
                SQL_PROMOTE_MOVIES, [p.movie.movie_id for p in staged], [p.revision for p in staged]
            )
            if genres:
                await conn.execute(SQL_ADD_GENRES, genres)
            promoted = {int(r["movie_id"]): bool(r["inserted"]) for r in rows}
            done = [p for p in staged if p.movie.movie_id in promoted]
            if done:
                await conn.execute(
                    SQL_MARK_ADDED,
                    [p.movie.movie_id for p in done],
                    [p.movie.movie_id in inductive_ids for p in done],
                    [_ids_text(p.similar_ids) for p in done],
                    model_version,
                )
            return promoted

        return await self._write(op)

    # --- RefreshAddedMovies: added movies whose neighbourhood changed --------------------

    async def added_to_refresh(self, model_version: str, limit: int) -> list[AddedToRefresh]:
        async def op(conn: asyncpg.Connection) -> list[AddedToRefresh]:
            rows = await conn.fetch(SQL_ADDED_TO_REFRESH, model_version, limit)
            return [
                AddedToRefresh(_movie(r), tuple(int(i) for i in r["added_similar_ids"] or ())) for r in rows
            ]

        return await self._read(op)

    async def count_to_refresh(self, model_version: str) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval(SQL_COUNT_TO_REFRESH, model_version))

        return await self._read(op)

    async def co_rated_neighbours(self, movie_ids: Sequence[int], limit: int) -> dict[int, tuple[int, ...]]:
        async def op(conn: asyncpg.Connection) -> dict[int, tuple[int, ...]]:
            rows = await conn.fetch(SQL_CO_RATED, list(movie_ids), limit)
            return {int(r["movie_id"]): tuple(int(i) for i in r["neighbour_ids"]) for r in rows}

        return await self._read(op)

    async def mark_refreshed(self, model_version: str, refreshed: Sequence[RefreshedMovie]) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                SQL_MARK_REFRESHED,
                [r.movie_id for r in refreshed],
                [r.inductive for r in refreshed],
                [r.rating_count for r in refreshed],
                [_ids_text(r.neighbour_ids) for r in refreshed],
                model_version,
            )

        await self._write(op)

    async def pending_failed(self, movie_ids: Sequence[int], error: str) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(SQL_PENDING_FAILED, list(movie_ids), error[:2000])

        await self._write(op)

    async def count_pending(self) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval(SQL_COUNT_PENDING))

        return await self._read(op)

    async def genres(self) -> tuple[str, ...]:
        async def op(conn: asyncpg.Connection) -> tuple[str, ...]:
            return tuple(r["name"] for r in await conn.fetch(SQL_GENRES))

        return await self._read(op)

    # --- users and ratings -------------------------------------------------------------------

    async def get_users(self, user_ids: Sequence[int]) -> dict[int, User]:
        async def op(conn: asyncpg.Connection) -> dict[int, User]:
            rows = await conn.fetch(SQL_GET_USERS, list(user_ids))
            return {r["user_id"]: _user(r) for r in rows}

        return await self._read(op)

    async def histories(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, History]:
        """Histories of the known users among ``user_ids`` (unknown ones are absent).

        ``limit`` newest ratings each; with ``include_seen`` also the ids of every movie each
        user rated (one more query, ids only; both read in one repeatable-read snapshot, so the
        ids agree with ``total`` and the events).
        """

        async def op(conn: asyncpg.Connection) -> dict[int, History]:
            if not include_seen:
                return await read(conn)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await read(conn)

        async def read(conn: asyncpg.Connection) -> dict[int, History]:
            unique = sorted(set(user_ids))
            known = {r["user_id"] for r in await conn.fetch(SQL_EXISTING_USERS, unique)}
            if not known:
                return {}
            rows = await conn.fetch(SQL_HISTORIES, sorted(known), limit)
            seen: dict[int, list[int]] = {uid: [] for uid in known}
            if include_seen:
                for r in await conn.fetch(SQL_SEEN_IDS, sorted(known)):
                    seen[r["user_id"]] = list(r["movie_ids"])
            ratings: dict[int, list[Rating]] = {uid: [] for uid in known}
            totals: dict[int, int] = dict.fromkeys(known, 0)
            for r in rows:
                uid = r["user_id"]
                totals[uid] = int(r["total"])
                if r["movie_id"] is not None:
                    ratings[uid].append(Rating(uid, r["movie_id"], float(r["rating"]), r["rated_at"]))
            return {uid: History(uid, ratings[uid], totals[uid], seen[uid]) for uid in known}

        return await self._read(op)

    async def history_columns(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, ColumnHistory]:
        """``histories`` as columns (the same events, order and seen ids), in one statement."""

        async def op(conn: asyncpg.Connection) -> dict[int, ColumnHistory]:
            rows = await conn.fetch(SQL_HISTORY_COLUMNS, sorted(set(user_ids)), limit, include_seen)
            return {
                r["user_id"]: ColumnHistory(
                    user_id=r["user_id"],
                    movie_ids=r["movie_ids"],
                    ratings=r["ratings"],
                    rated_at_us=r["rated_at_us"],
                    total=int(r["total"]),
                    seen_movie_ids=r["seen"] or [],
                )
                for r in rows
            }

        return await self._read(op)

    async def record_ratings(
        self, events: Sequence[Rating], create_missing_users: bool
    ) -> tuple[set[tuple[int, int]], list[int]]:
        """Store events (at most one per (user, movie)); newest wins against stored rows.

        Returns the (user, movie) pairs written and the users created. Raises UnknownMovies /
        UnknownUsers (nothing written) when ids are unknown.
        """
        movie_ids = sorted({e.movie_id for e in events})
        user_ids = sorted({e.user_id for e in events})

        async def op(conn: asyncpg.Connection) -> tuple[set[tuple[int, int]], list[int]]:
            # Locking the movie rows serialises concurrent writers of the same movie, so the
            # recount below is exact; it also proves the movies exist.
            found = {r["movie_id"] for r in await conn.fetch(SQL_LOCK_MOVIES, movie_ids)}
            if len(found) != len(movie_ids):
                raise UnknownMovies([m for m in movie_ids if m not in found])
            created: list[int] = []
            if create_missing_users:
                created = sorted(r["user_id"] for r in await conn.fetch(SQL_CREATE_USERS, user_ids))
            else:
                known = {r["user_id"] for r in await conn.fetch(SQL_EXISTING_USERS, user_ids)}
                if len(known) != len(user_ids):
                    raise UnknownUsers([u for u in user_ids if u not in known])
            rows = await conn.fetch(
                SQL_UPSERT_RATINGS,
                [e.user_id for e in events],
                [e.movie_id for e in events],
                [e.rating for e in events],
                [e.rated_at for e in events],
            )
            written = {(r["user_id"], r["movie_id"]) for r in rows}
            touched = sorted({m for _, m in written})
            if touched:
                await conn.execute(SQL_REFRESH_AGGREGATES, touched)
            return written, created

        return await self._write(op)

    # --- describe ----------------------------------------------------------------------------

    async def describe(self) -> CatalogInfo:
        async def op(conn: asyncpg.Connection) -> CatalogInfo:
            counts = await conn.fetchrow(SQL_COUNTS)
            version = int(await conn.fetchval(SQL_SCHEMA_VERSION))
            genres = tuple(r["name"] for r in await conn.fetch(SQL_GENRES))
            last = await conn.fetchrow(SQL_LAST_LOAD)
            return CatalogInfo(
                movie_count=int(counts["movies"]),
                user_count=int(counts["users"]),
                rating_count=int(counts["ratings"]),
                schema_version=version,
                genres=genres,
                dataset_name=last["name"] if last else None,
                dataset_sha256=last["sha256"] if last else None,
                loaded_at=last["loaded_at"] if last else None,
            )

        return await self._read(op)
