"""`recsys movies add FILE`, `recsys movies retry-pending` and `recsys movies refresh`: the
catalog's AddMovies path (refresh: RefreshAddedMovies, re-embedding added movies that got
ratings since; see recsys_catalog.refresh).

FILE is CSV (a header row; ``genres`` and ``similar_movie_ids`` separated by ``|``, as
MovieLens writes genres) or JSON (a list of objects, or ``{"movies": [...]}``; lists or
``|``-separated strings). Columns/keys: ``movie_id`` (required: AddMovies is idempotent per
id, so running the same file twice updates rather than duplicates), ``title``, ``year``
(empty/0 = unknown), ``genres``, and optional ``similar_movie_ids`` (listed movies like it).
The file is sent in calls of at most ``--batch`` movies (AddMovies takes 100); the first
failed call stops the command with its status, naming the movies it left pending.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2

DEFAULT_CATALOG = "127.0.0.1:50052"
MAX_BATCH = 100


class FileError(ValueError):
    """The movies file cannot be read: says which row and field."""


def _list(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    raise FileError(f"{where}: expected a list or a '|'-separated string, got {value!r}")


def _int(value: Any, where: str, *, required: bool = False) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FileError(f"{where}: required")
        return 0
    try:
        return int(str(value).strip())
    except ValueError:
        raise FileError(f"{where}: expected an integer, got {value!r}") from None


def parse_movies(path: Path) -> list[catalog_pb2.NewMovie]:
    """The movies of a CSV or JSON file (by suffix; otherwise by its first character)."""
    text = path.read_text(encoding="utf-8-sig")
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() != ".csv" and text.lstrip()[:1] in ("[", "{")
    )
    rows: list[dict[str, Any]]
    if as_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileError(f"{path}: not valid JSON: {exc}") from None
        found: Any = data.get("movies") if isinstance(data, dict) else data
        if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
            raise FileError(f"{path}: expected a list of movie objects (or {{'movies': [...]}})")
        rows = found
    else:
        rows = list(csv.DictReader(text.splitlines()))
    out: list[catalog_pb2.NewMovie] = []
    for n, row in enumerate(rows, start=2 if not as_json else 0):
        where = f"{path.name} {'row' if not as_json else 'item'} {n}"
        unknown = set(row) - {"movie_id", "title", "year", "genres", "similar_movie_ids"}
        if unknown:
            raise FileError(f"{where}: unknown field(s) {sorted(unknown)}")
        similar = [_int(v, f"{where} similar_movie_ids") for v in _list(row.get("similar_movie_ids"), where)]
        out.append(
            catalog_pb2.NewMovie(
                movie=common_pb2.Movie(
                    movie_id=_int(row.get("movie_id"), f"{where} movie_id", required=True),
                    title=str(row.get("title") or ""),
                    year=_int(row.get("year"), f"{where} year"),
                    genres=_list(row.get("genres"), f"{where} genres"),
                ),
                similar_movie_ids=similar,
            )
        )
    if not out:
        raise FileError(f"{path}: no movies")
    return out


def _print_added(resp: catalog_pb2.AddMoviesResponse) -> None:
    for m in resp.movies:
        how = "inductive vector" if m.inductive else "trained vector"
        line = f"{'added' if m.inserted else 'updated'} movie {m.movie_id} ({how})"
        if m.unknown_similar_ids:
            line += f"; similar ids unknown to the model, ignored: {list(m.unknown_similar_ids)}"
        print(line)


def _summary(resp: catalog_pb2.AddMoviesResponse) -> None:
    if resp.model_version:
        print(f"model {resp.model_version}, retriever version {resp.vector_version}, {resp.pending} pending")
    else:
        print(f"{resp.pending} pending")


async def add(
    target: str, movies: Sequence[catalog_pb2.NewMovie], *, batch: int, call_timeout_s: float, as_json: bool
) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = catalog_pb2_grpc.CatalogStub(channel)
        done = 0
        for start in range(0, len(movies), batch):
            chunk = list(movies[start : start + batch])
            try:
                resp = await stub.AddMovies(
                    catalog_pb2.AddMoviesRequest(movies=chunk), timeout=call_timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
                ids = [m.movie.movie_id for m in chunk]
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    print(f"movies {ids} are pending (not listed); {done} added before", file=sys.stderr)
                else:
                    print(
                        f"nothing of this batch (movies {ids}) was stored; {done} added before",
                        file=sys.stderr,
                    )
                return 1
            done += len(resp.movies)
            if as_json:
                print(json.dumps(json_format.MessageToDict(resp)))
            else:
                _print_added(resp)
                _summary(resp)
    return 0


async def retry_pending(target: str, *, limit: int, call_timeout_s: float, as_json: bool) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            resp = await catalog_pb2_grpc.CatalogStub(channel).RetryPendingMovies(
                catalog_pb2.RetryPendingMoviesRequest(limit=limit), timeout=call_timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(json_format.MessageToDict(resp)))
    else:
        _print_added(resp)
        if not resp.movies:
            print("no movie was pending" if resp.pending == 0 else "nothing completed")
        _summary(resp)
    return 0


def run(args: argparse.Namespace, words: Sequence[str]) -> int:
    """``recsys movies add FILE`` / ``retry-pending`` / ``refresh`` (``words`` after "movies")."""
    verb, rest = words[0], list(words[1:])
    timeout = args.timeout if args.timeout != 10.0 else 60.0  # embedding many movies takes a while
    if verb == "add":
        if len(rest) != 1:
            print("usage: recsys movies add FILE (CSV or JSON)", file=sys.stderr)
            return 2
        if not 1 <= args.batch <= MAX_BATCH:
            print(f"--batch must be 1..{MAX_BATCH}", file=sys.stderr)
            return 2
        try:
            movies = parse_movies(Path(rest[0]))
        except (OSError, FileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(
            add(args.catalog, movies, batch=args.batch, call_timeout_s=timeout, as_json=args.json)
        )
    if verb == "refresh":
        if rest:
            print("usage: recsys movies refresh [--limit N]", file=sys.stderr)
            return 2
        from recsys_catalog.refresh import refresh_added

        return asyncio.run(
            refresh_added(args.catalog, limit=args.limit, call_timeout_s=timeout, as_json=args.json)
        )
    if rest:
        print("usage: recsys movies retry-pending [--limit N]", file=sys.stderr)
        return 2
    return asyncio.run(
        retry_pending(args.catalog, limit=args.limit, call_timeout_s=timeout, as_json=args.json)
    )
