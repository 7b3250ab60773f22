"""Gateway memory under a burst of oversized request bodies (issue #16 item 7), in one run.

    python bench/burst_memory.py [--bodies 200] [--concurrency 16] [--body-mb 4]

For each receive limit (the old 4 MiB default, then the gateway's default, MAX_REQUEST_BYTES =
256 KiB) it starts a gateway process (`python -m recsys_gateway`, upstreams on dead ports: the
size check happens before any handler), sends ``--bodies`` well-formed RecordFeedback bodies
of ``--body-mb`` MB (one rating plus an unknown length-delimited field) with ``--concurrency``
in flight, and prints the gateway's resident memory before, at peak (VmHWM), right after the
burst, and after one memory-return interval (RECSYS_GATEWAY_MEMORY_TRIM_INTERVAL_S, 10 s);
the first row is the old behaviour (4 MiB, memory never returned).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import grpc
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys_gateway.settings import MAX_REQUEST_BYTES

METHOD = "/recsys.gateway.v1.Gateway/RecordFeedback"


def _mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return 0.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(mb: float) -> bytes:
    n = int(mb * 1_000_000)
    rating = gateway_pb2.RecordFeedbackRequest(ratings=[common_pb2.Rating(user_id=1, movie_id=1, rating=4)])
    return rating.SerializeToString() + bytes([15 << 3 | 2]) + _VarintBytes(n) + b"a" * n


async def _burst(port: int, body: bytes, bodies: int, concurrency: int) -> dict[str, int]:
    codes: dict[str, int] = {}
    opts = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
        call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                try:
                    await call(body, timeout=30, metadata=(("x-api-key", "k"),))
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                codes[code] = codes.get(code, 0) + 1

        await asyncio.gather(*(one() for _ in range(bodies)))
    return codes


async def _wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError("gateway did not start")


async def measure(limit: int, trim_s: float, args: argparse.Namespace) -> dict[str, object]:
    port = _port()
    env = dict(
        os.environ,
        RECSYS_GATEWAY_PORT=str(port),
        RECSYS_GATEWAY_CATALOG_TARGET=f"127.0.0.1:{_port()}",
        RECSYS_GATEWAY_EMBEDDER_TARGET=f"127.0.0.1:{_port()}",
        RECSYS_GATEWAY_RETRIEVER_TARGET=f"127.0.0.1:{_port()}",
        RECSYS_GATEWAY_API_KEYS="k",
        RECSYS_GATEWAY_LOG_LEVEL="ERROR",
        RECSYS_GATEWAY_MAX_RECEIVE_MESSAGE_BYTES=str(limit),
        RECSYS_GATEWAY_MEMORY_TRIM_INTERVAL_S=str(trim_s),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "recsys_gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_port(port)
        await asyncio.sleep(1.0)
        before = _mb(proc.pid, "VmRSS")
        start = time.perf_counter()
        codes = await _burst(port, _body(args.body_mb), args.bodies, args.concurrency)
        seconds = time.perf_counter() - start
        after = _mb(proc.pid, "VmRSS")
        peak = _mb(proc.pid, "VmHWM")
        await asyncio.sleep(args.trim_interval + 2)
        settled = _mb(proc.pid, "VmRSS")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "limit": limit,
        "trim": trim_s,
        "codes": codes,
        "seconds": seconds,
        "before": before,
        "peak": peak,
        "after": after,
        "settled": settled,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bodies", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--body-mb", type=float, default=4.0)
    ap.add_argument("--trim-interval", type=float, default=10.0)
    args = ap.parse_args()
    configs = [
        (4 * 1024 * 1024, 0.0),
        (4 * 1024 * 1024, args.trim_interval),
        (MAX_REQUEST_BYTES, args.trim_interval),
    ]
    rows = [asyncio.run(measure(limit, trim_s, args)) for limit, trim_s in configs]
    print(
        f"{args.bodies} bodies of {args.body_mb:g} MB, {args.concurrency} in flight; gateway resident MB\n"
        "| receive limit | memory return | answers | burst s | before | peak | right after | "
        f"{args.trim_interval + 2:g} s later |\n"
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for r in rows:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(r["codes"].items()))  # type: ignore[attr-defined]
        trim = f"every {r['trim']:g} s" if r["trim"] else "off"
        limit_kib = int(r["limit"]) // 1024  # type: ignore[call-overload]
        cells = [f"{limit_kib} KiB", trim, codes, f"{r['seconds']:.2f}"]
        cells += [f"{r[k]:.0f}" for k in ("before", "peak", "after", "settled")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
