"""``recsys catalog refresh-added`` / ``recsys movies refresh`` (and the ``catalog-refresh``
CronJob): a client of the catalog's RefreshAddedMovies that calls it until no added movie is
left stale, printing what each call re-embedded.

Exit 0: every stale movie was refreshed (or none was stale). Exit 1: a call failed (its status
and message are printed: UNAVAILABLE naming the embedder or the retriever, FAILED_PRECONDITION
when the catalog has no upstream targets or the retriever no version for the model); what the
earlier calls refreshed stays refreshed, and the next run continues.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

import grpc
from google.protobuf import json_format
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc

#: calls at most per run (each refreshes up to ``limit`` movies): bounds a run whose movies keep
#: getting ratings while it works
MAX_CALLS = 1000


async def refresh_added(
    target: str,
    *,
    limit: int = 0,
    call_timeout_s: float = 60.0,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    total = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = catalog_pb2_grpc.CatalogStub(channel)
        for _ in range(MAX_CALLS):
            try:
                resp = await stub.RefreshAddedMovies(
                    catalog_pb2.RefreshAddedMoviesRequest(limit=limit), timeout=call_timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}", file=err)
                print(f"{total} movie(s) refreshed before the failure", file=err)
                return 1
            total += len(resp.movies)
            if as_json:
                print(json.dumps(json_format.MessageToDict(resp)), file=out)
            else:
                for m in resp.movies:
                    if m.inductive:
                        print(
                            f"refreshed movie {m.movie_id}: {m.rating_count} rating(s), "
                            f"{len(m.neighbour_movie_ids)} neighbour(s)",
                            file=out,
                        )
                    else:
                        print(f"movie {m.movie_id}: the model knows it now (trained vector)", file=out)
            if resp.remaining == 0 or not resp.movies:
                break
    if not as_json:
        version = f" (model {resp.model_version}, retriever version {resp.vector_version})"
        print(f"{total} movie(s) refreshed{version}, {resp.remaining} still stale", file=out)
    return 0
