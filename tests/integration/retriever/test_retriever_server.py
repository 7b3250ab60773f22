"""The server code path (Milvus by URI) and its faults.

`milvus-lite server` runs Milvus Lite as a separate gRPC server bound to 127.0.0.1: the retriever
reaches it by URI exactly as it reaches a Milvus standalone server, so these tests cover the
server code path, start-up retries, UNAVAILABLE mid-run and recovery without a restart. A real
Milvus server is tested when ``RECSYS_TEST_MILVUS_URI`` names one (mark ``milvus_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2
from recsys_core.testing import free_port, health_status, wait_serving

DIM = 16
SERVING, NOT_SERVING = 1, 2


class LiteServer:
    """`python -m milvus_lite server` on 127.0.0.1:port over data_dir, startable again after a kill."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.1)
        raise TimeoutError("milvus-lite server did not listen in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def lite_server(tmp_path: Path) -> Iterator[LiteServer]:
    server = LiteServer(tmp_path / "milvus-data", free_port())
    try:
        yield server
    finally:
        server.kill()


def query(v: np.ndarray, exclude: Any = ()) -> retriever_pb2.SearchQuery:
    return retriever_pb2.SearchQuery(
        vector=common_pb2.Vector(values=list(map(float, v))), exclude_ids=list(exclude)
    )


async def wait_status(channel: grpc.aio.Channel, want: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await health_status(channel, "recsys.retriever.v1.Retriever") == want:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"health never became {want}")


@pytest.mark.slow
async def test_start_retries_unavailable_mid_run_and_recovery(
    lite_server: LiteServer, retriever_factory: Any, dataset: Any, upsert_stream: Any
) -> None:
    start, stop = retriever_factory
    r = await start(
        wait=False,
        milvus_uri=f"http://127.0.0.1:{lite_server.port}",
        index_type="FLAT",
        milvus_timeout_s=2.0,
    )
    try:
        # Nothing listens yet: the server is up but NOT_SERVING while it retries.
        await asyncio.sleep(0.5)
        assert await health_status(r.channel, "") == NOT_SERVING
        assert await health_status(r.channel, "recsys.retriever.v1.Retriever") == NOT_SERVING
        await asyncio.to_thread(lite_server.start)
        await wait_serving(r.channel, "recsys.retriever.v1.Retriever", timeout=60)

        data = dataset(300, DIM)
        await r.stub.Upsert(upsert_stream(data.requests("v1")), timeout=60)
        await r.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v1"))
        q = data.vecs[10]
        req = retriever_pb2.SearchRequest(queries=[query(q, [11])], k=10)
        want = data.brute_force(q, 10, [11])[0]
        assert [h.movie_id for h in (await r.stub.Search(req)).results[0].hits] == want
        desc = await r.stub.Describe(retriever_pb2.DescribeRequest())
        assert desc.backend == "server" and desc.collections[0].count == 300

        # Milvus goes away: calls fail UNAVAILABLE, health turns NOT_SERVING.
        await asyncio.to_thread(lite_server.kill)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await r.stub.Search(req, timeout=30)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        await wait_status(r.channel, NOT_SERVING)

        # It comes back (same data): SERVING again and the same answer, without restarting the retriever.
        await asyncio.to_thread(lite_server.start)
        await wait_serving(r.channel, "recsys.retriever.v1.Retriever", timeout=60)
        assert [h.movie_id for h in (await r.stub.Search(req, timeout=30)).results[0].hits] == want
    finally:
        await stop(r)


@pytest.mark.slow
async def test_hnsw_on_the_server_path_excludes_and_returns_k(
    lite_server: LiteServer, retriever_factory: Any, dataset: Any, upsert_stream: Any
) -> None:
    await asyncio.to_thread(lite_server.start)
    start, stop = retriever_factory
    r = await start(milvus_uri=f"http://127.0.0.1:{lite_server.port}")  # auto = HNSW on a server
    try:
        data = dataset(2000, DIM, seed=4)
        await r.stub.Upsert(upsert_stream(data.requests("v1")), timeout=120)
        await r.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v1"))
        desc = await r.stub.Describe(retriever_pb2.DescribeRequest())
        assert desc.collections[0].index_type == "HNSW"
        rng = np.random.default_rng(9)
        qs = rng.normal(size=(20, DIM)).astype(np.float32)
        excludes = [
            list(range(1, 2000, 2)) if i % 2 else data.brute_force(q, 150)[0] for i, q in enumerate(qs)
        ]
        resp = await r.stub.Search(
            retriever_pb2.SearchRequest(
                queries=[query(q, ex) for q, ex in zip(qs, excludes, strict=True)], k=10
            ),
            timeout=60,
        )
        recall = []
        for q, ex, res in zip(qs, excludes, resp.results, strict=True):
            got = [h.movie_id for h in res.hits]
            assert len(got) == 10 and not set(got) & set(ex)
            recall.append(len(set(got) & set(data.brute_force(q, 10, ex)[0])) / 10)
        assert float(np.mean(recall)) >= 0.9
    finally:
        await stop(r)


@pytest.mark.milvus_server
async def test_a_real_milvus_server(retriever_factory: Any, dataset: Any, upsert_stream: Any) -> None:
    uri = os.environ.get("RECSYS_TEST_MILVUS_URI")
    if not uri:
        pytest.skip(
            "no Milvus server: set RECSYS_TEST_MILVUS_URI (services/retriever/scripts/milvus_server_tests.sh "
            "starts the `milvus` wheel's server in a private network namespace and runs this test)"
        )
    start, stop = retriever_factory
    prefix = f"rt{int(time.time())}_"
    r = await start(milvus_uri=uri, collection_prefix=prefix, index_type="FLAT", exclude_overfetch=8)
    try:
        data = dataset(1000, DIM)
        await r.stub.Upsert(upsert_stream(data.requests("v1")), timeout=120)
        await r.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v1"))
        qs = np.random.default_rng(2).normal(size=(4, DIM)).astype(np.float32)
        excludes = [[], [1, 2], data.brute_force(qs[2], 300)[0], list(range(1, 990))]
        flt: dict[str, Any] = {"genres_any": ["Drama", "Comedy"], "year_min": 1970}
        resp = await r.stub.Search(
            retriever_pb2.SearchRequest(
                queries=[query(q, ex) for q, ex in zip(qs, excludes, strict=True)],
                k=10,
                filter=common_pb2.MovieFilter(**flt),
            ),
            timeout=60,
        )
        for q, ex, res in zip(qs, excludes, resp.results, strict=True):
            assert [h.movie_id for h in res.hits] == data.brute_force(q, 10, ex, **flt)[0]
        desc = await r.stub.Describe(retriever_pb2.DescribeRequest())
        assert desc.backend == "server" and [(c.version, c.count, c.serving) for c in desc.collections] == [
            ("v1", 1000, True)
        ]
        got = await r.stub.GetVectors(retriever_pb2.GetVectorsRequest(movie_ids=[5, 100_000]))
        assert [i.movie_id for i in got.items] == [5] and list(got.missing_ids) == [100_000]
        assert (await r.stub.Delete(retriever_pb2.DeleteRequest(movie_ids=[5, 6, 100_000]))).deleted == 2
        await r.stub.Upsert(upsert_stream(data.requests("v2")), timeout=120)
        prev = await r.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v2"))
        assert prev.previous_version == "v1"
        await r.stub.DropVersion(retriever_pb2.DropVersionRequest(version="v1"))
        resp = await r.stub.Search(retriever_pb2.SearchRequest(queries=[query(qs[0])], k=3), timeout=60)
        assert resp.version == "v2"
        await r.stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version="v2"))
    finally:
        await stop(r)
