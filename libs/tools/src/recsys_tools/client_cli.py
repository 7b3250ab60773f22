"""CLI client of the gateway: `recsys recommend|similar|search|rate|movies|quiz|genres`.

Readable tables by default, `--json` for scripts, and one clear line (with the
gRPC status name) on every error status; exit code 1 on an error status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc

from recsys_tools import movies_cli

DEFAULT_TARGET = "127.0.0.1:50051"
GENDERS: dict[str, int] = {"f": common_pb2.GENDER_FEMALE, "m": common_pb2.GENDER_MALE}


def _ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated movie ids, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=DEFAULT_TARGET, help=f"gateway address (default {DEFAULT_TARGET})")
    p.add_argument("--api-key", default=None, help="API key sent as x-api-key metadata")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    p.add_argument("--json", action="store_true", help="print the response as JSON")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genre", action="append", default=[], help="keep movies with any of these genres")
    p.add_argument("--year-min", type=int, default=0)
    p.add_argument("--year-max", type=int, default=0)


def _filter(args: argparse.Namespace) -> common_pb2.MovieFilter:
    return common_pb2.MovieFilter(genres_any=args.genre, year_min=args.year_min, year_max=args.year_max)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="recommend movies (by user, likes/dislikes, or demographics)")
    _common(p)
    _filters(p)
    p.add_argument("--user", type=int, default=0, help="known user id")
    p.add_argument("--like", type=_ids, default=[], help="liked movie ids, comma-separated")
    p.add_argument("--dislike", type=_ids, default=[], help="disliked movie ids, comma-separated")
    p.add_argument("--gender", choices=["F", "M", "f", "m"], default=None)
    p.add_argument("--age", type=int, default=0)
    p.add_argument("--occupation", default="", help="MovieLens 1M occupation code (0-20) or name")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--include-seen", action="store_true", help="do not exclude already seen movies")
    p.set_defaults(func=lambda a: _run(a, _recommend))

    p = sub.add_parser("similar", help="movies similar to a movie")
    _common(p)
    _filters(p)
    p.add_argument("movie_id", type=int)
    p.add_argument("-k", type=int, default=10)
    p.set_defaults(func=lambda a: _run(a, _similar))

    p = sub.add_parser("search", help="search movies by title")
    _common(p)
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=lambda a: _run(a, _search))

    p = sub.add_parser(
        "movies",
        help="show movies by id (recsys movies 1,2); add movies (recsys movies add FILE); "
        "complete pending ones (recsys movies retry-pending); re-embed added movies that got ratings "
        "(recsys movies refresh)",
        usage="recsys movies IDS | movies add FILE | movies retry-pending | movies refresh [options]",
    )
    _common(p)
    p.add_argument("words", nargs="+", metavar="IDS | add FILE | retry-pending | refresh")
    p.add_argument(
        "--catalog",
        default=movies_cli.DEFAULT_CATALOG,
        help=f"add / retry-pending / refresh: the catalog's address (default {movies_cli.DEFAULT_CATALOG})",
    )
    p.add_argument("--batch", type=int, default=movies_cli.MAX_BATCH, help="add: movies per call (1..100)")
    p.add_argument(
        "--limit", type=int, default=0, help="retry-pending / refresh: at most this many per call (0 = 100)"
    )
    p.set_defaults(func=_movies_command)

    p = sub.add_parser("quiz", help="sample movies to rate (the 16-movie quiz)")
    _common(p)
    p.add_argument("-n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=lambda a: _run(a, _quiz))

    p = sub.add_parser("genres", help="the genre names filters accept (--genre values)")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, _genres))

    p = sub.add_parser("rate", help="record a rating")
    _common(p)
    p.add_argument("--user", type=int, required=True)
    p.add_argument("--movie", type=int, required=True)
    p.add_argument("--rating", type=float, required=True)
    p.set_defaults(func=lambda a: _run(a, _rate))


def _movies_command(args: argparse.Namespace) -> int:
    if args.words[0] in ("add", "retry-pending", "refresh"):
        return movies_cli.run(args, args.words)
    try:
        args.ids = [i for w in args.words for i in _ids(w)]
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc} (or: recsys movies add FILE | recsys movies retry-pending)", file=sys.stderr)
        return 2
    return _run(args, _movies)


Call = Callable[[gateway_pb2_grpc.GatewayStub, argparse.Namespace, dict[str, Any]], Awaitable[Any]]


def _run(args: argparse.Namespace, fn: Call) -> int:
    async def go() -> int:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            kw: dict[str, Any] = {"timeout": args.timeout}
            if args.api_key:
                kw["metadata"] = (("x-api-key", args.api_key),)
            try:
                resp = await fn(stub, args, kw)
            except grpc.aio.AioRpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(json_format.MessageToDict(resp), indent=2))
            else:
                _print(resp)
            return 0

    return asyncio.run(go())


async def _recommend(stub, args, kw):
    req = gateway_pb2.RecommendRequest(
        user_id=args.user,
        liked=[common_pb2.RatedMovie(movie_id=m) for m in args.like],
        disliked_movie_ids=args.dislike,
        k=args.k,
        filter=_filter(args),
    )
    if args.gender or args.age or args.occupation:
        req.demographics.CopyFrom(
            common_pb2.Demographics(
                gender=GENDERS.get((args.gender or "").lower(), 0),  # type: ignore[arg-type]
                age=args.age,
                occupation=args.occupation,
            )
        )
    if args.include_seen:
        req.exclude_seen = False
    return await stub.Recommend(req, **kw)


async def _similar(stub, args, kw):
    return await stub.SimilarMovies(
        gateway_pb2.SimilarMoviesRequest(movie_id=args.movie_id, k=args.k, filter=_filter(args)), **kw
    )


async def _search(stub, args, kw):
    return await stub.SearchMovies(gateway_pb2.SearchMoviesRequest(query=args.query, limit=args.limit), **kw)


async def _movies(stub, args, kw):
    return await stub.GetMovies(gateway_pb2.GetMoviesRequest(movie_ids=args.ids), **kw)


async def _quiz(stub, args, kw):
    return await stub.SampleMovies(gateway_pb2.SampleMoviesRequest(n=args.n, seed=args.seed), **kw)


async def _genres(stub, args, kw):
    return await stub.ListGenres(gateway_pb2.ListGenresRequest(), **kw)


async def _rate(stub, args, kw):
    rating = common_pb2.Rating(user_id=args.user, movie_id=args.movie, rating=args.rating)
    return await stub.RecordFeedback(gateway_pb2.RecordFeedbackRequest(ratings=[rating]), **kw)


def _movie_row(m: common_pb2.Movie) -> list[str]:
    return [str(m.movie_id), m.title[:48], str(m.year or ""), "|".join(m.genres)[:40]]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _print(resp: Any) -> None:
    if isinstance(resp, gateway_pb2.RecommendResponse | gateway_pb2.SimilarMoviesResponse):
        recs = resp.recommendations if isinstance(resp, gateway_pb2.RecommendResponse) else resp.movies
        rows = [[*_movie_row(r.movie), f"{r.score:.3f}", r.because_title[:32]] for r in recs]
        print(_table(["id", "title", "year", "genres", "score", "because you liked"], rows))
        if isinstance(resp, gateway_pb2.RecommendResponse):
            print(
                f"\nstrategy: {gateway_pb2.Strategy.Name(resp.strategy)}  model: {resp.model_version or '-'}"
            )
            if resp.unknown_movie_ids:
                print(f"ignored unknown movie ids: {list(resp.unknown_movie_ids)}")
    elif isinstance(resp, gateway_pb2.SearchMoviesResponse):
        print(
            _table(
                ["id", "title", "year", "genres", "match"],
                [[*_movie_row(h.movie), f"{h.similarity:.2f}"] for h in resp.hits],
            )
        )
    elif isinstance(resp, gateway_pb2.GetMoviesResponse | gateway_pb2.SampleMoviesResponse):
        print(_table(["id", "title", "year", "genres"], [_movie_row(m) for m in resp.movies]))
        missing = getattr(resp, "missing_ids", [])
        if missing:
            print(f"\nunknown ids: {list(missing)}")
    elif isinstance(resp, gateway_pb2.ListGenresResponse):
        print("\n".join(resp.genres))
    elif isinstance(resp, gateway_pb2.RecordFeedbackResponse):
        for r in resp.stored:
            print(f"stored: user {r.user_id} rated movie {r.movie_id}: {r.rating:g}")
    else:
        print(resp)
