"""Gateway logic: validation and orchestration of catalog, embedder and retriever.

No gRPC and no business logic beyond orchestration: the embedder decides how a
history becomes a vector, the retriever how exclusions and filters apply, the
catalog what is popular. Upstream calls go through the ``Upstreams`` protocol
(one batch call per hop, independent hops concurrently), so the unit tests use
fakes and production uses the gRPC clients in ``upstreams.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from recsys.catalog.v1 import catalog_pb2
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.errors import InvalidArgument, NotFound, UpstreamError
from recsys_core.validation import (
    QUERY_MAX_CHARS,
    RATING_MAX,
    RATING_MIN,
    check_genre_names,
    check_known_genres,
    check_timestamp,
    check_year_range,
    in_rating_range,
    normalize_query,
    vector_version,
)

from . import resilience
from .caches import ITEM_VECTORS_MAX, MOVIES_TTL_S, ItemVectors, MovieMetadata

MAX_K = 100
DEFAULT_K = 10
MAX_SIGNAL_MOVIES = 1000
# How often (at most) a filter genre missing from the cached vocabulary re-reads it (seconds).
GENRES_RECHECK_S = 1.0
MAX_SAMPLE = 100
MAX_SAMPLE_EXCLUDE = 10_000
DEFAULT_SAMPLE = 16
MAX_FEEDBACK = 1000
MAX_GET_MOVIES = 1000
# How many of a user's most recent liked movies are candidates for "because you liked ...".
BECAUSE_CANDIDATES = 200
# Explanations only: a history movie rated at or above this (or liked without a rating) may be
# named in "because you liked ...". It does not decide how ratings shape the user vector: by
# default a low rating is ordinary history, and the embedder applies the rule the served model's
# manifest names (services/embedder/src/recsys_embedder/signals.py); only explicit
# disliked_movie_ids always push the query away.
LIKED_THRESHOLD = 3.5
# Upstream limits on one query's exclusions and results (retriever SearchQuery.exclude_ids and
# SearchRequest.k; catalog GetPopularRequest.exclude_ids and k): see _exclusion.
MAX_EXCLUDE_IDS = 100_000
MAX_UPSTREAM_K = 1000


class Upstreams(Protocol):
    """The batch calls the gateway makes. Implementations raise recsys_core errors."""

    async def get_movies(self, req: catalog_pb2.GetMoviesRequest) -> catalog_pb2.GetMoviesResponse: ...
    async def search_movies(
        self, req: catalog_pb2.SearchMoviesRequest
    ) -> catalog_pb2.SearchMoviesResponse: ...
    async def sample_movies(
        self, req: catalog_pb2.SampleMoviesRequest
    ) -> catalog_pb2.SampleMoviesResponse: ...
    async def get_popular(self, req: catalog_pb2.GetPopularRequest) -> catalog_pb2.GetPopularResponse: ...
    async def get_user_history(
        self, req: catalog_pb2.GetUserHistoryRequest
    ) -> catalog_pb2.GetUserHistoryResponse | catalog_pb2.UserHistory: ...
    async def get_users(self, req: catalog_pb2.GetUsersRequest) -> catalog_pb2.GetUsersResponse: ...
    async def describe_catalog(self, req: catalog_pb2.DescribeRequest) -> catalog_pb2.DescribeResponse: ...
    async def record_ratings(
        self, req: catalog_pb2.RecordRatingsRequest
    ) -> catalog_pb2.RecordRatingsResponse: ...
    async def embed_query(self, req: embedder_pb2.EmbedQueryRequest) -> embedder_pb2.EmbedQueryResponse: ...
    async def embed_items(self, req: embedder_pb2.EmbedItemsRequest) -> embedder_pb2.EmbedItemsResponse: ...
    async def search(self, req: retriever_pb2.SearchRequest) -> retriever_pb2.SearchResponse: ...
    async def get_vectors(self, req: retriever_pb2.GetVectorsRequest) -> retriever_pb2.GetVectorsResponse: ...


@dataclass(frozen=True)
class GatewayOptions:
    # Quiz default: only movies with at least this many ratings (people know them).
    sample_min_ratings: int = 50
    # Recommend by user_id: the user's newest ratings that build the user vector (the history
    # window). Exclusion is not bounded by it: every rated movie is excluded (seen_movie_ids).
    history_window: int = 1000
    # Ask the catalog for the history as packed columns and pass it to the embedder so
    # (QuerySignal.history_columns; needs an embedder that reads them). False = per-event messages.
    history_columns: bool = True
    # How long ListGenres serves the genre list it last read from the catalog (seconds; 0 = no cache).
    genres_ttl_s: float = 60.0
    # The no-signal fallback: catalog GetPopular's ranking and (RECENT) half-life, 0 = catalog's.
    popular_ranking: int = catalog_pb2.POPULARITY_RANKING_RECENT
    popular_half_life_days: float = 0.0
    # Item vectors kept for "because you liked" (entries; 0 = ask the embedder every time).
    item_vector_cache: int = ITEM_VECTORS_MAX
    # How long a movie's card (catalog metadata and rating stats) may be served from the gateway's
    # cache (seconds; 0 = ask the catalog every time); a newer catalog metadata version drops it
    # sooner (caches.MovieMetadata).
    movie_cache_ttl_s: float = MOVIES_TTL_S
    # Degraded mode (issue #16): while an upstream is down (UNAVAILABLE, its circuit open, or its
    # slice of the deadline spent), answer without it where possible, saying what was skipped in
    # the response's `degraded` list. Off here (every upstream failure passes through, as the
    # orchestration tests expect); the server turns it on (RECSYS_GATEWAY_FALLBACKS, default on).
    fallbacks: bool = False


def _check_id(value: int, field: str) -> None:
    if value <= 0:
        raise InvalidArgument(f"{field} must be a positive id, got {value}", field=field)


def validate_filter(f: common_pb2.MovieFilter, field: str = "filter") -> None:
    """The filter's shape (recsys_core.validation's one rule for genre names and years); the
    genres' vocabulary is checked by Service._check_filter_genres."""
    for name in ("genres_any", "genres_all"):
        check_genre_names(getattr(f, name), f"{field}.{name}")
    check_year_range(f.year_min, f.year_max, field)


