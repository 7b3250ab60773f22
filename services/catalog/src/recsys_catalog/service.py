"""Catalog logic: validation, limits, defaults and the rules of each operation.

No grpc and no driver here: the service talks to a ``CatalogStore`` (the PostgreSQL store in
production, a fake in unit tests) and raises the kit's domain errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import urlparse

from recsys_core.errors import (
    DeadlineExceeded,
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RecsysError,
    UpstreamError,
)
from recsys_core.validation import (
    MAX_GENRES,
    MAX_NEIGHBOURS,
    RATING_MAX,
    RATING_MIN,
    RATING_STEP,
    check_genre_names,
    check_known_genres,
    check_year,
    check_year_range,
    is_rating,
    normalize_query,
    vector_version,
)

from recsys_catalog.model import (
    AddedMovie,
    AddedToRefresh,
    AddResult,
    CatalogInfo,
    ColumnHistory,
    History,
    Movie,
    MovieFilter,
    PendingMovie,
    Rating,
    RecordResult,
    RefreshedMovie,
    RefreshResult,
    SearchHit,
    UnknownMovies,
    UnknownUsers,
    UpsertResult,
    User,
)

MAX_BATCH_IDS = 1000
DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 100
MAX_SAMPLE = 100
MAX_SAMPLE_EXCLUDE = 10_000
MAX_POPULAR = 1000
MAX_POPULAR_EXCLUDE = 100_000
#: GetPopular's rankings (the proto's PopularityRanking, lower-case without the prefix).
POPULARITY_RANKINGS = ("bayesian_average", "most_rated", "recent")
#: Bounds of a recency half-life (days), request or setting.
HALF_LIFE_DAYS_MIN, HALF_LIFE_DAYS_MAX = 0.01, 36500.0
DEFAULT_HISTORY_LIMIT = 1000
MAX_HISTORY_LIMIT = 10_000
MAX_EVENTS = 1000
MAX_UPSERT = 1000
DEFAULT_PAGE = 1000
MAX_PAGE = 5000
MAX_TITLE_CHARS = 500
#: movies per AddMovies call (each is one EmbedNewMovie call when the model does not know it)
MAX_ADD = 100
#: what a failed AddMovies tells the caller to do
RETRY_HINT = "call AddMovies again with the same movies, or run `recsys movies retry-pending`"
#: what a failed RefreshAddedMovies tells the caller
REFRESH_HINT = "no movie was refreshed (their old vectors still serve): run `recsys movies refresh` again"
FUTURE_SLACK = dt.timedelta(minutes=5)
CACHE_TTL_S = 30.0
#: Half-lives whose RECENT scores are cached at once (requests may name any).
RECENT_CACHE_SIZE = 4


class CatalogStore(Protocol):
    """What the service needs from storage (``store.PgStore`` implements it)."""

    async def get_movies(self, movie_ids: Sequence[int]) -> tuple[dict[int, Movie], int]: ...
    async def search_movies(self, query: str, limit: int) -> list[SearchHit]: ...
    async def sample_movies(
        self, n: int, seed: int, min_ratings: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[Movie]: ...
    async def popular_most_rated(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[tuple[Movie, float]]: ...
    async def popular_bayesian(
        self, k: int, flt: MovieFilter, exclude_ids: Sequence[int], prior_weight: float, prior_mean: float
    ) -> list[tuple[Movie, float]]: ...
    async def recent_scores(self, half_life_days: float) -> tuple[list[int], list[float]]: ...
    async def popular_scored(
        self,
        k: int,
        flt: MovieFilter,
        exclude_ids: Sequence[int],
        movie_ids: Sequence[int],
        scores: Sequence[float],
    ) -> list[tuple[Movie, float]]: ...
    async def global_rating_mean(self) -> float | None: ...
    async def list_movies(self, after_id: int, page_size: int) -> list[Movie]: ...
    async def upsert_movies(self, movies: Sequence[Movie]) -> UpsertResult: ...
    async def genres(self) -> tuple[str, ...]: ...
    async def get_users(self, user_ids: Sequence[int]) -> dict[int, User]: ...
    async def histories(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, History]: ...
    async def history_columns(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> dict[int, ColumnHistory]: ...
    async def record_ratings(
        self, events: Sequence[Rating], create_missing_users: bool
    ) -> tuple[set[tuple[int, int]], list[int]]: ...
    async def describe(self) -> CatalogInfo: ...
    # AddMovies (the staging table of migrations/0004_pending_movies.sql)
    async def listed_movie_ids(self, movie_ids: Sequence[int]) -> set[int]: ...
    async def stage_movies(self, pending: Sequence[PendingMovie]) -> list[PendingMovie]: ...
    async def pending_movies(self, limit: int) -> list[PendingMovie]: ...
    async def promote_movies(
        self, staged: Sequence[PendingMovie], model_version: str, inductive_ids: Collection[int]
    ) -> dict[int, bool]: ...
    async def pending_failed(self, movie_ids: Sequence[int], error: str) -> None: ...
    async def count_pending(self) -> int: ...
    # RefreshAddedMovies (the added_* columns of migrations/0005_added_movies.sql)
    async def added_to_refresh(self, model_version: str, limit: int) -> list[AddedToRefresh]: ...
    async def count_to_refresh(self, model_version: str) -> int: ...
    async def co_rated_neighbours(
        self, movie_ids: Sequence[int], limit: int
    ) -> dict[int, tuple[int, ...]]: ...
    async def mark_refreshed(self, model_version: str, refreshed: Sequence[RefreshedMovie]) -> None: ...


@dataclass(frozen=True, slots=True)
class MovieVector:
    """A staged movie's vector from the embedder: its trained one (``inductive`` False) or
    EmbedNewMovie's, with the similar ids the model did not know."""

    movie_id: int
    values: tuple[float, ...]
    inductive: bool
    unknown_similar_ids: tuple[int, ...] = ()


