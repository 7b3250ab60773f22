"""Recommend by user id through the gateway vs the floor of Python gRPC on this machine.

    python bench/gateway_bench.py                        # starts a stack (recsys up --detach) on ml-100k
    python bench/gateway_bench.py --target 127.0.0.1:50051 --data ml-100k   # a stack already up
    python bench/gateway_bench.py --data ml-latest-small --duration 20

In one run: closed-loop load at 1, 16 and 64 concurrent callers for ``--duration``
seconds each (recsys_core.loadgen, the same engine as the ghz configs), first on the
gateway's Recommend with user ids drawn from the data set (round-robin over 500 users),
then on a trivial unary echo server (bench/echo_server.py) measured the same way. It
prints RPS, p50, p99 and errors for both, and Recommend's RPS as a ratio of the echo's.
The client runs in this process and shares the 2 cores with the servers: the echo floor
is measured under the same handicap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from echo_server import floor  # noqa: E402
from recsys_core.loadgen import measure  # noqa: E402
from stack_util import recommend_requests, start_stack  # noqa: E402

CALL = "recsys.gateway.v1.Gateway.Recommend"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=None, help="gateway of a running stack (default: start one)")
    ap.add_argument(
        "--data", default="ml-100k", help="data set (user ids; and the stack's data when started)"
    )
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=None, help="stack state (default: a temp dir)")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="artifact root (reused)")
    ap.add_argument("--port-offset", type=int, default=3000)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    levels = tuple(int(c) for c in args.concurrency.split(","))

    data = recommend_requests(args.data, args.k)

    started = None
    target = args.target
    if target is None:
        started = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-bench-"))
        target = start_stack(args.data, started, args.artifacts, args.port_offset)
    results: dict[str, list[dict[str, Any]]] = {"recommend": [], "echo": []}
    try:
        for c in levels:
            r = measure(target, CALL, data, concurrency=c, duration=args.duration, skip_first=c)
            r.pop("report", None)
            results["recommend"].append({"concurrency": c, **r})
            print(f"recommend c={c}: {r['rps']:.0f} rps p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
                  f"errors {r['errors']}", flush=True)  # fmt: skip
    finally:
        if started is not None:
            subprocess.run(
                [sys.executable, "-m", "recsys_core.cli", "down", "--workdir", str(started)], check=False
            )
    for row in floor(levels, args.duration):
        row.pop("report", None)
        results["echo"].append(row)

    print(
        f"\nGateway Recommend (user id, k={args.k}) vs echo floor, {args.duration:.0f}s per level, {os.cpu_count()} cores"
    )
    print(
        f"{'callers':>7} | {'rec rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} | {'echo rps':>8} {'p50 ms':>7} {'p99 ms':>7} | ratio"
    )
    for rec, echo in zip(results["recommend"], results["echo"], strict=True):
        ratio = rec["rps"] / echo["rps"] if echo["rps"] else float("nan")
        print(
            f"{rec['concurrency']:>7} | {rec['rps']:>8.0f} {rec['p50_ms']:>7.1f} {rec['p99_ms']:>7.1f} {rec['errors']:>4} | "
            f"{echo['rps']:>8.0f} {echo['p50_ms']:>7.2f} {echo['p99_ms']:>7.2f} | {ratio:.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