def _k(k: int, field: str = "k") -> int:
    if k == 0:
        return DEFAULT_K
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"{field} must be 1..{MAX_K} (0 = {DEFAULT_K}), got {k}", field=field)
    return k


def _has_demographics(d: common_pb2.Demographics) -> bool:
    return bool(d.gender or d.age or d.occupation)


def validate_recommend(req: gateway_pb2.RecommendRequest) -> int:
    """Validate a Recommend request; return the effective k."""
    k = _k(req.k)
    validate_filter(req.filter)
    has_taste = bool(req.liked or req.disliked_movie_ids)
    has_demo = _has_demographics(req.demographics)
    if req.user_id < 0:
        raise InvalidArgument(f"user_id must be a positive id, got {req.user_id}", field="user_id")
    if req.user_id and (has_taste or has_demo):
        raise InvalidArgument(
            "give either user_id, or liked/disliked movies and/or demographics, not both", field="user_id"
        )
    if not (req.user_id or has_taste or has_demo):
        raise InvalidArgument(
            "no signal: give user_id, liked/disliked movie ids, or demographics", field="user_id"
        )
    if len(req.liked) > MAX_SIGNAL_MOVIES:
        raise InvalidArgument(f"liked: at most {MAX_SIGNAL_MOVIES} movies", field="liked")
    if len(req.disliked_movie_ids) > MAX_SIGNAL_MOVIES:
        raise InvalidArgument(
            f"disliked_movie_ids: at most {MAX_SIGNAL_MOVIES} movies", field="disliked_movie_ids"
        )
    liked_ids = set()
    for i, m in enumerate(req.liked):
        _check_id(m.movie_id, f"liked[{i}].movie_id")
        if m.rating and not in_rating_range(m.rating):
            raise InvalidArgument(
                f"liked[{i}].rating must be {RATING_MIN}..{RATING_MAX} (0 = liked without rating), "
                f"got {m.rating}",
                field=f"liked[{i}].rating",
            )
        if m.HasField("rated_at"):
            check_timestamp(m.rated_at, f"liked[{i}].rated_at")
        liked_ids.add(m.movie_id)
    for i, mid in enumerate(req.disliked_movie_ids):
        _check_id(mid, f"disliked_movie_ids[{i}]")
    overlap = liked_ids.intersection(req.disliked_movie_ids)
    if overlap:
        raise InvalidArgument(
            f"movies both liked and disliked: {sorted(overlap)[:10]}", field="disliked_movie_ids"
        )
    if has_demo:
        d = req.demographics
        if d.age and not 1 <= d.age <= 120:
            raise InvalidArgument(f"demographics.age must be 1..120, got {d.age}", field="demographics.age")
        if len(d.occupation) > 64:
            raise InvalidArgument("demographics.occupation is too long", field="demographics.occupation")
    return k


