"""publish --no-activate, then activate (the release's strict order), against a real retriever
(Milvus Lite) in-process and a catalog stand-in; through the CLI the pipeline's Jobs run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.server import Server
from recsys_core.settings import ServerSettings
from recsys_core.testing import test_settings, wait_serving
from recsys_core.validation import vector_version

pytestmark = [pytest.mark.slow]


class Catalog(catalog_pb2_grpc.CatalogServicer):
    async def ListMovies(self, request: catalog_pb2.ListMoviesRequest, context: Any) -> Any:
        return catalog_pb2.ListMoviesResponse()


def _main(argv: list[str]) -> int:
    from recsys_embedder.__main__ import main

    return main(argv)


async def _serving(stub: retriever_pb2_grpc.RetrieverStub, version: str) -> dict[str, tuple[int, bool]]:
    desc = await stub.Describe(retriever_pb2.DescribeRequest(), timeout=10)
    return {
        common_pb2.VectorSpace.Name(c.space): (c.count, c.serving)
        for c in desc.collections
        if c.version == version
    }


@pytest.fixture
async def retriever(tmp_path: Path) -> AsyncIterator[tuple[str, retriever_pb2_grpc.RetrieverStub]]:
    """A real retriever (Milvus Lite under tmp_path), SERVING: its target and a stub."""
    from recsys_retriever.server import RetrieverApp
    from recsys_retriever.settings import RetrieverSettings

    app = RetrieverApp(test_settings(RetrieverSettings, data_dir=tmp_path / "retriever"))
    try:
        target = f"127.0.0.1:{await app.start()}"
        async with grpc.aio.insecure_channel(target) as ch:
            await wait_serving(ch, "", timeout=60)
            yield target, retriever_pb2_grpc.RetrieverStub(ch)
    finally:
        await app.server.stop(0)


async def test_publish_without_activate_then_activate(
    retriever: tuple[str, retriever_pb2_grpc.RetrieverStub], base_artifact: Path
) -> None:
    target, stub = retriever
    version = vector_version(json.loads((base_artifact / "manifest.json").read_text())["version"])
    cat = Server(test_settings(ServerSettings), "catalog")
    cat.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, Catalog(), "recsys.catalog.v1.Catalog")
    cat_port = await cat.start()
    cat.set_serving(True)
    try:
        # activate before publish: refused, nothing serving
        rc = await asyncio.to_thread(
            _main, ["activate", "--artifact", str(base_artifact), "--retriever", target]
        )
        assert rc == 1
        assert await _serving(stub, version) == {}

        rc = await asyncio.to_thread(
            _main,
            [
                "publish",
                "--artifact",
                str(base_artifact),
                "--retriever",
                target,
                "--catalog",
                f"127.0.0.1:{cat_port}",
                "--no-activate",
            ],
        )
        assert rc == 0
        written = await _serving(stub, version)
        assert set(written) == {"VECTOR_SPACE_PINSAGE", "VECTOR_SPACE_TWO_TOWER"}
        assert all(count > 0 and not serving for count, serving in written.values()), written

        rc = await asyncio.to_thread(
            _main, ["activate", "--artifact", str(base_artifact), "--retriever", target]
        )
        assert rc == 0
        after = await _serving(stub, version)
        assert all(serving for _, serving in after.values()), after
        # idempotent
        rc = await asyncio.to_thread(
            _main, ["activate", "--artifact", str(base_artifact), "--retriever", target]
        )
        assert rc == 0
    finally:
        await cat.stop(0)


async def test_activate_refuses_an_incomplete_version(
    retriever: tuple[str, retriever_pb2_grpc.RetrieverStub], base_artifact: Path
) -> None:
    """A version holding fewer vectors than the artifact (an interrupted publish) is not activated."""
    from recsys_embedder.publish import NotPublished, activate, plan

    target, stub = retriever
    p = plan(base_artifact)
    sv = p.spaces[0]
    ids = np.load(sv.ids_file)[:3]
    vecs = np.load(sv.embeddings_file)[:3].astype(np.float32)

    async def chunks() -> Any:
        yield retriever_pb2.UpsertRequest(
            space=sv.space,
            version=p.version,
            dimension=int(vecs.shape[1]),
            items=[
                retriever_pb2.VectorItem(movie_id=int(m), vector=common_pb2.Vector(values=v.tolist()))
                for m, v in zip(ids, vecs, strict=True)
            ],
        )

    await stub.Upsert(chunks(), timeout=30)
    with pytest.raises(NotPublished, match="holds 3 of"):
        await activate(base_artifact, target, say=lambda _: None)
    assert not any(serving for _, serving in (await _serving(stub, p.version)).values())
