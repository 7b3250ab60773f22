"""gRPC servicer: proto <-> domain conversion only.

Methods raise the kit's domain errors (from the service or the store); the kit's interceptor is
the one place that turns them into status codes (also for the client-streaming Upsert).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc

from recsys_retriever.service import Item, MovieFilter, Query, RetrieverService, UpsertChunk

SERVICE_NAME = retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name

_SPACE_FROM_PB = {
    common_pb2.VECTOR_SPACE_PINSAGE: "pinsage",
    common_pb2.VECTOR_SPACE_TWO_TOWER: "two_tower",
}
_SPACE_TO_PB = {v: k for k, v in _SPACE_FROM_PB.items()}


def space_from_pb(value: int) -> str | None:
    """None for UNSPECIFIED; an unknown number becomes a name the service rejects (field "space")."""
    if value == common_pb2.VECTOR_SPACE_UNSPECIFIED:
        return None
    return _SPACE_FROM_PB.get(value, f"vector_space_{value}")  # type: ignore[call-overload]


def space_to_pb(space: str) -> common_pb2.VectorSpace:
    return _SPACE_TO_PB[space]


def filter_from_pb(f: common_pb2.MovieFilter) -> MovieFilter:
    return MovieFilter(
        genres_any=tuple(f.genres_any),
        genres_all=tuple(f.genres_all),
        year_min=f.year_min,
        year_max=f.year_max,
    )


def item_from_pb(it: retriever_pb2.VectorItem) -> Item:
    return Item(
        movie_id=it.movie_id,
        vector=np.asarray(it.vector.values, dtype=np.float32),
        year=it.year,
        genres=tuple(it.genres),
    )


def item_to_pb(it: Item) -> retriever_pb2.VectorItem:
    return retriever_pb2.VectorItem(
        movie_id=it.movie_id,
        vector=common_pb2.Vector(values=it.vector.tolist()),
        year=it.year,
        genres=list(it.genres),
    )


class RetrieverServicer(retriever_pb2_grpc.RetrieverServicer):
    def __init__(self, service: RetrieverService) -> None:
        self.service = service

    async def Search(
        self, request: retriever_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.SearchResponse:
        queries = [
            Query(
                vector=np.asarray(q.vector.values, dtype=np.float32),
                exclude_ids=np.asarray(q.exclude_ids, dtype=np.int64),
            )
            for q in request.queries
        ]
        out = await self.service.search(
            space_from_pb(request.space),
            queries,
            request.k,
            filter_from_pb(request.filter),
            request.version,
        )
        return retriever_pb2.SearchResponse(
            results=[
                retriever_pb2.SearchResult(
                    hits=[common_pb2.ScoredMovie(movie_id=h.movie_id, score=h.score) for h in hits]
                )
                for hits in out.results
            ],
            version=out.version,
        )

    async def Upsert(
        self,
        request_iterator: AsyncIterator[retriever_pb2.UpsertRequest],
        context: grpc.aio.ServicerContext,
    ) -> retriever_pb2.UpsertResponse:
        async def chunks() -> AsyncIterator[UpsertChunk]:
            async for req in request_iterator:
                yield UpsertChunk(
                    space=space_from_pb(req.space),
                    version=req.version,
                    dimension=req.dimension,
                    items=[item_from_pb(it) for it in req.items],
                )

        upserted, total = await self.service.upsert(chunks())
        return retriever_pb2.UpsertResponse(upserted=upserted, total=total)

    async def Delete(
        self, request: retriever_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.DeleteResponse:
        deleted = await self.service.delete(
            space_from_pb(request.space), request.version, list(request.movie_ids)
        )
        return retriever_pb2.DeleteResponse(deleted=deleted)

    async def GetVectors(
        self, request: retriever_pb2.GetVectorsRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.GetVectorsResponse:
        items, missing = await self.service.get_vectors(
            space_from_pb(request.space), request.version, list(request.movie_ids)
        )
        return retriever_pb2.GetVectorsResponse(items=[item_to_pb(it) for it in items], missing_ids=missing)

    async def ActivateVersion(
        self, request: retriever_pb2.ActivateVersionRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.ActivateVersionResponse:
        previous = await self.service.activate(space_from_pb(request.space), request.version)
        return retriever_pb2.ActivateVersionResponse(previous_version=previous)

    async def DropVersion(
        self, request: retriever_pb2.DropVersionRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.DropVersionResponse:
        await self.service.drop(space_from_pb(request.space), request.version)
        return retriever_pb2.DropVersionResponse()

    async def Describe(
        self, request: retriever_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.DescribeResponse:
        infos, backend = await self.service.describe()
        return retriever_pb2.DescribeResponse(
            collections=[
                retriever_pb2.CollectionInfo(
                    space=space_to_pb(i.space),
                    version=i.version,
                    collection=i.collection,
                    dimension=i.dimension,
                    count=i.count,
                    metric=i.metric,
                    index_type=i.index_type,
                    serving=i.serving,
                )
                for i in infos
            ],
            backend=backend,
        )
