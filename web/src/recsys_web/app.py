"""The web app: aiohttp handlers rendering Jinja2 templates, one gateway client.

Pages (all GET unless said):
    /                      the taste quiz (SampleMovies; ``?seed=`` makes a draw repeatable)
    /recommendations       Recommend(liked, disliked, k, filter); the quiz form lands here
    /movies/{id}           GetMovies + SimilarMovies (+ Recommend(user_id) when signed in)
    POST /movies/{id}/rate RecordFeedback for the signed-in demo user
    /search?q=             SearchMovies
    /me                    Recommend(user_id) for the signed-in demo user
    /signin, POST /signin, POST /signout   the demo identity (a user id in a signed cookie)
    /healthz, /readyz, /metrics

Quiz state lives in the URL (``liked=1,2&disliked=3``), so a recommendations
page can be reloaded, shared, and re-queried with filters. Gateway errors
become an error page with a status that says whose fault it was (400 for
INVALID_ARGUMENT, 404 NOT_FOUND, 502/503/504 for upstream trouble).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, TypeVar

import grpc
import jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from recsys_core import tracing
from recsys_core.logs import clean_request_id, new_request_id, reset_request_id, set_request_id
from recsys_core.validation import YEAR_MAX, YEAR_MIN, is_rating

from .gateway_client import GatewayClient, GatewayError, movie_filter
from .settings import RecsysWebSettings

log = logging.getLogger("recsys_web")
access_log = logging.getLogger("recsys_web.access")

USER_COOKIE = "recsys_demo_user"
#: paths without an access-log line or a trace span (probes, scrapes, files)
UNTRACED = ("/static/", "/healthz", "/readyz", "/metrics")
MAX_PROFILE_IDS = 1000
RATINGS = (1, 2, 3, 4, 5)
STRATEGY_LABELS = {
    0: "",
    1: "personalized",
    2: "from demographics",
    3: "blended",
    4: "popular movies (not enough signal for a personal pick)",
}
T = TypeVar("T")


class BadInput(Exception):
    """The browser sent something we cannot use (HTTP 400 with this message)."""


# ---- error mapping: one place ------------------------------------------------------------


@dataclass(frozen=True)
class ErrorView:
    status: int
    title: str
    message: str
    detail: str = ""


def gateway_error_view(exc: GatewayError) -> ErrorView:
    code = exc.code
    detail = f"{exc.method}: {code.name}: {exc.details}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ErrorView(400, "That request was not accepted", exc.details or "Invalid request.", detail)
    if code == grpc.StatusCode.NOT_FOUND:
        return ErrorView(404, "Not found", exc.details or "We could not find that.", detail)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ErrorView(
            504, "The recommender took too long", "It did not answer in time. Please try again.", detail
        )
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return ErrorView(
            502,
            "The web app may not call the recommender",
            "The gateway refused our credentials (RECSYS_WEB_GATEWAY_API_KEY). This is a set-up problem, "
            "not yours.",
            detail,
        )
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION):
        return ErrorView(503, "The recommender is busy or not ready", "Please try again in a moment.", detail)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ErrorView(
            502,
            "The recommender is unavailable",
            "We could not reach the recommendation service. Please try again in a moment.",
            detail,
        )
    return ErrorView(502, "The recommender failed", "Something went wrong behind the scenes.", detail)


# ---- small helpers -----------------------------------------------------------------------


def parse_ids(values: Iterable[str], name: str) -> list[int]:
    """Comma-separated positive ids (any number of query values), deduplicated in order."""
    ids: list[int] = []
    seen: set[int] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) <= 0:
                raise BadInput(f"{name}: {part[:20]!r} is not a movie id")
            mid = int(part)
            if mid not in seen:
                seen.add(mid)
                ids.append(mid)
    if len(ids) > MAX_PROFILE_IDS:
        raise BadInput(f"{name}: at most {MAX_PROFILE_IDS} movies")
    return ids


def parse_year(value: str | None, name: str) -> int:
    if value is None or not value.strip():
        return 0
    value = value.strip()
    if not value.isdigit() or not YEAR_MIN <= int(value) <= YEAR_MAX:
        raise BadInput(f"{name}: a year between {YEAR_MIN} and {YEAR_MAX}, please")
    return int(value)


def initials(title: str) -> str:
    words = [w for w in re.findall(r"[^\W_]+", title) if w.lower() not in {"the", "a", "an", "of", "and"}]
    if not words:
        words = re.findall(r"[^\W_]+", title) or ["?"]
    return "".join(w[0] for w in words[:2]).upper()


_ARTICLE = re.compile(r"^(?P<title>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|Der|Die|Das|El)$")


def display_title(title: str) -> str:
    """MovieLens' "Matrix, The" as "The Matrix" (the catalog keeps the data set's spelling)."""
    m = _ARTICLE.match(title)
    if not m:
        return title
    sep = "" if m["article"].endswith("'") else " "
    return f"{m['article']}{sep}{m['title']}"


def hue(movie_id: int) -> int:
    return (int(movie_id) * 137) % 360


def _sign(key: bytes, user_id: int) -> str:
    return hmac.new(key, f"user:{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


def user_cookie_value(key: bytes, user_id: int) -> str:
    return f"{user_id}.{_sign(key, user_id)}"


def read_user_cookie(key: bytes, value: str | None) -> int | None:
    if not value or "." not in value:
        return None
    uid, _, sig = value.partition(".")
    if not uid.isdigit() or int(uid) <= 0:
        return None
    if not hmac.compare_digest(sig, _sign(key, int(uid))):
        return None
    return int(uid)


@dataclass
class GenreCache:
    """The catalog's genre names (the gateway's ListGenres), kept ``ttl_s`` seconds.

    A failed read keeps the names read before (empty at first) and tries again in 30 s: the
    genre menu is optional, so its failure never fails a page.
    """

    ttl_s: float = 60.0
    genres: set[str] = field(default_factory=set)
    fetched_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, gateway: GatewayClient) -> set[str]:
        if time.monotonic() - self.fetched_at < self.ttl_s:
            return set(self.genres)
        async with self._lock:
            if time.monotonic() - self.fetched_at >= self.ttl_s:
                try:
                    genres = await gateway.list_genres()
                except GatewayError as exc:
                    log.warning("could not read the genre list: %s", exc)
                    self.fetched_at = time.monotonic() - self.ttl_s + 30  # retry in 30 s
                else:
                    self.genres = set(genres)
                    self.fetched_at = time.monotonic()
        return set(self.genres)


# ---- application state -------------------------------------------------------------------


@dataclass
class WebState:
    settings: RecsysWebSettings
    env: jinja2.Environment
    cookie_key: bytes
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    genres: GenreCache = field(default_factory=GenreCache)
    gateway: GatewayClient | None = None
    #: readiness, as the application lifecycle (recsys_web.server.WebApp) sets it
    ready: Callable[[], bool] = lambda: False

    @property
    def gw(self) -> GatewayClient:
        if self.gateway is None:
            raise RuntimeError("gateway client not open")
        return self.gateway


STATE = web.AppKey("recsys_web_state", WebState)


def _state(request: web.Request) -> WebState:
    return request.app[STATE]


def web_state(app: web.Application) -> WebState:
    return app[STATE]


def current_user(request: web.Request) -> int | None:
    return read_user_cookie(_state(request).cookie_key, request.cookies.get(USER_COOKIE))


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    st = _state(request)
    context.setdefault("user_id", current_user(request))
    context.setdefault("q", "")
    context.setdefault("title", "recsys")
    html = st.env.get_template(template).render(request_path=request.path, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def optional(coro: Awaitable[T]) -> tuple[T | None, GatewayError | None]:
    """Run a call whose failure should not fail the page: (result, None) or (None, error)."""
    try:
        return await coro, None
    except GatewayError as exc:
        log.warning("optional gateway call failed: %s", exc)
        return None, exc


# ---- handlers ----------------------------------------------------------------------------


async def quiz(request: web.Request) -> web.Response:
    st = _state(request)
    raw_seed = request.query.get("seed", "")
    seed = int(raw_seed) if raw_seed.isdigit() and 0 < int(raw_seed) < 2**62 else secrets.randbelow(2**31) + 1
    movies = await st.gw.sample_movies(st.settings.quiz_size, seed=seed)
    return render(request, "quiz.html", title="Rate some movies", movies=movies, seed=seed)


def _recommendation_query(liked: Sequence[int], disliked: Sequence[int]) -> dict[str, str]:
    query: dict[str, str] = {}
    if liked:
        query["liked"] = ",".join(map(str, liked))
    if disliked:
        query["disliked"] = ",".join(map(str, disliked))
    return query


async def recommendations(request: web.Request) -> web.Response:
    st = _state(request)
    q = request.query
    # The quiz form (no JS or JS) sends one field per card: m<id>=like|dislike|skip.
    answers = {k[1:]: v for k, v in q.items() if re.fullmatch(r"m\d+", k)}
    if answers:
        liked = parse_ids([m for m, v in answers.items() if v == "like"], "liked")
        disliked = parse_ids([m for m, v in answers.items() if v == "dislike"], "disliked")
        raise web.HTTPSeeOther(
            request.app.router["recommendations"].url_for().with_query(_recommendation_query(liked, disliked))
        )
    liked = parse_ids(q.getall("liked", []), "liked")
    disliked = parse_ids(q.getall("disliked", []), "disliked")
    if not liked and not disliked:
        raise BadInput("Like or dislike at least one movie in the quiz first.")
    overlap = set(liked) & set(disliked)
    if overlap:
        raise BadInput(f"A movie cannot be both liked and disliked (id {min(overlap)}).")
    genre = q.get("genre", "").strip()
    year_min = parse_year(q.get("year_min"), "from year")
    year_max = parse_year(q.get("year_max"), "to year")
    if year_min and year_max and year_min > year_max:
        raise BadInput("The 'from' year must not be after the 'to' year.")
    flt = movie_filter([genre] if genre else [], year_min, year_max)
    response, profile, known_genres = await asyncio.gather(
        st.gw.recommend_profile(liked, disliked, k=st.settings.recommend_k, filter=flt),
        st.gw.get_movies(liked + disliked),
        st.genres.get(st.gw),
    )
    recs = sorted(response.recommendations, key=lambda r: -r.score)  # stable: keeps the gateway's ties
    by_id = {m.movie_id: m for m in profile.movies}
    # The profile's genres and the chosen one too: a usable menu while the list cannot be read.
    genres = sorted(
        known_genres | {g for m in profile.movies for g in m.genres} | ({genre} if genre else set())
    )
    return render(
        request,
        "recommendations.html",
        title="Your recommendations",
        recs=recs,
        strategy=STRATEGY_LABELS.get(response.strategy, ""),
        liked=[by_id[m] for m in liked if m in by_id],
        disliked=[by_id[m] for m in disliked if m in by_id],
        liked_ids=",".join(map(str, liked)),
        disliked_ids=",".join(map(str, disliked)),
        genres=genres,
        genre=genre,
        year_min=year_min or "",
        year_max=year_max or "",
        filtered=flt is not None,
        model_version=response.model_version,
    )


def _movie_id(request: web.Request) -> int:
    raw = request.match_info["movie_id"]
    if not raw.isdigit() or int(raw) <= 0 or int(raw) >= 2**63:
        raise web.HTTPNotFound()
    return int(raw)


async def movie(request: web.Request) -> web.Response:
    st = _state(request)
    movie_id = _movie_id(request)
    user_id = current_user(request)

    async def for_you() -> tuple[Any, GatewayError | None]:
        if user_id is None:
            return None, None
        return await optional(st.gw.recommend_user(user_id, k=6))

    got, (similar, similar_error), (mine, mine_error) = await asyncio.gather(
        st.gw.get_movies([movie_id]),
        optional(st.gw.similar_movies(movie_id, k=st.settings.similar_k)),
        for_you(),
    )
    if not got.movies:
        raise web.HTTPNotFound(text=f"There is no movie with id {movie_id}.")
    rated = request.query.get("rated", "")
    return render(
        request,
        "movie.html",
        title=display_title(got.movies[0].title),
        movie=got.movies[0],
        similar=list(similar.movies) if similar is not None else [],
        similar_error=gateway_error_view(similar_error) if similar_error else None,
        mine=list(mine.recommendations) if mine is not None else [],
        mine_error=gateway_error_view(mine_error) if mine_error else None,
        ratings=RATINGS,
        rated=rated if re.fullmatch(r"[0-5](\.5)?", rated) else "",
    )


async def rate(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    movie_id = _movie_id(request)
    user_id = current_user(request)
    if user_id is None:
        raise web.HTTPSeeOther(
            request.app.router["signin"].url_for().with_query({"next": f"/movies/{movie_id}"})
        )
    form = await request.post()
    raw = str(form.get("rating", ""))
    try:
        rating = float(raw)
    except ValueError:
        raise BadInput("Pick a rating from 1 to 5 stars.") from None
    if not is_rating(rating):
        raise BadInput("Pick a rating from 1 to 5 stars.")
    await st.gw.record_rating(user_id, movie_id, rating)
    location = (
        request.app.router["movie"].url_for(movie_id=str(movie_id)).with_query({"rated": f"{rating:g}"})
    )
    raise web.HTTPSeeOther(str(location) + "#for-you")


async def search(request: web.Request) -> web.Response:
    st = _state(request)
    q = request.query.get("q", "").strip()
    if not q:
        return render(request, "search.html", title="Search", hits=None)
    if len(q) > 200:
        raise BadInput("Search for at most 200 characters.")
    hits = await st.gw.search_movies(q, limit=st.settings.search_limit)
    return render(request, "search.html", title=f"Search: {q}", q=q, hits=hits)


async def me(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    user_id = current_user(request)
    if user_id is None:
        raise web.HTTPSeeOther(request.app.router["signin"].url_for().with_query({"next": "/me"}))
    response, error = await optional(st.gw.recommend_user(user_id, k=st.settings.recommend_k))
    if error is not None and error.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        raise error
    return render(
        request,
        "me.html",
        title="For you",
        recs=list(response.recommendations) if response is not None else [],
        strategy=STRATEGY_LABELS.get(response.strategy, "") if response is not None else "",
        no_history=error is not None,
    )


def _safe_next(value: str) -> str:
    # Only local paths: never redirect off-site.
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def signin_form(request: web.Request) -> web.Response:
    return render(request, "signin.html", title="Sign in", next=_safe_next(request.query.get("next", "/")))


async def signin(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    form = await request.post()
    raw = str(form.get("user_id", "")).strip()
    nxt = _safe_next(str(form.get("next", "/")))
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        return render(
            request,
            "signin.html",
            status=400,
            title="Sign in",
            next=nxt,
            error="A user id is a whole number greater than 0.",
        )
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(
        USER_COOKIE,
        user_cookie_value(st.cookie_key, int(raw)),
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=st.settings.cookie_secure,
        path="/",
    )
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/")
    response.del_cookie(USER_COOKIE, path="/")
    raise response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    st = _state(request)
    ok = st.ready()
    return web.json_response({"status": "ready" if ok else "not ready"}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_state(request).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# ---- middleware --------------------------------------------------------------------------

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Posters are remote http(s) images; everything else is our own.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: http: data:; script-src 'self'; "
        "style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
    ),
}


def _error_page(request: web.Request, view: ErrorView) -> web.Response:
    return render(request, "error.html", status=view.status, title=view.title, error=view)


async def _respond(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], rid: str
) -> web.StreamResponse:
    """The handler's response, or the error page of what it raised (never an exception)."""
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            response = exc
        elif exc.status == 404:
            text = exc.text if exc.text and not exc.text.startswith("404") else "There is no such page."
            response = _error_page(request, ErrorView(404, "Not found", text))
        elif exc.status == 405:
            response = _error_page(request, ErrorView(405, "Not allowed", "That page does not take this."))
        else:
            response = _error_page(request, ErrorView(exc.status, exc.reason, exc.text or exc.reason))
    except BadInput as exc:
        response = _error_page(request, ErrorView(400, "Please check your input", str(exc)))
    except GatewayError as exc:
        view = gateway_error_view(exc)
        log.log(
            logging.INFO if view.status < 500 else logging.WARNING,
            "gateway call failed",
            extra={"method": exc.method, "grpc_code": exc.code.name, "http_status": view.status},
        )
        response = _error_page(request, view)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = _error_page(
            request,
            ErrorView(
                500, "Something broke", "An unexpected error happened on our side.", f"request id {rid}"
            ),
        )
    response.headers["X-Request-ID"] = rid
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id (from ``X-Request-ID`` or new, sent on to the gateway), metrics, the access log
    and, while tracing is on, a SERVER span per page (a child of the caller's ``traceparent``;
    the gateway calls are its children); probes, scrapes and files get neither log nor span."""
    st = _state(request)
    rid = clean_request_id(request.headers.get("X-Request-ID")) or new_request_id()
    token = set_request_id(rid)
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    quiet = request.path.startswith(UNTRACED)
    status = 500  # cancelled
    try:
        span_cm = (
            nullcontext(None)
            if quiet
            else tracing.server_span(
                f"{request.method} {route}",
                request.headers,
                {"http.request.method": request.method, "http.route": route, "recsys.request_id": rid},
            )
        )
        with span_cm as span:
            response = await _respond(request, handler, rid)
            status = response.status
            if span is not None:
                tracing.http_outcome(span, status)
        return response
    finally:
        elapsed = time.perf_counter() - started
        st.requests.labels(route=route, method=request.method, status=str(status)).inc()
        st.latency.labels(route=route).observe(elapsed)
        if not quiet:
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                status,
                extra={"http_status": status, "duration_ms": round(elapsed * 1000, 1), "route": route},
            )
        reset_request_id(token)


# ---- assembly ----------------------------------------------------------------------------


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("recsys_web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["initials"] = initials
    env.filters["hue"] = hue
    env.filters["display_title"] = display_title
    return env


def create_app(
    settings: RecsysWebSettings,
    *,
    gateway: GatewayClient | None = None,
    ready: Callable[[], bool] | None = None,
) -> web.Application:
    """The aiohttp application (routes, middleware, state); its lifecycle — the gateway channel,
    readiness, drain — is :class:`recsys_web.server.WebApp`'s, which sets ``gateway`` when it
    starts and passes ``ready``."""
    registry = CollectorRegistry()
    secret = settings.cookie_secret
    state = WebState(
        settings=settings,
        env=make_env(),
        cookie_key=secret.get_secret_value().encode() if secret else secrets.token_bytes(32),
        registry=registry,
        requests=Counter(
            "recsys_web_requests", "HTTP requests", ["route", "method", "status"], registry=registry
        ),
        latency=Histogram("recsys_web_request_seconds", "HTTP request latency", ["route"], registry=registry),
        gateway=gateway,
    )
    if ready is not None:
        state.ready = ready
    app = web.Application(middlewares=[middleware], client_max_size=64 * 1024)
    app[STATE] = state

    r = app.router
    r.add_get("/", quiz, name="quiz")
    r.add_get("/recommendations", recommendations, name="recommendations")
    r.add_get("/movies/{movie_id}", movie, name="movie")
    r.add_post("/movies/{movie_id}/rate", rate, name="rate")
    r.add_get("/search", search, name="search")
    r.add_get("/me", me, name="me")
    r.add_get("/signin", signin_form, name="signin")
    r.add_post("/signin", signin, name="signin_post")
    r.add_post("/signout", signout, name="signout")
    r.add_get("/healthz", healthz, name="healthz")
    r.add_get("/readyz", readyz, name="readyz")
    r.add_get("/metrics", metrics, name="metrics")
    r.add_static("/static/", str(files("recsys_web") / "static"), name="static")
    return app


__all__ = [
    "BadInput",
    "ErrorView",
    "create_app",
    "display_title",
    "gateway_error_view",
    "initials",
    "read_user_cookie",
]
