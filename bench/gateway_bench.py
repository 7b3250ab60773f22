"""Gateway RPCs vs the floor of Python gRPC on this machine, alternating, with the per-hop table.

    python bench/gateway_bench.py                        # starts a stack (recsys up --detach) on ml-100k
    python bench/gateway_bench.py --target 127.0.0.1:50051 --data ml-100k   # a stack already up
    python bench/gateway_bench.py --forms user --concurrency 16 --duration 20

In one run, at each concurrency level (``--concurrency``, default 1, 16, 64) and in this order:
a trivial unary echo server (bench/echo_server.py, a child process started once), then each
request form (``--forms``): ``user`` (Recommend by user id), ``quiz`` (Recommend with liked /
disliked lists, the web quiz's form) and ``similar`` (SimilarMovies), each closed-loop for
``--duration`` seconds with recsys_tools.loadgen (the engine that reads the ghz configs). The
echo is re-measured at every level next to the forms, so drift of the machine shows in both.
Request data is bench/ghz/make_data.py's (the ghz configs' files) built from ``--data``.

Printed: per level and form, RPS, p50, p99 and errors beside the echo's, the RPS ratio and the
p99 ratio; then the per-hop tables (at the lowest and the highest level): for each form, the server-side handling time per request of
every RPC every service handled while that form ran (from the services' Prometheus
``recsys_grpc_request_duration_seconds`` sum and count, scraped before and after), i.e. calls
and milliseconds of server time per gateway request. The client runs in this process and shares
the cores with the servers: the echo floor is measured under the same handicap.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "ghz"))

from echo_server import CALL as ECHO_CALL  # noqa: E402
from echo_server import child_server  # noqa: E402
from make_data import build  # noqa: E402
from recsys_tools import stack as stack_mod  # noqa: E402
from recsys_tools.loadgen import measure  # noqa: E402
from stack_util import start_stack  # noqa: E402

FORMS = {
    "user": ("recsys.gateway.v1.Gateway.Recommend", "recommend_user"),
    "quiz": ("recsys.gateway.v1.Gateway.Recommend", "recommend_anonymous"),
    "similar": ("recsys.gateway.v1.Gateway.SimilarMovies", "similar"),
}
_SAMPLE = re.compile(r"^recsys_grpc_request_duration_seconds_(sum|count)\{([^}]*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(ports: dict[str, int]) -> dict[tuple[str, str], tuple[float, float]]:
    """(service, method) -> (handling seconds sum, calls) from every service's /metrics."""
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, port in ports.items():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError as exc:
            print(f"  (metrics of {name} on :{port} unreadable: {exc})", flush=True)
            continue
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if not m:
                continue
            labels = dict(_LABEL.findall(m.group(2)))
            key = (labels.get("service", name), labels.get("method", "?"))
            out[key][0 if m.group(1) == "sum" else 1] += float(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def per_hop(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    requests: float,
) -> list[dict[str, Any]]:
    """Rows ``{service, method, calls_per_request, ms_per_request, ms_per_call}`` of the RPCs
    whose count grew, per gateway request (``requests`` = the gateway's handled calls)."""
    rows = []
    for key, (s1, c1) in sorted(after.items()):
        s0, c0 = before.get(key, (0.0, 0.0))
        calls = c1 - c0
        if calls <= 0 or requests <= 0:
            continue
        rows.append(
            {
                "service": key[0],
                "method": key[1],
                "calls_per_request": calls / requests,
                "ms_per_request": 1000.0 * (s1 - s0) / requests,
                "ms_per_call": 1000.0 * (s1 - s0) / calls,
            }
        )
    return rows


def _gateway_calls(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    method: str,
) -> float:
    return sum(
        c - before.get(k, (0.0, 0.0))[1]
        for k, (_, c) in after.items()
        if k[0] == "gateway" and k[1].rsplit("/", 1)[-1] == method
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=None, help="gateway of a running stack (default: start one)")
    ap.add_argument(
        "--data", default="ml-100k", help="data set (request data; the stack's data when started)"
    )
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per level and form")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--forms", default="user,quiz,similar", help=f"comma-separated: {', '.join(FORMS)}")
    ap.add_argument("-n", type=int, default=1000, help="distinct requests per form")
    ap.add_argument("--workdir", type=Path, default=None, help="stack state (default: a temp dir)")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="artifact root (reused)")
    ap.add_argument(
        "--port-offset", type=int, default=None, help="the stack's (default: from --target, else 3000)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--baseline",
        default=None,
        metavar="HOST:PORT,METRICS_PORT",
        help="A/B: another gateway on the same upstreams (e.g. the previous release), measured right "
        "before --target for every level and form; rows labelled 'base'",
    )
    ap.add_argument(
        "--baseline-stack-offset",
        type=int,
        default=None,
        help="the --baseline gateway is a whole other stack at this port offset (e.g. the same "
        "stack on another Milvus): its per-hop tables read that stack's services",
    )
    ap.add_argument("--label", default="", help="name of the --target rows beside 'base' (default none)")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    bad = [f for f in forms if f not in FORMS]
    if bad:
        ap.error(f"unknown form(s) {bad}; choose from {list(FORMS)}")

    from recsys_data import load_dataset

    data = build(load_dataset(args.data), args.n, seed=7)
    gateway = next(s for s in stack_mod.SERVICES if s.name == "gateway")
    offset = args.port_offset
    if offset is None:
        offset = int(args.target.rsplit(":", 1)[1]) - gateway.port if args.target else 3000
    ports = {s.name: s.metrics_port + offset for s in stack_mod.SERVICES}

    base_target, base_ports = None, {}
    if args.baseline:
        base_target, _, mport = args.baseline.partition(",")
        if not mport.strip().isdigit():
            ap.error("--baseline takes HOST:PORT,METRICS_PORT (the baseline gateway's metrics port)")
        base_ports = {**ports, "gateway": int(mport)}
        if args.baseline_stack_offset is not None:
            base_ports = {s.name: s.metrics_port + args.baseline_stack_offset for s in stack_mod.SERVICES}
            base_ports["gateway"] = int(mport)
    started = None
    target = args.target
    if target is None:
        started = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-bench-"))
        target = start_stack(args.data, started, args.artifacts, offset)
    rows: list[dict[str, Any]] = []
    hops: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    try:
        with child_server() as echo_target:
            for c in levels:
                echo = measure(echo_target, ECHO_CALL, {"message": "hello"}, c, args.duration, skip_first=c)
                echo.pop("report", None)
                print(f"echo c={c}: {echo['rps']:.0f} rps p99 {echo['p99_ms']:.2f} ms", flush=True)
                for form in forms:
                    call, key = FORMS[form]
                    runs = [("base", base_target, base_ports)] if base_target else []
                    for label, tgt, pts in [*runs, (args.label, target, ports)]:
                        before = scrape(pts)
                        r = measure(tgt, call, data[key], c, args.duration, skip_first=c)
                        after = scrape(pts)
                        r.pop("report", None)
                        method = call.rsplit(".", 1)[1]
                        n_req = _gateway_calls(before, after, method)
                        name = f"{form} {label}".strip()
                        hops[name][c] = per_hop(before, after, n_req)
                        rows.append({"form": name, "concurrency": c, "result": r, "echo": echo})
                        print(f"  {name} c={c}: {r['rps']:.0f} rps p50 {r['p50_ms']:.1f} ms "
                              f"p99 {r['p99_ms']:.1f} ms errors {r['errors']}", flush=True)  # fmt: skip
    finally:
        if started is not None:
            subprocess.run(
                [sys.executable, "-m", "recsys_tools.cli", "down", "--workdir", str(started)], check=False
            )

    print(
        f"\nGateway vs echo floor, {args.duration:g} s per level and form, alternating, {os.cpu_count()} cores"
    )
    print(f"{'form':>12} {'callers':>7} | {'rps':>6} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} | "
          f"{'echo rps':>8} {'p99 ms':>7} | {'rps/echo':>8} {'p99/echo':>8}")  # fmt: skip
    for row in rows:
        r, e = row["result"], row["echo"]
        ratio = r["rps"] / e["rps"] if e["rps"] else float("nan")
        p99 = r["p99_ms"] / e["p99_ms"] if e["p99_ms"] else float("nan")
        print(f"{row['form']:>12} {row['concurrency']:>7} | {r['rps']:>6.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{r['errors']:>4} | {e['rps']:>8.0f} {e['p99_ms']:>7.2f} | {ratio:>8.3f} {p99:>7.1f}x")  # fmt: skip
    shown = sorted({min(levels), max(levels)})
    for form, by_level in hops.items():
        for level in shown:
            hrows = by_level[level]
            total = sum(h["ms_per_request"] for h in hrows if h["service"] != "gateway")
            print(f"\nper hop, {form} at {level} caller(s) (server handling time per gateway request):")
            print(f"{'service':>10} {'method':>18} {'calls/req':>9} {'ms/req':>7} {'ms/call':>7}")
            for h in hrows:
                print(f"{h['service']:>10} {h['method'].rsplit('/', 1)[-1]:>18} {h['calls_per_request']:>9.2f} "
                      f"{h['ms_per_request']:>7.2f} {h['ms_per_call']:>7.2f}")  # fmt: skip
            print(f"{'':>10} {'upstreams total':>18} {'':>9} {total:>7.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "hops": hops}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