class VectorPipeline(Protocol):
    """The embedder and the retriever as AddMovies needs them (``vectors.GrpcVectorPipeline``
    in production, a fake in unit tests). Failures are domain errors: DependencyUnavailable
    (down, timed out), FailedPrecondition (no retriever version for the model, ...)."""

    async def model_version(self) -> str:
        """The version of the model the embedder serves."""
        ...

    async def embed(self, movies: Sequence[PendingMovie]) -> tuple[str, list[MovieVector]]:
        """The model version and one vector per movie, in order."""
        ...

    async def upsert(
        self, model_version: str, movies: Sequence[PendingMovie], vectors: Sequence[MovieVector]
    ) -> str:
        """Write the vectors into the retriever's version of ``model_version``; that version."""
        ...


H = TypeVar("H", History, ColumnHistory)
# A store's history read (PgStore.histories or .history_columns): known users only, by id.
_HistoryRead = Callable[[Sequence[int], int, bool], Awaitable[dict[int, H]]]


async def _one_history(read: _HistoryRead[H], user_id: int, limit: int, include_seen: bool) -> H:
    """One user's history through ``read``: ids and limit checked, NOT_FOUND when unknown."""
    if user_id <= 0:
        raise InvalidArgument("user_id: must be > 0", field="user_id")
    n = _limit(limit, "limit", DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
    found = await read([user_id], n, include_seen)
    if user_id not in found:
        raise NotFound(f"user {user_id} not found")
    return found[user_id]


async def _many_histories(
    read: _HistoryRead[H], user_ids: Sequence[int], limit: int, include_seen: bool
) -> tuple[list[H], list[int]]:
    """Histories in request order (duplicates repeated) and the unknown ids, through ``read``."""
    _check_ids(user_ids, "user_ids")
    n = _limit(limit, "limit", DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
    unique = _dedup(user_ids)
    found = await read(unique, n, include_seen)
    return [found[i] for i in user_ids if i in found], [i for i in unique if i not in found]


def _check_ids(ids: Sequence[int], field: str, max_n: int = MAX_BATCH_IDS) -> None:
    if not ids:
        raise InvalidArgument(f"{field}: at least one id is required", field=field)
    if len(ids) > max_n:
        raise InvalidArgument(f"{field}: at most {max_n} ids per call, got {len(ids)}", field=field)
    for i, v in enumerate(ids):
        if v <= 0:
            raise InvalidArgument(f"{field}[{i}]: ids must be > 0, got {v}", field=f"{field}[{i}]")


def _limit(value: int, field: str, default: int, maximum: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(f"{field}: must be 1..{maximum} (0 = {default}), got {value}", field=field)
    return value


def _dedup(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _valid_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _clean_movie(m: Movie, f: str, seen: set[int]) -> Movie:
    """``m`` checked (``f`` names it in errors; ``seen`` catches a repeated id) and trimmed."""
    if m.movie_id <= 0:
        raise InvalidArgument(f"{f}.movie_id: must be > 0", field=f"{f}.movie_id")
    if m.movie_id in seen:
        raise InvalidArgument(f"{f}.movie_id: {m.movie_id} appears twice", field=f"{f}.movie_id")
    seen.add(m.movie_id)
    title = m.title.strip()
    if not title or len(title) > MAX_TITLE_CHARS or "\x00" in title:
        raise InvalidArgument(f"{f}.title: 1..{MAX_TITLE_CHARS} characters", field=f"{f}.title")
    if m.year is not None:
        check_year(m.year, f"{f}.year")
    genres = check_genre_names(m.genres, f"{f}.genres", limit=MAX_GENRES)
    for name in ("poster_url", "info_url"):
        url = getattr(m, name)
        if url and not _valid_url(url):
            raise InvalidArgument(f"{f}.{name}: an absolute http(s) URL", field=f"{f}.{name}")
    if any("\x00" in (v or "") for v in (m.imdb_id, m.poster_url, m.info_url)):
        raise InvalidArgument(f"{f}: text must not contain NUL characters", field=f)
    if m.tmdb_id is not None and m.tmdb_id < 0:
        raise InvalidArgument(f"{f}.tmdb_id: must be >= 0", field=f"{f}.tmdb_id")
    return Movie(
        movie_id=m.movie_id,
        title=title,
        year=m.year,
        genres=genres,
        imdb_id=m.imdb_id or None,
        tmdb_id=m.tmdb_id or None,
        poster_url=m.poster_url or None,
        info_url=m.info_url or None,
    )


def _with_retry_hint(exc: RecsysError, n: int) -> RecsysError:
    """``exc`` (same code) saying that the ``n`` movies stay pending and how to complete them."""
    hint = f"; {n} movie(s) stay pending (not listed, not searchable): {RETRY_HINT}"
    if isinstance(exc, DependencyUnavailable):
        return DependencyUnavailable(exc.dependency, exc.detail + hint)
    if isinstance(exc, UpstreamError):
        return UpstreamError(exc.upstream, exc.upstream_code, exc.detail + hint, field=exc.field)
    return type(exc)(exc.message + hint, field=exc.field)


def _with_refresh_hint(exc: RecsysError) -> RecsysError:
    """``exc`` (same code) saying that nothing was recorded and what to do."""
    hint = f"; {REFRESH_HINT}"
    if isinstance(exc, DependencyUnavailable):
        return DependencyUnavailable(exc.dependency, exc.detail + hint)
    if isinstance(exc, UpstreamError):
        return UpstreamError(exc.upstream, exc.upstream_code, exc.detail + hint, field=exc.field)
    return type(exc)(exc.message + hint, field=exc.field)


class CatalogService:
    def __init__(
        self,
        store: CatalogStore,
        *,
        bayes_prior_weight: float = 25.0,
        recent_half_life_days: float = 30.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        vectors: VectorPipeline | None = None,
    ) -> None:
        self._store = store
        self._vectors = vectors
        self._prior_weight = bayes_prior_weight
        self._half_life_days = recent_half_life_days
        self._clock = clock
        self._genres: tuple[frozenset[str], float] | None = None
        self._mean: tuple[float, float] | None = None
        # RECENT scores per half-life: (ids, scores, read at); at most RECENT_CACHE_SIZE.
        self._recent: dict[float, tuple[list[int], list[float], float]] = {}
        self._recent_lock = asyncio.Lock()

    # --- movies ------------------------------------------------------------------------------

    async def get_movies(self, movie_ids: Sequence[int]) -> tuple[list[Movie], list[int]]:
        """Found movies in request order (duplicates repeated) and missing ids (deduplicated)."""
        movies, missing, _ = await self.get_movies_versioned(movie_ids)
        return movies, missing

    async def get_movies_versioned(self, movie_ids: Sequence[int]) -> tuple[list[Movie], list[int], int]:
        """As ``get_movies``, with the metadata version the movies were read at."""
        _check_ids(movie_ids, "movie_ids")
        found, version = await self._store.get_movies(_dedup(movie_ids))
        movies = [found[i] for i in movie_ids if i in found]
        missing = [i for i in _dedup(movie_ids) if i not in found]
        return movies, missing, version

    async def search_movies(self, query: str, limit: int) -> list[SearchHit]:
        text = normalize_query(query)
        n = _limit(limit, "limit", DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)
        return await self._store.search_movies(text, n)

    async def sample_movies(
        self, n: int, seed: int, min_ratings: int, flt: MovieFilter, exclude_ids: Sequence[int]
    ) -> list[Movie]:
        if not 1 <= n <= MAX_SAMPLE:
            raise InvalidArgument(f"n: must be 1..{MAX_SAMPLE}, got {n}", field="n")
        if min_ratings < 0:
            raise InvalidArgument("min_ratings: must be >= 0", field="min_ratings")
        if len(exclude_ids) > MAX_SAMPLE_EXCLUDE:
            raise InvalidArgument(f"exclude_ids: at most {MAX_SAMPLE_EXCLUDE} ids", field="exclude_ids")
        await self._check_filter(flt)
        if seed == 0:
            seed = random.SystemRandom().randrange(1, 2**62)
        return await self._store.sample_movies(n, seed, min_ratings, flt, _dedup(exclude_ids))

    async def get_popular(
        self,
        k: int,
        flt: MovieFilter,
        exclude_ids: Sequence[int],
        ranking: str = "bayesian_average",
        half_life_days: float = 0.0,
    ) -> list[tuple[Movie, float]]:
        """Best Bayesian average with the catalog mean as prior (default), most rated, or the
        recency-weighted count (``half_life_days``, 0 = the catalog's default)."""
        if ranking not in POPULARITY_RANKINGS:
            raise InvalidArgument(
                f"ranking: unknown ({ranking}); use a PopularityRanking value", field="ranking"
            )
        if half_life_days != 0 and not HALF_LIFE_DAYS_MIN <= half_life_days <= HALF_LIFE_DAYS_MAX:
            raise InvalidArgument(
                f"half_life_days: must be 0 (the default) or {HALF_LIFE_DAYS_MIN:g}..{HALF_LIFE_DAYS_MAX:g}",
                field="half_life_days",
            )
        if not 1 <= k <= MAX_POPULAR:
            raise InvalidArgument(f"k: must be 1..{MAX_POPULAR}, got {k}", field="k")
        if len(exclude_ids) > MAX_POPULAR_EXCLUDE:
            raise InvalidArgument(f"exclude_ids: at most {MAX_POPULAR_EXCLUDE} ids", field="exclude_ids")
        await self._check_filter(flt)
        exclude = _dedup(exclude_ids)
        if ranking == "most_rated":
            return await self._store.popular_most_rated(k, flt, exclude)
        if ranking == "recent":
            ids, scores = await self._recent_scores(half_life_days or self._half_life_days)
            return await self._store.popular_scored(k, flt, exclude, ids, scores)
        mean = await self._global_mean()
        return await self._store.popular_bayesian(k, flt, exclude, self._prior_weight, mean)

    async def list_movies(self, after_id: int, page_size: int) -> tuple[list[Movie], int]:
        """A page of movies with movie_id > after_id and the next after_id (0 = last page)."""
        if after_id < 0:
            raise InvalidArgument("after_id: must be >= 0", field="after_id")
        size = _limit(page_size, "page_size", DEFAULT_PAGE, MAX_PAGE)
        rows = await self._store.list_movies(after_id, size + 1)
        if len(rows) > size:
            page = rows[:size]
            return page, page[-1].movie_id
        return rows, 0

    async def upsert_movies(self, movies: Sequence[Movie]) -> UpsertResult:
        if not movies:
            raise InvalidArgument("movies: at least one movie is required", field="movies")
        if len(movies) > MAX_UPSERT:
            raise InvalidArgument(f"movies: at most {MAX_UPSERT} per call", field="movies")
        seen: set[int] = set()
        clean: list[Movie] = []
        for i, m in enumerate(movies):
            clean.append(_clean_movie(m, f"movies[{i}]", seen))
        result = await self._store.upsert_movies(clean)
        self._genres = None
        return result

    async def add_movies(self, movies: Sequence[tuple[Movie, Sequence[int]]]) -> AddResult:
        """AddMovies: validate (movie, similar ids) pairs, stage them (not listed), get their
        vectors into the retriever, then list them in one transaction. An embedder or retriever
        failure leaves them staged (a retry completes them) and is raised with what to do."""
        pipeline = self._pipeline()
        if not movies:
            raise InvalidArgument("movies: at least one movie is required", field="movies")
        if len(movies) > MAX_ADD:
            raise InvalidArgument(f"movies: at most {MAX_ADD} per call, got {len(movies)}", field="movies")
        seen: set[int] = set()
        pending: list[PendingMovie] = []
        for i, (m, similar) in enumerate(movies):
            f = f"movies[{i}]"
            movie = _clean_movie(m, f"{f}.movie", seen)
            sf = f"{f}.similar_movie_ids"
            if len(similar) > MAX_NEIGHBOURS:
                raise InvalidArgument(f"{sf}: at most {MAX_NEIGHBOURS} ids, got {len(similar)}", field=sf)
            for j, v in enumerate(similar):
                if v <= 0:
                    raise InvalidArgument(f"{sf}[{j}]: ids must be > 0, got {v}", field=f"{sf}[{j}]")
                if v == movie.movie_id:
                    raise InvalidArgument(f"{sf}[{j}]: a movie is not similar to itself", field=f"{sf}[{j}]")
            pending.append(PendingMovie(movie, tuple(_dedup(similar))))
        for i, p in enumerate(pending):
            if p.movie.genres:
                known = await self._known_genres()
                if any(g not in known for g in p.movie.genres):
                    known = await self._known_genres(refresh=True)
                check_known_genres(p.movie.genres, known, f"movies[{i}].movie.genres")
        wanted = _dedup([v for p in pending for v in p.similar_ids])
        listed = await self._store.listed_movie_ids(wanted) if wanted else set()
        for i, p in enumerate(pending):
            for j, v in enumerate(p.similar_ids):
                if v not in listed:
                    sf = f"movies[{i}].similar_movie_ids[{j}]"
                    raise InvalidArgument(f"{sf}: unknown movie {v} (must be a listed movie)", field=sf)
        staged = await self._store.stage_movies(pending)
        return await self._complete(pipeline, staged)

    async def retry_pending(self, limit: int) -> AddResult:
        """Complete up to ``limit`` movies a failed AddMovies left staged, oldest first."""
        pipeline = self._pipeline()
        n = _limit(limit, "limit", MAX_ADD, MAX_ADD)
        staged = await self._store.pending_movies(n)
        if not staged:
            return AddResult(movies=[], model_version="", vector_version="", pending=0)
        return await self._complete(pipeline, staged)

    def _pipeline(self) -> VectorPipeline:
        if self._vectors is None:
            raise FailedPrecondition(
                "this catalog cannot add movies: set RECSYS_CATALOG_EMBEDDER_TARGET and "
                "RECSYS_CATALOG_RETRIEVER_TARGET (AddMovies asks the embedder for vectors and "
                "writes them to the retriever)"
            )
        return self._vectors

    async def _complete(self, pipeline: VectorPipeline, staged: Sequence[PendingMovie]) -> AddResult:
        try:
            model_version, vecs = await pipeline.embed(staged)
            version = await pipeline.upsert(model_version, staged, vecs)
            inductive = {v.movie_id for v in vecs if v.inductive}
            promoted = await self._store.promote_movies(staged, model_version, inductive)
        except (DependencyUnavailable, DeadlineExceeded, FailedPrecondition, UpstreamError) as exc:
            await self._note_failure(staged, exc)
            raise _with_retry_hint(exc, len(staged)) from exc
        self._genres = None
        added = [
            AddedMovie(v.movie_id, promoted[v.movie_id], v.inductive, v.unknown_similar_ids)
            for v in vecs
            if v.movie_id in promoted
        ]
        return AddResult(added, model_version, version, await self._store.count_pending())

    async def refresh_added_movies(self, limit: int) -> RefreshResult:
        """RefreshAddedMovies: re-embed up to ``limit`` added movies whose vector is stale (they
        got ratings since it was made, or the embedder serves another model). Neighbours: the
        movies their raters rated most, then the similar ids they were added with, at most
        MAX_NEIGHBOURS. A movie the embedder's model now knows gets its trained vector and is an
        added movie no more. Upstream failures are raised and nothing is recorded (call again)."""
        pipeline = self._pipeline()
        n = _limit(limit, "limit", MAX_ADD, MAX_ADD)
        try:
            model = await pipeline.model_version()
            stale = await self._store.added_to_refresh(model, n)
            if not stale:
                return RefreshResult([], model, vector_version(model), 0)
            co = await self._store.co_rated_neighbours([a.movie.movie_id for a in stale], MAX_NEIGHBOURS)
            pending = [
                PendingMovie(
                    a.movie, tuple(_dedup([*co.get(a.movie.movie_id, ()), *a.similar_ids]))[:MAX_NEIGHBOURS]
                )
                for a in stale
            ]
            got_model, vecs = await pipeline.embed(pending)
            if got_model != model:
                raise DependencyUnavailable(
                    "embedder", f"the model changed during the call ({model} -> {got_model}): repeat it"
                )
            version = await pipeline.upsert(model, pending, vecs)
        except (DependencyUnavailable, DeadlineExceeded, FailedPrecondition, UpstreamError) as exc:
            raise _with_refresh_hint(exc) from exc
        done = []
        for p, v in zip(pending, vecs, strict=True):
            unknown = set(v.unknown_similar_ids)
            used = tuple(i for i in p.similar_ids if i not in unknown) if v.inductive else ()
            done.append(RefreshedMovie(p.movie.movie_id, v.inductive, p.movie.rating_count, used))
        await self._store.mark_refreshed(model, done)
        return RefreshResult(done, model, version, await self._store.count_to_refresh(model))

    async def _note_failure(self, staged: Sequence[PendingMovie], exc: RecsysError) -> None:
        """Keep why the attempt failed on the staged rows (best effort: the database may be
        what failed)."""
        try:
            await self._store.pending_failed([p.movie.movie_id for p in staged], exc.message)
        except RecsysError:
            pass

    # --- users and ratings -------------------------------------------------------------------

    async def get_users(self, user_ids: Sequence[int]) -> tuple[list[User], list[int]]:
        _check_ids(user_ids, "user_ids")
        found = await self._store.get_users(_dedup(user_ids))
        return [found[i] for i in user_ids if i in found], [i for i in _dedup(user_ids) if i not in found]

    async def get_user_history(self, user_id: int, limit: int, include_seen: bool = False) -> History:
        """The ``limit`` newest ratings; with ``include_seen`` also every rated movie's id."""
        return await _one_history(self._store.histories, user_id, limit, include_seen)

    async def get_user_history_columns(
        self, user_id: int, limit: int, include_seen: bool = False
    ) -> ColumnHistory:
        """``get_user_history`` as columns: the same events, checks and errors."""
        return await _one_history(self._store.history_columns, user_id, limit, include_seen)

    async def get_user_histories(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> tuple[list[History], list[int]]:
        return await _many_histories(self._store.histories, user_ids, limit, include_seen)

    async def get_user_histories_columns(
        self, user_ids: Sequence[int], limit: int, include_seen: bool = False
    ) -> tuple[list[ColumnHistory], list[int]]:
        """``get_user_histories`` as columns."""
        return await _many_histories(self._store.history_columns, user_ids, limit, include_seen)

    async def record_ratings(
        self, events: Sequence[tuple[int, int, float, dt.datetime | None]], create_missing_users: bool
    ) -> RecordResult:
        """Validate and store (user_id, movie_id, rating, rated_at|None) events, all or nothing.

        Per (user, movie) the newest event wins. On the same ``rated_at``: in one call the later
        event wins (the caller's order); against the database the stored one stays, so of
        concurrent writers with one time exactly one is stored and every other is told
        superseded (the same event replayed counts as stored). The others, and events older
        than the stored rating, count as superseded. ``stored`` lists the events written, in
        request order, with their timestamps filled in.
        """
        if not events:
            raise InvalidArgument("ratings: at least one event is required", field="ratings")
        if len(events) > MAX_EVENTS:
            raise InvalidArgument(f"ratings: at most {MAX_EVENTS} events per call", field="ratings")
        now = self._clock()
        ratings: list[Rating] = []
        for i, (user_id, movie_id, value, rated_at) in enumerate(events):
            f = f"ratings[{i}]"
            if user_id <= 0:
                raise InvalidArgument(f"{f}.user_id: must be > 0", field=f"{f}.user_id")
            if movie_id <= 0:
                raise InvalidArgument(f"{f}.movie_id: must be > 0", field=f"{f}.movie_id")
            if not is_rating(value):
                raise InvalidArgument(
                    f"{f}.rating: {value} is not on the {RATING_MIN}..{RATING_MAX} scale "
                    f"in steps of {RATING_STEP}",
                    field=f"{f}.rating",
                )
            when = now if rated_at is None else rated_at
            if when > now + FUTURE_SLACK:
                raise InvalidArgument(f"{f}.rated_at: in the future", field=f"{f}.rated_at")
            ratings.append(Rating(user_id, movie_id, round(value * 2) / 2, when))

        # The winner per (user, movie) inside the call.
        winner: dict[tuple[int, int], int] = {}
        for i, r in enumerate(ratings):
            key = (r.user_id, r.movie_id)
            j = winner.get(key)
            if j is None or r.rated_at >= ratings[j].rated_at:
                winner[key] = i
        chosen = sorted(winner.values())
        try:
            written, created = await self._store.record_ratings(
                [ratings[i] for i in chosen], create_missing_users
            )
        except UnknownMovies as exc:
            bad = set(exc.movie_ids)
            i = next(k for k, r in enumerate(ratings) if r.movie_id in bad)
            raise InvalidArgument(
                f"ratings[{i}].movie_id: unknown movie {ratings[i].movie_id}", field=f"ratings[{i}].movie_id"
            ) from exc
        except UnknownUsers as exc:
            bad = set(exc.user_ids)
            i = next(k for k, r in enumerate(ratings) if r.user_id in bad)
            raise NotFound(
                f"ratings[{i}].user_id: unknown user {ratings[i].user_id} (set create_missing_users)"
            ) from exc
        stored = [ratings[i] for i in chosen if (ratings[i].user_id, ratings[i].movie_id) in written]
        self._mean = None
        self._recent.clear()
        return RecordResult(stored=stored, superseded=len(ratings) - len(stored), created_user_ids=created)

    # --- describe ----------------------------------------------------------------------------

    async def describe(self) -> CatalogInfo:
        return await self._store.describe()

    # --- helpers -----------------------------------------------------------------------------

    async def _known_genres(self, refresh: bool = False) -> frozenset[str]:
        now = time.monotonic()
        if refresh or self._genres is None or now - self._genres[1] > CACHE_TTL_S:
            self._genres = (frozenset(await self._store.genres()), now)
        return self._genres[0]

    async def _check_filter(self, flt: MovieFilter) -> None:
        for name, values in (("genres_any", flt.genres_any), ("genres_all", flt.genres_all)):
            field = f"filter.{name}"
            check_genre_names(values, field)
            if values:
                known = await self._known_genres()
                if any(g.strip() not in known for g in values):
                    known = await self._known_genres(refresh=True)
                check_known_genres(values, known, field)
        check_year_range(flt.year_min or 0, flt.year_max or 0)

    async def _recent_scores(self, half_life_days: float) -> tuple[list[int], list[float]]:
        """The recency-weighted counts, read at most once per CACHE_TTL_S per half-life (the
        aggregate reads every rating of the window: ~50-90 ms on ml-100k, the ranking then ~2 ms)
        and dropped after this server's own writes; one read at a time."""
        hit = self._recent.get(half_life_days)
        if hit is not None and time.monotonic() - hit[2] <= CACHE_TTL_S:
            return hit[0], hit[1]
        async with self._recent_lock:
            hit = self._recent.get(half_life_days)
            if hit is not None and time.monotonic() - hit[2] <= CACHE_TTL_S:
                return hit[0], hit[1]
            ids, scores = await self._store.recent_scores(half_life_days)
            if len(self._recent) >= RECENT_CACHE_SIZE:
                self._recent.pop(min(self._recent, key=lambda h: self._recent[h][2]))
            self._recent[half_life_days] = (ids, scores, time.monotonic())
            return ids, scores

    async def _global_mean(self) -> float:
        now = time.monotonic()
        if self._mean is None or now - self._mean[1] > CACHE_TTL_S:
            mean = await self._store.global_rating_mean()
            self._mean = (mean if mean is not None else 3.0, now)
        return self._mean[0]
