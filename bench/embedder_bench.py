"""EmbedQuery throughput and latency: in-process torch (CPU, or CUDA when present) vs Triton, in one run.

For each backend an embedder gRPC server is started on 127.0.0.1:0 and called through its
generated stub: (1) one caller, one signal per call (batch 1), sequentially; (2) 64 concurrent
callers for a fixed time. Prints calls/s and p50/p99 latency per scenario.

Triton here is pytriton's bundled tritonserver on the CPU (python backend running the exported
ONNX through onnxruntime); on a GPU machine pass ``--device cuda`` for the in-process side.

    OMP_NUM_THREADS=1 .venv/bin/python bench/embedder_bench.py                    # synthetic artifact
    OMP_NUM_THREADS=1 .venv/bin/python bench/embedder_bench.py --artifact-dir artifacts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _percentiles(lat: list[float]) -> tuple[float, float]:
    a = np.asarray(lat) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _requests(movie_ids: np.ndarray, n: int, seed: int) -> list[Any]:
    from recsys.common.v1 import common_pb2
    from recsys.embedder.v1 import embedder_pb2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hist = [
            common_pb2.RatedMovie(movie_id=int(m), rating=float(r), rated_at={"seconds": 1_000 + j})
            for j, (m, r) in enumerate(
                zip(
                    rng.choice(movie_ids, int(rng.integers(10, 60))),
                    rng.choice([3.0, 4.0, 5.0], 60),
                    strict=False,
                )
            )
        ]
        out.append(embedder_pb2.EmbedQueryRequest(signals=[embedder_pb2.QuerySignal(history=hist)]))
    return out


async def _scenario(
    stub: Any, reqs: list[Any], concurrency: int, seconds: float, calls: int
) -> dict[str, float]:
    lat: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        i = k
        while True:
            if concurrency == 1 and len(lat) >= calls:
                return
            if concurrency > 1 and time.perf_counter() >= stop_at:
                return
            t0 = time.perf_counter()
            await stub.EmbedQuery(reqs[i % len(reqs)], timeout=30)
            lat.append(time.perf_counter() - t0)
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall = time.perf_counter() - started
    p50, p99 = _percentiles(lat)
    return {"calls": len(lat), "calls_per_s": len(lat) / wall, "p50_ms": p50, "p99_ms": p99}


async def _bench_backend(settings: Any, reqs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
    from recsys_embedder.server import EmbedderApp

    app = EmbedderApp(settings)
    await app.start()
    server, service = app.server, app.service
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = embedder_pb2_grpc.EmbedderStub(ch)
            info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=5)
            await _scenario(stub, reqs, 1, 0, 20)  # warm-up
            one = await _scenario(stub, reqs, 1, 0, args.calls)
            many = await _scenario(stub, reqs, args.concurrency, args.seconds, 0)
            slot = service._slot
            stats = slot.batcher.stats if slot is not None else None
            return {
                "backend": info.backend,
                "batch1": one,
                f"concurrent{args.concurrency}": many,
                "mean_batch": (stats.items / stats.batches) if stats and stats.batches else 0.0,
                "max_batch": stats.max_batch if stats else 0,
            }
    finally:
        await server.stop(0)


def _artifact(args: argparse.Namespace, tmp: Path) -> Path:
    if args.artifact_dir:
        return Path(args.artifact_dir)
    from recsys_embedder.backends.synthetic import make_artifact, tiny_dataset

    ds = tiny_dataset(tmp, n_users=943, n_movies=1682, n_ratings=100_000, seed=0)
    return make_artifact(tmp / "artifacts", "bench", ds, dim=64, n_neighbours=10, two_tower=False)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core.testing import test_settings
    from recsys_embedder.artifacts import load_artifact
    from recsys_embedder.settings import EmbedderSettings

    with tempfile.TemporaryDirectory(prefix="embedder-bench-") as t:
        tmp = Path(t)
        art_dir = _artifact(args, tmp)
        art = load_artifact(art_dir)
        reqs = _requests(art.movie_ids, 512, seed=0)
        common = {
            "artifact_dir": str(art_dir),
            "batch_max_size": args.batch_max_size,
            "batch_max_wait_ms": args.batch_max_wait_ms,
            "log_level": "WARNING",
        }
        results: dict[str, Any] = {
            "artifact": art.version,
            "dimension": art.dimension,
            "movies": len(art.movie_ids),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "runs": [],
        }
        settings = test_settings(EmbedderSettings, backend="torch", device=args.device, **common)
        results["runs"].append(await _bench_backend(settings, reqs, args))
        if not args.no_triton:
            from recsys_embedder.backends.triton_local import LocalTriton, TritonUnavailable, site_packages
            from recsys_embedder.export import write_model_repository

            write_model_repository(art, tmp / "repo", kind="python", site_packages=site_packages())
            triton = LocalTriton(tmp / "repo", tmp / "triton")
            try:
                triton.start()
            except TritonUnavailable as exc:
                results["triton_skipped"] = str(exc)
            else:
                try:
                    settings = test_settings(
                        EmbedderSettings,
                        backend="triton",
                        triton_url=triton.url,
                        batch_max_concurrency=args.triton_concurrency,
                        **common,
                    )
                    results["runs"].append(await _bench_backend(settings, reqs, args))
                finally:
                    triton.stop()
        return results


def _print(results: dict[str, Any], concurrency: int) -> None:
    print(
        f"artifact {results['artifact']} (dim {results['dimension']}, {results['movies']} movies) "
        f"on {results['machine']}, OMP_NUM_THREADS={results['omp_num_threads']}"
    )
    print(f"{'backend':<12} {'scenario':<14} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10}")
    for r in results["runs"]:
        for key in ("batch1", f"concurrent{concurrency}"):
            s = r[key]
            mb = f"{r['mean_batch']:.1f}" if key != "batch1" else ""
            print(
                f"{r['backend']:<12} {key:<14} {s['calls_per_s']:>9.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {mb:>10}"
            )
    if "triton_skipped" in results:
        print(f"triton skipped: {results['triton_skipped']}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact-dir", default="", help="a trained artifact (default: a synthetic one)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--calls", type=int, default=300, help="sequential batch-1 calls")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0, help="duration of the concurrent scenario")
    p.add_argument("--batch-max-size", type=int, default=64)
    p.add_argument("--batch-max-wait-ms", type=float, default=0.0)
    p.add_argument("--triton-concurrency", type=int, default=2, help="batches in flight to Triton")
    p.add_argument("--no-triton", action="store_true")
    p.add_argument("--json", default="", help="also write the results here")
    a = p.parse_args()
    res = asyncio.run(main(a))
    _print(res, a.concurrency)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
