"""The release's embedder switch (issue #18: "embedder reload, hot, without pod restarts"):
``python -m recsys_embedder switch`` finds every pod behind a headless Service name, has each
``Reload`` the artifact's version and checks it serves it; refused before any pod moves when the
version is not published; a pod that cannot switch is named and the command fails."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys_core.server import Server
from recsys_core.settings import ServerSettings
from recsys_core.testing import free_port, test_settings, wait_serving

from .conftest import copy_version

pytestmark = [pytest.mark.slow]

PODS = ("127.0.0.1", "127.0.0.2")  # two pods of one headless Service: the same port, two IPs


def _headless(name: str, port: int) -> list[str]:
    """What the cluster DNS answers for a headless Service: one A record per ready pod."""
    assert name == "embedder-pods"
    return list(PODS)


class Catalog(catalog_pb2_grpc.CatalogServicer):
    async def ListMovies(self, request: catalog_pb2.ListMoviesRequest, context: Any) -> Any:
        return catalog_pb2.ListMoviesResponse()


async def _version(target: str) -> str:
    async with grpc.aio.insecure_channel(target) as ch:
        info = await embedder_pb2_grpc.EmbedderStub(ch).ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=10)
        return str(info.version)


async def test_switch_moves_every_pod_only_after_publish(tmp_path: Path, artifact_root: Path) -> None:
    from recsys_embedder.publish import NotPublished, SwitchFailed, publish, switch
    from recsys_embedder.server import EmbedderApp
    from recsys_embedder.settings import EmbedderSettings
    from recsys_retriever.server import RetrieverApp
    from recsys_retriever.settings import RetrieverSettings

    v2 = copy_version(artifact_root / "v1", artifact_root, "v2", latest=False)
    port = free_port()
    pods = []
    for host in PODS:
        settings = test_settings(
            EmbedderSettings, host=host, port=port, artifact_dir=str(artifact_root), device="cpu"
        )
        app = EmbedderApp(settings)
        await app.start()
        pods.append(app)
    retriever = RetrieverApp(test_settings(RetrieverSettings, data_dir=tmp_path / "retriever"))
    cat = Server(test_settings(ServerSettings), "catalog")
    cat.add_service(catalog_pb2_grpc.add_CatalogServicer_to_server, Catalog(), "recsys.catalog.v1.Catalog")
    cat_port = await cat.start()
    cat.set_serving(True)
    said: list[str] = []
    try:
        r_port = await retriever.start()
        r_target = f"127.0.0.1:{r_port}"
        async with grpc.aio.insecure_channel(r_target) as ch:
            await wait_serving(ch, "", timeout=60)
        targets = [f"{h}:{port}" for h in PODS]
        assert [await _version(t) for t in targets] == ["v1", "v1"]

        # v2's vectors are not in the retriever: no pod moves
        with pytest.raises(NotPublished, match="run publish first"):
            await switch(v2, [f"dns:///embedder-pods:{port}"], retriever=r_target, resolve=_headless)
        assert [await _version(t) for t in targets] == ["v1", "v1"]

        await publish(v2, r_target, f"127.0.0.1:{cat_port}", activate=False, say=said.append)
        switched = await switch(
            v2, [f"dns:///embedder-pods:{port}"], retriever=r_target, resolve=_headless, say=said.append
        )
        assert switched == targets
        assert [await _version(t) for t in targets] == ["v2", "v2"]  # hot: the same processes
        assert all(app.service.version == "v2" for app in pods)

        # rollback: the same step with the old artifact
        await switch(artifact_root / "v1", targets, say=said.append)
        assert [await _version(t) for t in targets] == ["v1", "v1"]

        # a pod that cannot load the version is named; the command fails
        broken = artifact_root / "v3"
        broken.mkdir()
        (broken / "manifest.json").write_text(
            json.dumps({**json.loads((v2 / "manifest.json").read_text()), "version": "v3"})
        )
        with pytest.raises(SwitchFailed, match=r"2 of 2 pods not switched: 127\.0\.0\.1:\d+: "):
            await switch(broken, targets)
        assert [await _version(t) for t in targets] == ["v1", "v1"]  # a failed load keeps the old model
    finally:
        for app in pods:
            await app.stop(0)
        await cat.stop(0)
        await retriever.server.stop(0)


async def test_switch_cli_without_pods_or_with_a_bad_address_fails_clearly(
    artifact_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recsys_embedder.__main__ import main

    rc = await asyncio.to_thread(
        main, ["switch", "--artifact", str(artifact_root / "v1"), "--embedders", "embedder-pods"]
    )
    assert rc == 1
    assert "want host:port" in capsys.readouterr().err
    rc = await asyncio.to_thread(
        main,
        ["switch", "--artifact", str(artifact_root / "v1"), "--embedders", "no-such-host.invalid:50051"],
    )
    assert rc == 1
    assert "cannot resolve no-such-host.invalid" in capsys.readouterr().err