def _vectors_of(model_version: str) -> str:
    """The retriever version holding the item vectors of the model that made a query vector
    (issue #18: a query vector never meets another model's item vectors, also mid-rollout);
    empty (the serving alias) only when the embedder names no version."""
    return vector_version(model_version) if model_version else ""


def _dedupe(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _exclusion(exclude: Sequence[int], k: int) -> tuple[list[int], int]:
    """The ids to send upstream as exclusions and how many results to ask for.

    Up to MAX_EXCLUDE_IDS ids (a user with 100,000 rated movies) all travel, and the upstream
    returns exactly ``k`` when ``k`` remain. Past that, the first MAX_EXCLUDE_IDS travel and
    ``k`` grows by the overflow (at most MAX_UPSTREAM_K), because the gateway drops every
    excluded id from the answer (``_unique_hits``): still exact while the overflow fits, and
    never a seen movie, though fewer than ``k`` may come back for more than ~100,900 ids.
    """
    if len(exclude) <= MAX_EXCLUDE_IDS:
        return list(exclude), k
    overflow = len(exclude) - MAX_EXCLUDE_IDS
    return list(exclude[:MAX_EXCLUDE_IDS]), min(k + overflow, MAX_UPSTREAM_K)


class GatewayService:
    def __init__(
        self,
        upstreams: Upstreams,
        options: GatewayOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._up = upstreams
        self._opt = options or GatewayOptions()
        self._clock = clock
        # ListGenres cache: (genres, read at); one catalog read at a time refreshes it.
        self._genres: tuple[tuple[str, ...], float] | None = None
        self._genres_lock = asyncio.Lock()
        # PinSage item vectors of one model version, for "because you liked" (caches.py).
        self._vectors = ItemVectors(self._opt.item_vector_cache)
        # Catalog movies for the cards, invalidated by the catalog's metadata version (caches.py).
        self._movies = MovieMetadata(self._opt.movie_cache_ttl_s, clock=clock)

    # ---------------------------------------------------------------- Recommend
    async def recommend(self, req: gateway_pb2.RecommendRequest) -> gateway_pb2.RecommendResponse:
        k = validate_recommend(req)
        await self._check_filter_genres(req.filter)
        exclude_seen = req.exclude_seen if req.HasField("exclude_seen") else True

        signal = embedder_pb2.QuerySignal()
        seen: list[int] = []
        # History movies newest first: the candidates for "because you liked ...".
        recent_first: list[tuple[int, float]] = []  # (movie_id, rating)
        if req.user_id:
            # The newest history_window events build the user vector; seen_movie_ids (asked for
            # only when excluding) lists every movie the user rated, whatever the count.
            try:
                history = await self._up.get_user_history(
                    catalog_pb2.GetUserHistoryRequest(
                        user_id=req.user_id,
                        limit=self._opt.history_window,
                        include_seen_ids=exclude_seen,
                        columns=self._opt.history_columns,
                    )
                )
            except UpstreamError as exc:
                if not self._falls_back(exc):
                    raise
                # No fallback: without the history there is nothing personal to serve, and a
                # popular list could not exclude the movies the user has seen.
                raise UpstreamError(
                    exc.upstream,
                    exc.upstream_code,
                    f"{exc.detail} (Recommend by user_id needs the user's history from the catalog; "
                    "liked/disliked and demographics requests are still served)",
                ) from None
            # The catalog answers newest first; the embedder takes event order, oldest first (the
            # times order it anyway; the list order agrees with them).
            cols = history.columns
            if cols.movie_ids:  # packed columns: passed on as columns, no message per event
                ids, rats = list(cols.movie_ids), list(cols.ratings)
                passed = signal.history_columns
                passed.movie_ids.extend(ids[::-1])
                passed.ratings.extend(rats[::-1])
                passed.rated_at_us.extend(list(cols.rated_at_us)[::-1])
                recent_first = list(zip(ids, rats, strict=True))
            else:  # one message per event (HISTORY_COLUMNS off, or a catalog without columns)
                ids = [r.movie_id for r in history.ratings]
                for r in reversed(history.ratings):
                    signal.history.add(movie_id=r.movie_id, rating=r.rating, rated_at=r.rated_at)
                recent_first = [(r.movie_id, r.rating) for r in history.ratings]
            # The window's ids too: a catalog that predates seen_movie_ids still has them excluded.
            seen = list(history.seen_movie_ids) + ids
            if not ids:
                users = await self._up.get_users(catalog_pb2.GetUsersRequest(user_ids=[req.user_id]))
                if users.users and _has_demographics(users.users[0].demographics):
                    signal.demographics.CopyFrom(users.users[0].demographics)
        else:
            signal.history.extend(req.liked)
            recent_first = [(m.movie_id, m.rating) for m in reversed(req.liked)]  # liked: oldest first
            signal.disliked_movie_ids.extend(req.disliked_movie_ids)
            if _has_demographics(req.demographics):
                signal.demographics.CopyFrom(req.demographics)
            seen = [m.movie_id for m in req.liked] + list(req.disliked_movie_ids)
        exclude = _dedupe(seen) if exclude_seen else []

        has_history = bool(signal.history) or signal.HasField("history_columns")
        if not (has_history or signal.disliked_movie_ids or _has_demographics(signal.demographics)):
            # A known user with no history and no demographics: popular movies.
            return await self._popular(k, req.filter, exclude, unknown=[])

        try:
            embedded = await self._up.embed_query(embedder_pb2.EmbedQueryRequest(signals=[signal]))
        except UpstreamError as exc:
            if not self._falls_back(exc):
                raise
            return await self._popular_instead(exc, resilience.EMBEDDER_POPULAR, k, req.filter, exclude, [])
        qv = embedded.vectors[0]
        unknown = list(qv.unknown_movie_ids)
        if not qv.vector.values:
            return await self._popular(k, req.filter, exclude, unknown=unknown)

        space = qv.space or common_pb2.VECTOR_SPACE_PINSAGE
        sent, fetch_k = _exclusion(exclude, k)
        try:
            result = await self._up.search(
                retriever_pb2.SearchRequest(
                    space=space,
                    queries=[retriever_pb2.SearchQuery(vector=qv.vector, exclude_ids=sent)],
                    k=fetch_k,
                    filter=req.filter,
                    version=_vectors_of(embedded.model_version),
                )
            )
        except UpstreamError as exc:
            if not self._falls_back(exc):
                raise
            return await self._popular_instead(
                exc, resilience.RETRIEVER_POPULAR, k, req.filter, exclude, unknown
            )
        hits = _unique_hits(result.results[0].hits if result.results else [], set(exclude))[:k]
        if space == common_pb2.VECTOR_SPACE_TWO_TOWER:
            strategy = gateway_pb2.STRATEGY_DEMOGRAPHIC
        elif _has_demographics(signal.demographics):
            strategy = gateway_pb2.STRATEGY_BLENDED
        else:
            strategy = gateway_pb2.STRATEGY_PERSONALIZED
        because_pool: list[int] = []
        if space == common_pb2.VECTOR_SPACE_PINSAGE:
            # Liked movies the model does not know (added since training, issue #20) stay
            # candidates: their vectors come from the retriever (_decorate).
            because_pool = _dedupe(
                [mid for mid, rating in recent_first if rating == 0 or rating >= LIKED_THRESHOLD]
            )[:BECAUSE_CANDIDATES]
        notes: list[str] = []
        recs = await self._decorate(hits, because_pool, embedded.model_version, notes, unknown)
        return gateway_pb2.RecommendResponse(
            recommendations=recs,
            strategy=strategy,
            model_version=embedded.model_version,
            unknown_movie_ids=unknown,
            degraded=_flagged("Recommend", notes),
        )

    def _falls_back(self, exc: UpstreamError) -> bool:
        """Whether a failed upstream call may be answered without that upstream."""
        return self._opt.fallbacks and resilience.is_down(exc)

    async def _popular_instead(
        self,
        cause: UpstreamError,
        note: str,
        k: int,
        flt: common_pb2.MovieFilter,
        exclude: list[int],
        unknown: list[int],
    ) -> gateway_pb2.RecommendResponse:
        """Degraded: the catalog's popular movies, flagged ``note``; when the catalog cannot
        answer either, the original failure (``cause``)."""
        try:
            resp = await self._popular(k, flt, exclude, unknown)
        except UpstreamError:
            raise cause from None
        resp.degraded.extend(_flagged("Recommend", [note]))
        return resp

    async def _popular(
        self, k: int, flt: common_pb2.MovieFilter, exclude: list[int], unknown: list[int]
    ) -> gateway_pb2.RecommendResponse:
        sent, fetch_k = _exclusion(exclude, k)
        popular = await self._up.get_popular(
            catalog_pb2.GetPopularRequest(
                k=fetch_k,
                filter=flt,
                exclude_ids=sent,
                ranking=self._opt.popular_ranking,  # type: ignore[arg-type]
                half_life_days=self._opt.popular_half_life_days,
            )
        )
        excluded = set(exclude) if len(sent) < len(exclude) else set()
        recs = [
            gateway_pb2.Recommendation(movie=m, score=s)
            for m, s in zip(popular.movies, popular.scores, strict=False)
            if m.movie_id not in excluded
        ][:k]
        return gateway_pb2.RecommendResponse(
            recommendations=recs, strategy=gateway_pb2.STRATEGY_POPULAR, unknown_movie_ids=unknown
        )

    async def _decorate(
        self,
        hits: Sequence[common_pb2.ScoredMovie],
        because_pool: Sequence[int],
        model_version: str = "",
        notes: list[str] | None = None,
        unknown: Sequence[int] = (),
    ) -> list[gateway_pb2.Recommendation]:
        """Metadata for hits and the closest liked movie ("because you liked ...").

        Item vectors of ``model_version`` come from the gateway's cache. When all are cached the
        pick is made first and one catalog batch fetches the hits and the picked movies only;
        otherwise the missing vectors (one embedder batch) and the metadata of hits and the
        whole pool (one catalog batch) are fetched concurrently. Pool movies in ``unknown`` (the
        model does not know them: added since training, issue #20) take their vectors from the
        retriever's version of ``model_version`` (GetVectors, concurrently, never cached: a refresh
        re-embeds them), and are named only when the catalog lists them.

        Degraded (fallbacks on, the upstream down; what was skipped is added to ``notes``): no
        catalog, cards from the cache whatever their age, else the id alone; no embedder, only
        the cached vectors take part in "because you liked"."""
        if not hits:
            return []
        if notes is None:
            notes = []
        hit_ids = [h.movie_id for h in hits]
        hit_set = set(hit_ids)
        pool = [m for m in because_pool if m not in hit_set]
        because: dict[int, int] = {}
        if pool:
            vec_ids = _dedupe(hit_ids + pool)[:MAX_GET_MOVIES]
            unknown_set = set(unknown)
            added = [m for m in vec_ids if m in unknown_set] if model_version else []
            trained = [m for m in vec_ids if m not in unknown_set]
            vec, missing = self._vectors.lookup(model_version, trained)
            if missing or added:
                by_id, items, from_retriever = await asyncio.gather(
                    self._movie_cards(vec_ids, notes),
                    self._item_vectors(missing, notes),
                    self._added_vectors(added, model_version, notes),
                )
                if items is not None:
                    rows = np.asarray([v.values for v in items.vectors], dtype=np.float32)
                    got = self._vectors.store(items.model_version, missing, list(items.found_ids), rows)
                    if items.model_version == model_version:  # never compare two models' vectors
                        vec.update(got)
                # A movie added since training is named only once the catalog lists it.
                vec.update((m, v) for m, v in from_retriever.items() if m in by_id)
            because = _closest(hit_ids, pool, vec)
            if not (missing or added):
                by_id = await self._movie_cards(_dedupe(hit_ids + list(because.values())), notes)
        else:
            by_id = await self._movie_cards(hit_ids, notes)
        recs = []
        for h in hits:
            movie = by_id.get(h.movie_id)
            if movie is None:  # in the vector index but not in the catalog: never show it
                continue
            b = because.get(h.movie_id, 0)
            recs.append(
                gateway_pb2.Recommendation(
                    movie=movie,
                    score=h.score,
                    because_movie_id=b,
                    because_title=by_id[b].title if b in by_id else "",
                )
            )
        return recs

    async def _added_vectors(
        self, ids: list[int], model_version: str, notes: list[str]
    ) -> dict[int, np.ndarray]:
        """Vectors of movies added since ``model_version`` was trained, from the retriever's
        version of that model (none held: {}); {} (flagged) when the retriever is down and
        fallbacks are on."""
        if not ids:
            return {}
        try:
            got = await self._up.get_vectors(
                retriever_pb2.GetVectorsRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE, version=_vectors_of(model_version), movie_ids=ids
                )
            )
        except UpstreamError as exc:
            if resilience.is_not_found(exc):  # the retriever has no such version
                return {}
            if not self._falls_back(exc):
                raise
            notes.append(resilience.RETRIEVER_BECAUSE)
            return {}
        return {
            item.movie_id: np.asarray(item.vector.values, dtype=np.float32)
            for item in got.items
            if item.vector.values
        }

    async def _item_vectors(self, ids: list[int], notes: list[str]) -> embedder_pb2.EmbedItemsResponse | None:
        """EmbedItems of ``ids`` (none: None); None (flagged) when the embedder is down and
        fallbacks are on."""
        if not ids:
            return None
        try:
            return await self._up.embed_items(
                embedder_pb2.EmbedItemsRequest(space=common_pb2.VECTOR_SPACE_PINSAGE, movie_ids=ids)
            )
        except UpstreamError as exc:
            if not self._falls_back(exc):
                raise
            notes.append(resilience.EMBEDDER_BECAUSE)
            return None

    async def _movie_cards(self, ids: Sequence[int], notes: list[str]) -> dict[int, common_pb2.Movie]:
        """Catalog movies of ``ids`` by id (unknown ones absent): from the cache, the rest in one
        GetMovies. When that answer reports newer metadata, what came from the cache is read
        again, so one response never mixes a changed movie's old card with the new version.

        With the catalog down (fallbacks on): cached cards whatever their age, a card holding
        only the id for a movie never cached, flagged in ``notes``."""
        found, missing = self._movies.lookup(ids)
        if missing:
            try:
                answer = await self._up.get_movies(catalog_pb2.GetMoviesRequest(movie_ids=missing))
            except UpstreamError as exc:
                if not self._falls_back(exc):
                    raise
                notes.append(resilience.CATALOG_METADATA)
                stale, uncached = self._movies.lookup_stale(missing)
                found.update(stale)
                found.update((m, common_pb2.Movie(movie_id=m)) for m in uncached)
                return found
            got, newer = self._movies.store(missing, answer)
            if newer and found:
                again = list(found)
                try:
                    answer = await self._up.get_movies(catalog_pb2.GetMoviesRequest(movie_ids=again))
                    found = self._movies.store(again, answer)[0]
                except UpstreamError as exc:
                    if not self._falls_back(exc):
                        raise
                    notes.append(resilience.CATALOG_METADATA)  # the cached cards, maybe stale
            found.update(got)
        return found

    # ------------------------------------------------------------ SimilarMovies
    async def similar_movies(
        self, req: gateway_pb2.SimilarMoviesRequest
    ) -> gateway_pb2.SimilarMoviesResponse:
        _check_id(req.movie_id, "movie_id")
        k = _k(req.k)
        validate_filter(req.filter)
        await self._check_filter_genres(req.filter)
        try:
            items = await self._up.embed_items(
                embedder_pb2.EmbedItemsRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE, movie_ids=[req.movie_id]
                )
            )
        except UpstreamError as exc:
            if not self._falls_back(exc):
                raise
            return await self._similar_popular(exc, resilience.EMBEDDER_POPULAR, req, k)
        try:
            vector = items.vectors[0] if items.vectors else await self._added_vector(req.movie_id, items)
            result = await self._up.search(
                retriever_pb2.SearchRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE,
                    queries=[retriever_pb2.SearchQuery(vector=vector, exclude_ids=[req.movie_id])],
                    k=k,
                    filter=req.filter,
                    version=_vectors_of(items.model_version),
                )
            )
        except UpstreamError as exc:
            if not self._falls_back(exc):
                raise
            return await self._similar_popular(exc, resilience.RETRIEVER_POPULAR, req, k)
        hits = _unique_hits(result.results[0].hits if result.results else [], {req.movie_id})[:k]
        notes: list[str] = []
        recs = await self._decorate(hits, [], notes=notes)
        for r in recs:
            r.because_movie_id = req.movie_id
        return gateway_pb2.SimilarMoviesResponse(
            movies=recs, model_version=items.model_version, degraded=_flagged("SimilarMovies", notes)
        )

    async def _added_vector(self, movie_id: int, items: embedder_pb2.EmbedItemsResponse) -> common_pb2.Vector:
        """The vector of a movie the model was not trained on but that was added since (catalog
        AddMovies, issue #20): EmbedItems does not know it, the retriever's version of the same
        model holds its inductive vector. Neither has it, or the catalog does not list the movie
        (still pending: a vector in the retriever is never shown without its metadata): NOT_FOUND.
        The retriever unavailable raises its UpstreamError (the caller's fallback applies)."""
        listed = await self._up.get_movies(catalog_pb2.GetMoviesRequest(movie_ids=[movie_id]))
        if not any(m.movie_id == movie_id for m in listed.movies):
            raise NotFound(f"movie {movie_id} is not known to the model nor in the catalog", field="movie_id")
        try:
            got = await self._up.get_vectors(
                retriever_pb2.GetVectorsRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE,
                    version=_vectors_of(items.model_version),
                    movie_ids=[movie_id],
                )
            )
        except UpstreamError as exc:
            if not resilience.is_not_found(exc):  # NOT_FOUND: the retriever has no such version
                raise
            got = retriever_pb2.GetVectorsResponse(missing_ids=[movie_id])
        for item in got.items:
            if item.movie_id == movie_id and item.vector.values:
                return item.vector
        raise NotFound(f"movie {movie_id} is not known to the model nor added since", field="movie_id")

    async def _similar_popular(
        self, cause: UpstreamError, note: str, req: gateway_pb2.SimilarMoviesRequest, k: int
    ) -> gateway_pb2.SimilarMoviesResponse:
        """Degraded SimilarMovies: popular movies (not the movie itself), flagged; no
        because_movie_id (they are not similar to it). The original failure when the catalog
        cannot answer either."""
        try:
            popular = await self._popular(k, req.filter, [req.movie_id], unknown=[])
        except UpstreamError:
            raise cause from None
        return gateway_pb2.SimilarMoviesResponse(
            movies=popular.recommendations, degraded=_flagged("SimilarMovies", [note])
        )

    # ------------------------------------------------------------ catalog reads
    async def get_movies(self, req: gateway_pb2.GetMoviesRequest) -> gateway_pb2.GetMoviesResponse:
        if not req.movie_ids:
            raise InvalidArgument("movie_ids must not be empty", field="movie_ids")
        if len(req.movie_ids) > MAX_GET_MOVIES:
            raise InvalidArgument(
                f"at most {MAX_GET_MOVIES} movie_ids per call, got {len(req.movie_ids)}", field="movie_ids"
            )
        for i, mid in enumerate(req.movie_ids):
            _check_id(mid, f"movie_ids[{i}]")
        got = await self._up.get_movies(catalog_pb2.GetMoviesRequest(movie_ids=req.movie_ids))
        return gateway_pb2.GetMoviesResponse(
            movies=got.movies, missing_ids=got.missing_ids, metadata_version=got.metadata_version
        )

    async def search_movies(self, req: gateway_pb2.SearchMoviesRequest) -> gateway_pb2.SearchMoviesResponse:
        # Trimmed, then checked (the proto's rule; the catalog applies the same function).
        query = normalize_query(req.query, max_chars=QUERY_MAX_CHARS)
        if not 0 <= req.limit <= 100:
            raise InvalidArgument(f"limit must be 1..100 (0 = 10), got {req.limit}", field="limit")
        got = await self._up.search_movies(catalog_pb2.SearchMoviesRequest(query=query, limit=req.limit))
        return gateway_pb2.SearchMoviesResponse(
            hits=[gateway_pb2.SearchHit(movie=h.movie, similarity=h.similarity) for h in got.hits]
        )

    async def sample_movies(self, req: gateway_pb2.SampleMoviesRequest) -> gateway_pb2.SampleMoviesResponse:
        n = req.n or DEFAULT_SAMPLE
        if not 1 <= n <= MAX_SAMPLE:
            raise InvalidArgument(f"n must be 1..{MAX_SAMPLE} (0 = {DEFAULT_SAMPLE}), got {req.n}", field="n")
        validate_filter(req.filter)
        min_ratings = req.min_ratings if req.HasField("min_ratings") else self._opt.sample_min_ratings
        if min_ratings < 0:
            raise InvalidArgument(f"min_ratings must be >= 0, got {min_ratings}", field="min_ratings")
        if len(req.exclude_ids) > MAX_SAMPLE_EXCLUDE:
            raise InvalidArgument(f"exclude_ids: at most {MAX_SAMPLE_EXCLUDE} ids", field="exclude_ids")
        got = await self._up.sample_movies(
            catalog_pb2.SampleMoviesRequest(
                n=n, seed=req.seed, min_ratings=min_ratings, filter=req.filter, exclude_ids=req.exclude_ids
            )
        )
        return gateway_pb2.SampleMoviesResponse(movies=got.movies)

    async def list_genres(self, req: gateway_pb2.ListGenresRequest) -> gateway_pb2.ListGenresResponse:
        """The catalog's genre vocabulary (its Describe), sorted; cached for ``genres_ttl_s``.

        Describe also counts ratings, so concurrent misses share one catalog read. A failed
        read caches nothing: the caller gets the catalog's error and the next call tries again.
        """
        cached = self._fresh_genres()
        if cached is None:
            try:
                cached = await self._read_genres()
            except UpstreamError as exc:
                if self._genres is None or not self._falls_back(exc):
                    raise
                # Degraded: the last list read, however old (the vocabulary rarely moves).
                return gateway_pb2.ListGenresResponse(
                    genres=self._genres[0],
                    degraded=_flagged("ListGenres", [resilience.CATALOG_GENRES]),
                )
        return gateway_pb2.ListGenresResponse(genres=cached)

    def _fresh_genres(self) -> tuple[str, ...] | None:
        if self._genres is None:
            return None
        genres, read_at = self._genres
        return genres if self._clock() - read_at < self._opt.genres_ttl_s else None

    async def _read_genres(self, min_age_s: float = 0.0) -> tuple[str, ...]:
        """Read the vocabulary from the catalog (one read at a time) unless another caller did
        within ``min_age_s`` (or within the TTL, for min_age_s=0) while this one waited."""
        async with self._genres_lock:
            if self._genres is not None:
                age = self._clock() - self._genres[1]
                if age < (min_age_s or self._opt.genres_ttl_s):
                    return self._genres[0]
            info = await self._up.describe_catalog(catalog_pb2.DescribeRequest())
            genres = tuple(sorted({g for g in info.genres if g}))
            self._genres = (genres, self._clock())
            return genres

    async def _check_filter_genres(self, flt: common_pb2.MovieFilter, field: str = "filter") -> None:
        """Every genre a filter names must be in the catalog's vocabulary (issue #16 item 6): an
        unknown one is INVALID_ARGUMENT in Recommend and SimilarMovies as in SampleMovies, not an
        empty OK. The vocabulary is ListGenres' cache; a name it lacks re-reads it at most once
        per GENRES_RECHECK_S (a genre added since), so a flood of made-up genres costs the
        catalog one Describe a second. With the catalog down and no list ever read, the check is
        skipped: the retriever's filter then matches nothing for an unknown genre."""
        names = [*flt.genres_any, *flt.genres_all]
        if not names:
            return
        known = self._genres[0] if self._genres is not None else None
        if known is None or self._fresh_genres() is None or any(g.strip() not in known for g in names):
            try:
                known = await self._read_genres(min_age_s=GENRES_RECHECK_S)
            except UpstreamError:
                if known is None:
                    return
        for name in ("genres_any", "genres_all"):
            check_known_genres(getattr(flt, name), known, f"{field}.{name}")

    async def record_feedback(
        self, req: gateway_pb2.RecordFeedbackRequest
    ) -> gateway_pb2.RecordFeedbackResponse:
        if not req.ratings:
            raise InvalidArgument("ratings must not be empty", field="ratings")
        if len(req.ratings) > MAX_FEEDBACK:
            raise InvalidArgument(f"at most {MAX_FEEDBACK} ratings per call", field="ratings")
        for i, r in enumerate(req.ratings):
            _check_id(r.user_id, f"ratings[{i}].user_id")
            _check_id(r.movie_id, f"ratings[{i}].movie_id")
            if not in_rating_range(r.rating):
                raise InvalidArgument(
                    f"ratings[{i}].rating must be {RATING_MIN}..{RATING_MAX}, got {r.rating}",
                    field=f"ratings[{i}].rating",
                )
            if r.HasField("rated_at"):
                check_timestamp(r.rated_at, f"ratings[{i}].rated_at")
        out = await self._up.record_ratings(
            catalog_pb2.RecordRatingsRequest(ratings=req.ratings, create_missing_users=True)
        )
        return gateway_pb2.RecordFeedbackResponse(stored=out.stored, superseded=out.superseded)


