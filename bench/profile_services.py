"""Where each service spends its CPU under Recommend load: py-spy on every service of a running
stack while closed-loop Recommend-by-user-id load runs (prints numbers, never a test).

    .venv/bin/pip install py-spy          # a profiler, not a dependency of the project
    recsys up --detach --data ml-100k --workdir var --port-offset 3000
    OMP_NUM_THREADS=1 .venv/bin/python bench/profile_services.py --workdir var \\
        --target 127.0.0.1:53051 --data ml-100k --concurrency 16

The load runs for ``--warmup + --duration`` seconds; py-spy samples each service's process
(pids from the workdir's ``stack.json``) for ``--duration`` seconds, ``--rate`` samples a second,
without stopping it (``--nonblocking``). For each service it prints the samples, the frames with
the most *self* samples (the code that was running) and the project/library frames with the most
*inclusive* samples (what that code was called for). py-spy and the load share the machine's
cores with the stack, so the load's RPS here is below `bench/gateway_bench.py`'s: read the
shares, not the rate. ``--raw DIR`` keeps py-spy's collapsed stacks (flame-graph input).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recsys_tools.loadgen import measure  # noqa: E402
from stack_util import recommend_requests  # noqa: E402

CALL = "recsys.gateway.v1.Gateway.Recommend"
SERVICES = ("gateway", "catalog", "retriever", "embedder")
OURS = ("recsys_", "milvus_lite", "pymilvus", "asyncpg", "torch")


def summarise(raw: Path, top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """``(samples, top self frames, top inclusive frames of OURS)`` of py-spy's raw output."""
    self_n: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        self_n[frames[-1]] += int(n)
        for f in set(frames):
            if any(o in f for o in OURS) and "__main__" not in f and "server.py:3" not in f:
                incl[f] += int(n)
    return total, self_n.most_common(top), incl.most_common(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="the stack's workdir (stack.json: pids)")
    ap.add_argument("--target", required=True, help="the stack's gateway")
    ap.add_argument("--data", default="ml-100k", help="data set of the user ids")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds profiled")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before profiling")
    ap.add_argument("--rate", type=int, default=67, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--raw", type=Path, default=None, help="keep py-spy's collapsed stacks here")
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        print("profile_services: py-spy not found (pip install py-spy)", file=sys.stderr)
        return 2
    pids = json.loads((args.workdir / "stack.json").read_text())["pids"]
    missing = [s for s in SERVICES if s not in pids]
    if missing:
        print(f"profile_services: {args.workdir}/stack.json has no pid for {missing}", file=sys.stderr)
        return 2
    out = args.raw or Path(tempfile.mkdtemp(prefix="recsys-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    data = recommend_requests(args.data, 10)
    result: dict[str, object] = {}

    def load() -> None:
        result.update(measure(args.target, CALL, data, concurrency=args.concurrency,
                              duration=args.warmup + args.duration, skip_first=args.concurrency))  # fmt: skip

    t = threading.Thread(target=load)
    t.start()
    threading.Event().wait(args.warmup)
    procs = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-d",
                str(int(args.duration)),
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "--nonblocking",
                "-o",
                str(out / f"{s}.txt"),
                "--pid",
                str(pids[s]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for s in SERVICES
    ]
    for s, p in zip(SERVICES, procs, strict=True):
        _, err = p.communicate()
        if p.returncode != 0:
            print(f"py-spy on {s} (pid {pids[s]}) failed: {err.decode()[-500:]}", file=sys.stderr)
    t.join()
    print(f"Recommend by user id, {args.concurrency} callers, {args.duration:.0f} s profiled at {args.rate} Hz: "
          f"{result.get('rps', 0):.0f} rps, p50 {result.get('p50_ms', 0):.1f} ms, "
          f"p99 {result.get('p99_ms', 0):.1f} ms, errors {result.get('errors')}\n")  # fmt: skip
    for s in SERVICES:
        raw = out / f"{s}.txt"
        if not raw.exists():
            continue
        total, top_self, top_incl = summarise(raw, args.top)
        print(f"### {s} ({total} samples)\n\n| self % | frame |\n|---:|---|")
        for f, n in top_self:
            print(f"| {100 * n / max(total, 1):.1f} | `{f[:120]}` |")
        print("\n| inclusive % | frame (project and library code) |\n|---:|---|")
        for f, n in top_incl:
            print(f"| {100 * n / max(total, 1):.1f} | `{f[:120]}` |")
        print()
    print(f"(collapsed stacks: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
