"""Catalog benchmark: bulk-load time, then GetMovies(100 ids) and SearchMovies latency/throughput
through the real gRPC server (a separate process), on a synthetic catalog. Prints numbers.

    OMP_NUM_THREADS=1 .venv/bin/python bench/catalog_bench.py                 # small, ~1-2 min
    .venv/bin/python bench/catalog_bench.py --movies 10000 --ratings 1000000  # issue: 1M ratings
    .venv/bin/python bench/catalog_bench.py --movies 1000000 --ratings 1000000 --users 20000

PostgreSQL: ``--dsn`` or $RECSYS_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres);
a throw-away database is created and dropped. ``--embedded`` uses the embedded server instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np
from recsys.catalog.v1 import catalog_pb2 as pb
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys_catalog.embedded import EmbeddedPostgres
from recsys_catalog.loader import load_into
from recsys_catalog.migrate import migrate
from recsys_catalog.servicer import SERVICE_NAME
from recsys_catalog.store import PgStore, PoolConfig
from recsys_catalog.testing import admin_dsn_or_reason, create_temp_database, drop_temp_database
from recsys_core.testing import wait_serving
from recsys_data import load_dataset, synthetic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def typo(title: str, rng: random.Random) -> str:
    """Lower-case, drop one letter of the longest word (a small typo)."""
    words = title.lower().replace(",", "").split()
    i = max(range(len(words)), key=lambda k: len(words[k]))
    w = words[i]
    if len(w) > 3:
        j = rng.randrange(1, len(w) - 1)
        words[i] = w[:j] + w[j + 1 :]
    return " ".join(words)


async def run_load(
    name: str,
    make: Callable[[int], Awaitable[object]],
    requests: int,
    concurrency: int,
) -> None:
    latencies: list[float] = []
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < requests:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            await make(i)
            latencies.append(time.perf_counter() - t0)

    for i in range(min(50, requests)):  # warm-up: connections, plans, caches
        await make(i)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    print(
        f"{name:<28} n={len(ms):>6}  c={concurrency:<3} p50={np.percentile(ms, 50):7.2f} ms  "
        f"p99={np.percentile(ms, 99):7.2f} ms  max={ms.max():7.2f} ms  throughput={len(ms) / elapsed:8.1f} req/s"
    )


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movies", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--ratings", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=2_000, help="per workload")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dataset", default=None, help="a real data set (name, zip, folder) instead of synthetic"
    )
    ap.add_argument("--dsn", default=None, help="admin DSN of a PostgreSQL server")
    ap.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL 18")
    ap.add_argument("--pool-max", type=int, default=8)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    t0 = time.perf_counter()
    if args.dataset:
        ds = load_dataset(args.dataset)
    else:
        data_dir = synthetic.generate(
            tmp / "synthetic",
            fmt="latest",
            n_users=args.users,
            n_movies=args.movies,
            n_ratings=args.ratings,
            seed=args.seed,
        )
        ds = load_dataset(data_dir)
    print(
        f"catalog bench: {ds.name}: {len(ds.movies)} movies, {len(ds.users)} users, "
        f"{len(ds.interactions)} ratings; python {platform.python_version()}, {os.cpu_count()} cpus"
    )
    print(f"generate + parse data set       {time.perf_counter() - t0:7.2f} s")

    embedded: EmbeddedPostgres | None = None
    admin: str | None = None
    db_name = ""
    if args.embedded:
        embedded = EmbeddedPostgres(tmp / "pg")
        dsn = await embedded.start()
        print("PostgreSQL: embedded (Unix socket)")
    else:
        if args.dsn:
            admin = args.dsn
        else:
            admin, reason = await admin_dsn_or_reason()
            if admin is None:
                print(f"skip: {reason}", file=sys.stderr)
                return 2
        db_name, dsn = await create_temp_database(admin, "recsys_bench")
        print(f"PostgreSQL: {admin.rsplit('@', 1)[-1]} (database {db_name})")

    server: subprocess.Popen[bytes] | None = None
    try:
        store = PgStore(PoolConfig(dsn, pool_min=1, pool_max=2))
        await store.open()
        await migrate(store)
        t0 = time.perf_counter()
        report = await load_into(store, ds)
        load_s = time.perf_counter() - t0
        print(
            f"bulk load (empty catalog)       {load_s:7.2f} s  "
            f"({report.ratings / load_s:,.0f} ratings/s, {report.movies} movies, {report.ratings} ratings)"
        )
        t0 = time.perf_counter()
        await load_into(store, ds)
        print(f"re-load, same data (merge path) {time.perf_counter() - t0:7.2f} s")
        await store.close()

        port = free_port()
        env = {
            **os.environ,
            "RECSYS_CATALOG_DSN": dsn,
            "RECSYS_CATALOG_PORT": str(port),
            "RECSYS_CATALOG_HOST": "127.0.0.1",
            "RECSYS_CATALOG_LOG_LEVEL": "WARNING",
            "RECSYS_CATALOG_POOL_MAX": str(args.pool_max),
            "OMP_NUM_THREADS": "1",
        }
        server = subprocess.Popen([sys.executable, "-m", "recsys_catalog"], env=env)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_serving(channel, SERVICE_NAME, timeout=60)
            stub = catalog_pb2_grpc.CatalogStub(channel)
            rng = random.Random(args.seed)
            ids = [m.movie_id for m in ds.movies]
            batches = [rng.sample(ids, 100) for _ in range(512)]
            queries = [typo(rng.choice(ds.movies).title, rng) for _ in range(512)]

            async def get_movies(i: int) -> object:
                return await stub.GetMovies(pb.GetMoviesRequest(movie_ids=batches[i % 512]), timeout=30)

            async def search(i: int) -> object:
                return await stub.SearchMovies(
                    pb.SearchMoviesRequest(query=queries[i % 512], limit=10), timeout=30
                )

            hits = await stub.SearchMovies(pb.SearchMoviesRequest(query=queries[0], limit=3), timeout=30)
            print(f"example search {queries[0]!r} -> {[h.movie.title for h in hits.hits]}")
            for c in args.concurrency:
                await run_load("GetMovies(100 ids)", get_movies, args.requests, c)
            for c in args.concurrency:
                await run_load("SearchMovies(limit 10)", search, max(args.requests // 4, 100), c)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if embedded is not None:
            await embedded.stop()
        if admin is not None and db_name:
            await drop_temp_database(admin, db_name)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
