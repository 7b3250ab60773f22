"""Test helpers: a fake gateway (an in-process grpc.aio server with canned data) and a web app
served from a background thread (for browser tests, whose drivers block).

Used by tests/unit/web and tests/e2e/web; imports nothing beyond the web's own dependencies.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.validation import in_rating_range

from .server import WebApp
from .settings import RecsysWebSettings

GENRES = ("Action", "Adventure", "Animation", "Comedy", "Crime", "Drama", "Horror", "Romance", "Sci-Fi")
_WORDS = (
    "Star", "Night", "River", "Ghost", "Summer", "City", "Last", "Secret", "Iron", "Blue",
    "Dream", "Storm", "Silent", "Golden", "Lost", "Wild", "Dark", "Little", "Broken", "Winter",
)  # fmt: skip


def canned_movies(n: int = 60) -> list[common_pb2.Movie]:
    """``n`` deterministic movies (ids 1..n); ids divisible by 3 are obscure (< 50 ratings)."""
    movies = []
    for i in range(1, n + 1):
        title = f"{_WORDS[i % len(_WORDS)]} {_WORDS[(i * 7 + 3) % len(_WORDS)]}"
        if i % 5 == 0:
            title = f"The {title}"
        genres = sorted({GENRES[i % len(GENRES)], GENRES[(i * 3 + 1) % len(GENRES)]})
        movies.append(
            common_pb2.Movie(
                movie_id=i,
                title=f"{title} {i}",
                year=1950 + (i * 7) % 70,
                genres=genres,
                imdb_id=f"tt{1000000 + i:07d}",
                rating_count=10 if i % 3 == 0 else 100 + 10 * i,
                rating_mean=2.5 + (i % 5) / 2,
            )
        )
    return movies


def _matches(movie: common_pb2.Movie, flt: common_pb2.MovieFilter) -> bool:
    if flt.genres_any and not set(flt.genres_any) & set(movie.genres):
        return False
    if flt.genres_all and not set(flt.genres_all) <= set(movie.genres):
        return False
    if flt.year_min and movie.year < flt.year_min:
        return False
    return not (flt.year_max and movie.year > flt.year_max)


@dataclass
class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    """recsys.gateway.v1.Gateway over canned movies.

    ``failures[method] = (code, details)`` makes a method abort; ``calls`` records
    (method, request) pairs; ``ratings`` holds RecordFeedback events by user; ``genres`` is
    the vocabulary ListGenres answers and filters accept (None: the movies' genres).
    Recommend scores movies by genre overlap with the liked ones (ties by id), minus
    overlap with disliked ones; a user's profile is their ratings >= 3.
    """

    movies: list[common_pb2.Movie] = field(default_factory=canned_movies)
    failures: dict[str, tuple[grpc.StatusCode, str]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    ratings: dict[int, dict[int, float]] = field(default_factory=dict)
    metadata: list[dict[str, str]] = field(default_factory=list)
    genres: list[str] | None = None
    #: seconds each call waits before answering (drain tests)
    delay_s: float = 0.0
    #: the fake's grpc.health.v1 servicer, once served by start_fake_gateway
    health: Any = None

    def __post_init__(self) -> None:
        self.by_id = {m.movie_id: m for m in self.movies}

    def vocabulary(self) -> list[str]:
        """The genre names filters accept, sorted (like the catalog's)."""
        return sorted(
            set(self.genres) if self.genres is not None else {g for m in self.movies for g in m.genres}
        )

    def requests(self, method: str) -> list[Any]:
        return [r for m, r in self.calls if m == method]

    async def _enter(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.calls.append((method, request))
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if method in self.failures:
            code, details = self.failures[method]
            await context.abort(code, details)

    async def _check_filter(self, flt: common_pb2.MovieFilter, context: grpc.aio.ServicerContext) -> None:
        known = set(self.vocabulary())
        for g in [*flt.genres_any, *flt.genres_all]:
            if g not in known:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"filter.genres_any: unknown genre {g!r}"
                )
        if flt.year_min and flt.year_max and flt.year_min > flt.year_max:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "filter: year_min > year_max")

    def _rank(
        self, liked: list[int], disliked: list[int], exclude: set[int], flt: common_pb2.MovieFilter, k: int
    ) -> list[gateway_pb2.Recommendation]:
        scored = []
        for m in self.movies:
            if m.movie_id in exclude or not _matches(m, flt):
                continue
            best, because = 0.0, 0
            for lid in liked:
                overlap = len(set(m.genres) & set(self.by_id[lid].genres)) if lid in self.by_id else 0
                if overlap > best:
                    best, because = float(overlap), lid
            if not because and liked:  # like the real gateway: always the closest liked movie
                because = liked[0]
            penalty = sum(len(set(m.genres) & set(self.by_id[d].genres)) for d in disliked if d in self.by_id)
            score = (best - 0.5 * penalty) / 2 + 1.0 / (1000 + m.movie_id)
            scored.append((score, m, because))
        scored.sort(key=lambda t: (-t[0], t[1].movie_id))
        return [
            gateway_pb2.Recommendation(
                movie=m,
                score=s,
                because_movie_id=b,
                because_title=self.by_id[b].title if b else "",
            )
            for s, m, b in scored[:k]
        ]

    async def Recommend(self, request, context):
        await self._enter("Recommend", request, context)
        await self._check_filter(request.filter, context)
        k = request.k or 10
        if not 1 <= k <= 100:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k: must be 1..100")
        if request.user_id:
            history = self.ratings.get(request.user_id)
            if not history:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"user {request.user_id} not found")
            assert history is not None
            liked = [m for m, r in history.items() if r >= 3]
            disliked = [m for m, r in history.items() if r < 3]
        else:
            liked = [r.movie_id for r in request.liked]
            disliked = list(request.disliked_movie_ids)
            if not liked and not disliked:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "no signal: give user_id or liked/disliked"
                )
            if set(liked) & set(disliked):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "liked and disliked overlap")
        exclude = (
            set(liked) | set(disliked)
            if (not request.HasField("exclude_seen") or request.exclude_seen)
            else set()
        )
        recs = self._rank(liked, disliked, exclude, request.filter, k)
        return gateway_pb2.RecommendResponse(
            recommendations=recs, strategy=gateway_pb2.STRATEGY_PERSONALIZED, model_version="fake-1"
        )

    async def SimilarMovies(self, request, context):
        await self._enter("SimilarMovies", request, context)
        if request.movie_id not in self.by_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"movie {request.movie_id} not found")
        recs = self._rank([request.movie_id], [], {request.movie_id}, request.filter, request.k or 10)
        for r in recs:
            r.because_movie_id, r.because_title = 0, ""
        return gateway_pb2.SimilarMoviesResponse(movies=recs, model_version="fake-1")

    async def GetMovies(self, request, context):
        await self._enter("GetMovies", request, context)
        found = [self.by_id[i] for i in request.movie_ids if i in self.by_id]
        missing = list(dict.fromkeys(i for i in request.movie_ids if i not in self.by_id))
        return gateway_pb2.GetMoviesResponse(movies=found, missing_ids=missing)

    async def SearchMovies(self, request, context):
        await self._enter("SearchMovies", request, context)
        query = request.query.strip().lower()
        if not query or len(query) > 200:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query: 1..200 characters")
        hits = [
            gateway_pb2.SearchHit(movie=m, similarity=1.0)
            for m in sorted(self.movies, key=lambda m: -m.rating_count)
            if query in m.title.lower()
        ]
        return gateway_pb2.SearchMoviesResponse(hits=hits[: request.limit or 10])

    async def SampleMovies(self, request, context):
        await self._enter("SampleMovies", request, context)
        floor = request.min_ratings if request.HasField("min_ratings") else 50
        pool = [
            m
            for m in self.movies
            if m.rating_count >= floor
            and m.movie_id not in set(request.exclude_ids)
            and _matches(m, request.filter)
        ]
        rng = random.Random(request.seed or None)
        picked = rng.sample(pool, min(request.n or 16, len(pool)))
        return gateway_pb2.SampleMoviesResponse(movies=picked)

    async def ListGenres(self, request, context):
        await self._enter("ListGenres", request, context)
        return gateway_pb2.ListGenresResponse(genres=self.vocabulary())

    async def RecordFeedback(self, request, context):
        await self._enter("RecordFeedback", request, context)
        for r in request.ratings:
            if r.movie_id not in self.by_id:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"ratings: unknown movie {r.movie_id}")
            if not in_rating_range(r.rating):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ratings: rating off the scale")
        for r in request.ratings:
            self.ratings.setdefault(r.user_id, {})[r.movie_id] = r.rating
        return gateway_pb2.RecordFeedbackResponse(stored=list(request.ratings))


