"""Retriever benchmark: Search p50/p99 and QPS through the service vs pymilvus directly, recall@10.

Three processes, so no two share a GIL: a `milvus-lite server` (Milvus, 127.0.0.1 only), the
retriever (`python -m recsys_retriever`, Milvus by URI), and this driver. For each collection size
the driver loads random unit vectors through the retriever's Upsert, then, in the same run, times

- ``direct``: pymilvus ``MilvusClient.search`` of one query per call, N threads (the floor);
- ``direct-b64``: pymilvus with 64 queries per call (what micro-batching buys, per query);
- ``service``: the retriever's Search, one query per RPC, N concurrent calls, batching on;
- ``service-nobatch``: the same with the retriever restarted with batching off;
- ``service-excl``: batching on, every query excluding ``--exclude`` random seen movies;

and recall@10 of the index against exact numpy search (FLAT = exact, HNSW = approximate).

    OMP_NUM_THREADS=1 .venv/bin/python bench/retriever_bench.py                  # 4k, ~1 min
    .venv/bin/python bench/retriever_bench.py --sizes 4000,100000 --dim 128
    .venv/bin/python bench/retriever_bench.py --sizes 1000000 --dim 128 --index HNSW --queries 200

Milvus Lite's search is pure Python + numpy/FAISS: its absolute numbers are not a Milvus server's.
The ratio service/direct is the retriever's own overhead. Prints a table and JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Thriller", "Romance"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def start_milvus(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--max-workers", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def start_retriever(
    uri: str, port: int, index: str, batch_wait_ms: float, inflight: int, prefix: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RECSYS_RETRIEVER_MILVUS_URI": uri,
        "RECSYS_RETRIEVER_COLLECTION_PREFIX": prefix,
        "RECSYS_RETRIEVER_BATCH_MAX_INFLIGHT": str(inflight),
        "RECSYS_RETRIEVER_PORT": str(port),
        "RECSYS_RETRIEVER_INDEX_TYPE": index,
        "RECSYS_RETRIEVER_BATCH_MAX_WAIT_MS": str(batch_wait_ms),
        "RECSYS_RETRIEVER_MILVUS_TIMEOUT_S": "600",
        "RECSYS_RETRIEVER_UPSERT_MAX_ITEMS": "100000",
        "RECSYS_RETRIEVER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "recsys_retriever"], env=env)
    wait_port(port, proc)
    return proc


async def wait_serving(channel: grpc.aio.Channel, timeout: float = 300) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(grpc.aio.AioRpcError):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError("retriever not SERVING")


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


async def load(stub: retriever_pb2_grpc.RetrieverStub, vecs: np.ndarray, version: str) -> float:
    """Upsert through the service, calls of <= 20k items (each well inside the server's
    max connection age), messages of 1000."""
    t0 = time.perf_counter()
    n, dim = vecs.shape
    rng = np.random.default_rng(1)
    years = rng.integers(1950, 2020, size=n)
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)

        async def reqs(start: int = start, stop: int = stop) -> AsyncIterator[retriever_pb2.UpsertRequest]:
            for s in range(start, stop, 1000):
                items = [
                    retriever_pb2.VectorItem(
                        movie_id=i + 1,
                        vector=common_pb2.Vector(values=vecs[i].tolist()),
                        year=int(years[i]),
                        genres=[GENRES[i % len(GENRES)]],
                    )
                    for i in range(s, min(stop, s + 1000))
                ]
                yield retriever_pb2.UpsertRequest(
                    space=common_pb2.VECTOR_SPACE_PINSAGE, version=version, dimension=dim, items=items
                )

        await stub.Upsert(reqs(), timeout=3600)
        if n >= 200_000:
            print(f"#   loaded {stop}/{n} in {time.perf_counter() - t0:.0f}s", flush=True)
    while True:  # a server builds the index after the flush: FAILED_PRECONDITION until it is done
        try:
            await stub.ActivateVersion(retriever_pb2.ActivateVersionRequest(version=version), timeout=600)
            break
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            await asyncio.sleep(1)
    return time.perf_counter() - t0


def summary(name: str, lat_s: list[float], wall_s: float, queries: int) -> dict[str, Any]:
    lat = np.asarray(lat_s) * 1000
    return {
        "mode": name,
        "calls": len(lat_s),
        "queries": queries,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "qps": round(queries / wall_s, 1),
    }


def run_direct(
    uri: str,
    collection: str,
    qs: np.ndarray,
    k: int,
    concurrency: int,
    per_call: int,
    search_params: dict[str, Any],
) -> tuple[list[float], float]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=600)
    batches = [qs[i : i + per_call] for i in range(0, len(qs), per_call)]

    def one(batch: np.ndarray) -> float:
        t = time.perf_counter()
        client.search(
            collection,
            data=batch.tolist(),
            limit=k,
            output_fields=["movie_id"],
            search_params=search_params,
            timeout=600,
        )
        return time.perf_counter() - t

    one(batches[0])  # warm up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = list(pool.map(one, batches))
    wall = time.perf_counter() - t0
    client.close()
    return lat, wall


async def run_service(
    stub: retriever_pb2_grpc.RetrieverStub,
    qs: np.ndarray,
    k: int,
    concurrency: int,
    exclude: Callable[[int], list[int]] | None = None,
) -> tuple[list[float], float, list[list[int]]]:
    lat: list[float] = [0.0] * len(qs)
    hits: list[list[int]] = [[] for _ in qs]
    nxt = 0

    async def worker() -> None:
        nonlocal nxt
        while nxt < len(qs):
            i = nxt
            nxt += 1
            q = retriever_pb2.SearchQuery(
                vector=common_pb2.Vector(values=qs[i].tolist()), exclude_ids=exclude(i) if exclude else []
            )
            t = time.perf_counter()
            resp = await stub.Search(retriever_pb2.SearchRequest(queries=[q], k=k), timeout=600)
            lat[i] = time.perf_counter() - t
            hits[i] = [h.movie_id for h in resp.results[0].hits]

    await stub.Search(
        retriever_pb2.SearchRequest(
            queries=[retriever_pb2.SearchQuery(vector=common_pb2.Vector(values=qs[0].tolist()))], k=k
        )
    )
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, time.perf_counter() - t0, hits


def exact_top(vecs: np.ndarray, qs: np.ndarray, k: int, chunk: int = 50_000) -> np.ndarray:
    best_s = np.full((len(qs), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qs), k), dtype=np.int64)
    for s in range(0, len(vecs), chunk):
        scores = qs @ vecs[s : s + chunk].T
        ids = np.broadcast_to(np.arange(s + 1, s + 1 + scores.shape[1]), scores.shape)
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, ids], axis=1)
        top = np.argsort(-all_s, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    return best_i


async def bench_size(args: argparse.Namespace, n: int, workdir: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(n)
    vecs = unit(rng, n, args.dim)
    qs = unit(rng, args.queries, args.dim)
    port = free_port()
    milvus: subprocess.Popen[bytes] | None = None
    if args.milvus_uri:
        uri = args.milvus_uri
    else:
        milvus_port = free_port()
        milvus = start_milvus(workdir / f"milvus-{n}", milvus_port)
        uri = f"http://127.0.0.1:{milvus_port}"
    prefix = f"bench{int(time.time())}_"
    rows: list[dict[str, Any]] = []

    def retriever_proc(wait_ms: float) -> subprocess.Popen[bytes]:
        return start_retriever(uri, port, args.index, wait_ms, args.inflight, prefix)

    retriever = retriever_proc(args.batch_wait_ms)
    try:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
        )
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        await wait_serving(channel)
        load_s = await load(stub, vecs, "bench")
        desc = await stub.Describe(retriever_pb2.DescribeRequest())
        info = desc.collections[0]
        print(f"# n={n} dim={args.dim} index={info.index_type} loaded in {load_s:.1f}s", flush=True)
        params: dict[str, Any] = {"metric_type": "IP"}
        if info.index_type == "HNSW":
            params["params"] = {"ef": max(128, args.k)}
        c = args.concurrency
        lat, wall = await asyncio.to_thread(run_direct, uri, info.collection, qs, args.k, c, 1, params)
        rows.append(summary("direct", lat, wall, len(qs)))
        lat, wall = await asyncio.to_thread(run_direct, uri, info.collection, qs, args.k, 1, 64, params)
        rows.append(summary("direct-b64", lat, wall, len(qs)))
        lat, wall, hits = await run_service(stub, qs, args.k, c)
        rows.append(summary("service", lat, wall, len(qs)))
        seen = rng.integers(1, n + 1, size=(len(qs), args.exclude))
        lat, wall, _ = await run_service(stub, qs, args.k, c, exclude=lambda i: seen[i].tolist())
        rows.append(summary(f"service-excl{args.exclude}", lat, wall, len(qs)))
        exact = exact_top(vecs, qs, args.k)
        recall = float(
            np.mean([len(set(h) & set(e.tolist())) / args.k for h, e in zip(hits, exact, strict=True)])
        )
        await channel.close()
        retriever.terminate()
        retriever.wait(60)
        retriever = retriever_proc(0.0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        await wait_serving(channel)
        lat, wall, _ = await run_service(stub, qs, args.k, c)
        rows.append(summary("service-nobatch", lat, wall, len(qs)))
        await channel.close()
    finally:
        retriever.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            retriever.wait(60)
        if milvus is not None:
            milvus.kill()
            milvus.wait(60)
    direct = rows[0]
    for r in rows:
        r.update(
            n=n, dim=args.dim, index=info.index_type, k=args.k, concurrency=c, recall_at_k=round(recall, 4)
        )
        r["p50_vs_direct"] = round(r["p50_ms"] / direct["p50_ms"], 2)
        r["qps_vs_direct"] = round(r["qps"] / direct["qps"], 2)
    return rows


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4000", help="comma-separated collection sizes")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=400)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--exclude", type=int, default=200, help="seen movies per query in the service-excl run")
    p.add_argument("--index", default="FLAT", choices=["FLAT", "HNSW", "AUTOINDEX"])
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument("--inflight", type=int, default=2, help="the retriever's BATCH_MAX_INFLIGHT")
    p.add_argument(
        "--milvus-uri",
        default="",
        help="an existing Milvus server (e.g. the `milvus` wheel's, inside `unshare -n`) instead of "
        "starting `milvus-lite server`; collections get a fresh prefix and are left there",
    )
    args = p.parse_args()
    print(f"# {platform.platform()} python {platform.python_version()} cpus={os.cpu_count()}", flush=True)
    all_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="retriever-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            all_rows += await bench_size(args, n, Path(tmp))
    cols = ["n", "index", "mode", "p50_ms", "p99_ms", "qps", "p50_vs_direct", "qps_vs_direct", "recall_at_k"]
    print(" | ".join(cols))
    for r in all_rows:
        print(" | ".join(str(r[c]) for c in cols))
    for r in all_rows:
        print(json.dumps(r))


if __name__ == "__main__":
    asyncio.run(main())
