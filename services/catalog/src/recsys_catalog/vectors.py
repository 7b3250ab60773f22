"""AddMovies' clients of the embedder and the retriever (the only catalog module that calls
other services): ``GrpcVectorPipeline`` implements service.py's ``VectorPipeline``.

One long-lived channel per upstream, opened with the server and closed at stop; every call has
a deadline (the caller's remaining time, at most ``upstream_timeout_s``); reads are retried on
UNAVAILABLE by the channel's service config. Failed calls become domain errors naming the
upstream: UNAVAILABLE, CANCELLED and DEADLINE_EXCEEDED -> DependencyUnavailable (retry later),
FAILED_PRECONDITION -> FailedPrecondition, anything else -> UpstreamError with its code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import grpc
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.client import ClientTLS, open_channel, remaining_timeout
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, UpstreamError
from recsys_core.validation import vector_version

from recsys_catalog.model import PendingMovie
from recsys_catalog.service import MovieVector

EMBEDDER = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
RETRIEVER = retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name
#: EmbedNewMovie calls in flight at once for one AddMovies
NEW_MOVIE_CONCURRENCY = 16
PINSAGE = common_pb2.VECTOR_SPACE_PINSAGE

T = TypeVar("T")


async def _call(name: str, target: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        code, detail = exc.code(), exc.details() or exc.code().name
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            raise DependencyUnavailable(name, f"{target}: {detail}") from None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DependencyUnavailable(name, f"{target}: no answer in time ({detail})") from None
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            raise FailedPrecondition(f"{name}: {detail}") from None
        raise UpstreamError.from_rpc_error(name, exc) from None


class GrpcVectorPipeline:
    def __init__(
        self, embedder_target: str, retriever_target: str, *, timeout_s: float, tls: ClientTLS | None = None
    ) -> None:
        self._targets = {"embedder": embedder_target, "retriever": retriever_target}
        self._timeout = timeout_s
        self._emb_channel = open_channel(
            embedder_target,
            service=EMBEDDER,
            idempotent_methods=("EmbedItems", "EmbedNewMovie", "ModelInfo"),
            tls=tls,
        )
        self._ret_channel = open_channel(
            retriever_target, service=RETRIEVER, idempotent_methods=("Describe",), tls=tls
        )
        self._embedder = embedder_pb2_grpc.EmbedderStub(self._emb_channel)
        self._retriever = retriever_pb2_grpc.RetrieverStub(self._ret_channel)

    def _timeout_s(self) -> float:
        t = remaining_timeout(self._timeout)
        if t <= 0:
            raise DependencyUnavailable("embedder", "no time left in the call's deadline")
        return t

    async def model_version(self) -> str:
        """The embedder's ModelInfo version."""
        info = await _call(
            "embedder",
            self._targets["embedder"],
            self._embedder.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=self._timeout_s()),
        )
        return info.version

    async def embed(self, movies: Sequence[PendingMovie]) -> tuple[str, list[MovieVector]]:
        """Trained vectors for the movies the model knows (one EmbedItems), EmbedNewMovie for
        the others; every answer from the same model version, else UNAVAILABLE (a reload
        happened mid-call: retry)."""
        target = self._targets["embedder"]
        ids = [p.movie.movie_id for p in movies]
        items = await _call(
            "embedder",
            target,
            self._embedder.EmbedItems(
                embedder_pb2.EmbedItemsRequest(space=PINSAGE, movie_ids=ids), timeout=self._timeout_s()
            ),
        )
        trained = {int(i): tuple(v.values) for i, v in zip(items.found_ids, items.vectors, strict=True)}
        versions = {items.model_version}
        sem = asyncio.Semaphore(NEW_MOVIE_CONCURRENCY)

        async def new(p: PendingMovie) -> embedder_pb2.EmbedNewMovieResponse:
            m = p.movie
            req = embedder_pb2.EmbedNewMovieRequest(
                features=embedder_pb2.MovieFeatures(title=m.title, year=m.year or 0, genres=list(m.genres)),
                neighbour_movie_ids=list(p.similar_ids),
            )
            async with sem:
                return await _call(
                    "embedder", target, self._embedder.EmbedNewMovie(req, timeout=self._timeout_s())
                )

        fresh = [p for p in movies if p.movie.movie_id not in trained]
        answers = await asyncio.gather(*(new(p) for p in fresh))
        by_id = {p.movie.movie_id: a for p, a in zip(fresh, answers, strict=True)}
        versions.update(a.model_version for a in answers)
        if len(versions) != 1:
            raise DependencyUnavailable(
                "embedder", f"the model changed during the call ({sorted(versions)}): repeat it"
            )
        out: list[MovieVector] = []
        for p in movies:
            mid = p.movie.movie_id
            if mid in trained:
                out.append(MovieVector(mid, trained[mid], inductive=False))
            else:
                a = by_id[mid]
                out.append(MovieVector(mid, tuple(a.vector.values), True, tuple(a.unknown_movie_ids)))
        return versions.pop(), out

    async def upsert(
        self, model_version: str, movies: Sequence[PendingMovie], vectors: Sequence[MovieVector]
    ) -> str:
        """Into the retriever's PinSage version of ``model_version`` (what the gateway searches
        with that model's query vectors), which must exist with the vectors' dimension."""
        target = self._targets["retriever"]
        version = vector_version(model_version)
        described = await _call(
            "retriever",
            target,
            self._retriever.Describe(retriever_pb2.DescribeRequest(), timeout=self._timeout_s()),
        )
        coll = next((c for c in described.collections if c.space == PINSAGE and c.version == version), None)
        if coll is None:
            raise FailedPrecondition(
                f"retriever: no PinSage version {version} for the embedder's model {model_version}: "
                "publish the model's vectors first (`recsys stack load`, or the publish Job)"
            )
        dims = {len(v.values) for v in vectors}
        if dims != {coll.dimension}:
            raise FailedPrecondition(
                f"retriever: version {version} has dimension {coll.dimension}, the embedder's vectors "
                f"{sorted(dims)}"
            )
        by_id = {p.movie.movie_id: p.movie for p in movies}

        async def chunks() -> AsyncIterator[retriever_pb2.UpsertRequest]:
            yield retriever_pb2.UpsertRequest(
                space=PINSAGE,
                version=version,
                items=[
                    retriever_pb2.VectorItem(
                        movie_id=v.movie_id,
                        vector=common_pb2.Vector(values=v.values),
                        year=by_id[v.movie_id].year or 0,
                        genres=list(by_id[v.movie_id].genres),
                    )
                    for v in vectors
                ],
            )

        await _call("retriever", target, self._retriever.Upsert(chunks(), timeout=self._timeout_s()))
        return version

    async def close(self) -> None:
        await self._emb_channel.close()
        await self._ret_channel.close()