async def start_fake_gateway(fake: FakeGateway, *, port: int = 0) -> tuple[grpc.aio.Server, int]:
    """Serve ``fake`` (plus grpc.health.v1, SERVING: ``fake.health``) on 127.0.0.1:``port``
    (0 = ephemeral); returns (server, port)."""
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    fake.health = health_servicer
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


class BackgroundWeb:
    """The web app (and optionally a fake gateway) on their own event loop in a thread.

    ``with BackgroundWeb(gateway_target=..., fake=None) as bg: bg.url`` — with ``fake``
    given, the fake gateway is started first and the app points at it.
    """

    def __init__(self, *, gateway_target: str = "", fake: FakeGateway | None = None, **settings: Any) -> None:
        self.fake = fake
        self._gateway_target = gateway_target
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="recsys-web-test", daemon=True)
        self._app: WebApp | None = None
        self._grpc: grpc.aio.Server | None = None
        self.url = ""

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapped() -> Any:
            return fn()

        return self.run(wrapped())

    async def _start(self) -> None:
        target = self._gateway_target
        if self.fake is not None:
            self._grpc, port = await start_fake_gateway(self.fake)
            target = f"127.0.0.1:{port}"
        settings = RecsysWebSettings(gateway_target=target, port=0, log_json=False, **self._settings)
        self._app = await WebApp.started(settings)
        await self._app.wait_ready(20)
        self.url = f"http://127.0.0.1:{self._app.port}"

    async def _stop(self) -> None:
        if self._app is not None:
            await self._app.stop(0)
        if self._grpc is not None:
            await self._grpc.stop(None)

    def __enter__(self) -> BackgroundWeb:
        self._thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


__all__ = ["GENRES", "BackgroundWeb", "FakeGateway", "canned_movies", "start_fake_gateway"]