def _flagged(rpc: str, notes: Sequence[str]) -> list[str]:
    """The degraded reasons of one answer (each once), counted in the metrics."""
    reasons = list(dict.fromkeys(notes))
    resilience.count_degraded(rpc, reasons)
    return reasons


def _unique_hits(hits: Sequence[common_pb2.ScoredMovie], exclude: set[int]) -> list[common_pb2.ScoredMovie]:
    """Drop duplicates and excluded ids (defence in depth: the retriever already guarantees both)."""
    seen: set[int] = set()
    out = []
    for h in hits:
        if h.movie_id in seen or h.movie_id in exclude:
            continue
        seen.add(h.movie_id)
        out.append(h)
    return out


def _closest(hit_ids: Sequence[int], pool: Sequence[int], vec: dict[int, np.ndarray]) -> dict[int, int]:
    """For each hit, the pool movie with the highest inner product (movies without a vector
    take no part)."""
    pool_ids = [m for m in pool if m in vec]
    hits_known = [h for h in hit_ids if h in vec]
    if not pool_ids or not hits_known:
        return {}
    p = np.stack([vec[m] for m in pool_ids])
    h = np.stack([vec[m] for m in hits_known])
    best = (h @ p.T).argmax(axis=1)
    return {hid: pool_ids[int(j)] for hid, j in zip(hits_known, best, strict=True)}
