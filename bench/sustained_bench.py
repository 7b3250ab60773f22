"""Sustained open-loop load on the gateway: the highest rate the stack holds, and where the time goes.

    python bench/sustained_bench.py                       # starts a stack (recsys up --detach) on ml-100k
    python bench/sustained_bench.py --target 127.0.0.1:50051 --data ml-100k    # a stack already up
    python bench/sustained_bench.py --rate 80 --duration 300                   # one fixed rate, 5 minutes

1. Steps: open-loop Recommend (user ids drawn from the data set, round-robin) at each rate
   of ``--rates`` for ``--step-duration`` seconds, upwards until a step misses the target
   (p99 >= ``--p99-ms`` or any error). Latency counts from each call's *scheduled* send
   time (recsys_tools.loadgen), so queueing shows up instead of being hidden.
2. Sustained: ``--duration`` seconds (at least 60) at the highest rate that passed (and, if
   that run misses, at the next lower passing rates, ``--fallbacks`` of them), with
   every service's Prometheus metrics read before and after: per service and RPC, calls,
   mean/p50/p99 of ``recsys_grpc_request_duration_seconds`` over the run (p50/p99
   interpolated within histogram buckets), i.e. how much of the gateway's time each hop is.

The client shares the machine with the servers (2 cores here): the numbers are the whole
stack on one box, client included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recsys_tools.loadgen import measure
from recsys_tools.stack import SERVICES
from stack_util import GATEWAY_PORT, recommend_requests, start_stack

CALL = "recsys.gateway.v1.Gateway.Recommend"
METRIC = "recsys_grpc_request_duration_seconds"


# ---------------------------------------------------------------------------------- metrics
Hist = dict[tuple[str, str], dict[str, Any]]  # (service, method) -> {"buckets": {le: n}, "sum", "count"}


def scrape(offset: int, host: str = "127.0.0.1") -> Hist:
    """The duration histograms of every service's metrics endpoint (services that do not answer: skipped)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Hist = {}
    for svc in SERVICES:
        url = f"http://{host}:{svc.metrics_port + offset}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError as exc:
            print(f"  (metrics of {svc.name} at {url} unavailable: {exc})", flush=True)
            continue
        for fam in text_string_to_metric_families(text):
            if fam.name != METRIC:
                continue
            for s in fam.samples:
                key = (s.labels.get("service", svc.name), s.labels.get("method", "?"))
                h = out.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
                if s.name.endswith("_bucket"):
                    h["buckets"][float(s.labels["le"])] = s.value
                elif s.name.endswith("_sum"):
                    h["sum"] = s.value
                elif s.name.endswith("_count"):
                    h["count"] = s.value
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style histogram_quantile over cumulative (le, count) pairs."""
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le


def hop_table(before: Hist, after: Hist) -> list[dict[str, Any]]:
    rows = []
    for key, h in sorted(after.items()):
        b = before.get(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        count = h["count"] - b["count"]
        if count <= 0:
            continue
        buckets = sorted((le, n - b["buckets"].get(le, 0.0)) for le, n in h["buckets"].items())
        rows.append(
            {
                "service": key[0],
                "method": key[1].rsplit("/", 1)[-1],
                "calls": int(count),
                "mean_ms": 1000 * (h["sum"] - b["sum"]) / count,
                "p50_ms": 1000 * _quantile(buckets, 0.50),
                "p99_ms": 1000 * _quantile(buckets, 0.99),
            }
        )
    order = {s.name: i for i, s in enumerate(reversed(SERVICES))}  # gateway first
    rows.sort(key=lambda r: (order.get(r["service"], 99), -r["calls"]))
    return rows


# ------------------------------------------------------------------------------------- load
def run_rate(
    target: str, data: list[dict[str, Any]], rate: float, seconds: float, timeout: float
) -> dict[str, Any]:
    r = measure(
        target,
        CALL,
        data,
        concurrency=max(16, int(rate * 0.5)),  # in-flight cap well above rate x latency
        duration=seconds,
        rps=rate,
        call_timeout=timeout,
        skip_first=int(rate),  # the first second: connection set-up, warm caches
    )
    r.pop("report", None)
    return r


def passed(r: dict[str, Any], p99_ms: float) -> bool:
    return r["errors"] == 0 and r["p99_ms"] < p99_ms and r["count"] > 0


def _line(rate: float, r: dict[str, Any], p99_ms: float) -> str:
    return (
        f"rate {rate:>6.0f}/s: achieved {r['rps']:>6.1f}/s  p50 {r['p50_ms']:>6.1f} ms  p90 {r['p90_ms']:>6.1f} ms"
        f"  p99 {r['p99_ms']:>7.1f} ms  errors {r['errors']}  {'ok' if passed(r, p99_ms) else 'MISSED'}"
        f"  {r['status_codes']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=None, help="gateway of a running stack (default: start one)")
    ap.add_argument(
        "--data", default="ml-100k", help="data set (user ids; and the stack's data when started)"
    )
    ap.add_argument("--rates", default="10,20,40,60,80,100,130,160,200,250,300", help="steps, calls/s")
    ap.add_argument("--rate", type=float, default=None, help="skip the steps: sustain this rate")
    ap.add_argument("--step-duration", type=float, default=15.0, help="seconds per step")
    ap.add_argument("--duration", type=float, default=60.0, help="sustained run, seconds (>= 60)")
    ap.add_argument("--fallbacks", type=int, default=2,
                    help="when a sustained run misses, retry at up to this many lower passing step rates")  # fmt: skip
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--timeout", type=float, default=2.0, help="per-call deadline, seconds")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metrics-offset", type=int, default=None,
                    help="port offset of the metrics endpoints (default: the target's gRPC port - 50051)")  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=None, help="stack state when started (default: temp dir)")
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="artifact root (reused)")
    ap.add_argument("--port-offset", type=int, default=3100)
    ap.add_argument("--train-args", default="", help="extra `recsys train` arguments when a model is trained")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.duration < 60:
        ap.error("--duration must be at least 60 seconds (a sustained run)")

    data = recommend_requests(args.data, args.k)

    started = None
    target = args.target
    if target is None:
        started = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-sustained-"))
        target = start_stack(args.data, started, args.artifacts, args.port_offset, args.train_args)
    offset = args.metrics_offset
    if offset is None:
        offset = int(target.rsplit(":", 1)[1]) - GATEWAY_PORT
    results: dict[str, Any] = {"target": target, "cores": os.cpu_count(), "p99_target_ms": args.p99_ms}
    try:
        measure(target, CALL, data, concurrency=4, duration=3.0)  # warm-up
        best: float | None = args.rate
        if best is None:
            steps = []
            print(
                f"steps of {args.step_duration:.0f}s, target p99 < {args.p99_ms:.0f} ms and no errors",
                flush=True,
            )
            for rate in (float(x) for x in args.rates.split(",")):
                r = run_rate(target, data, rate, args.step_duration, args.timeout)
                steps.append({"rate": rate, **r})
                print(_line(rate, r, args.p99_ms), flush=True)
                if not passed(r, args.p99_ms):
                    break
                best = rate
            results["steps"] = steps
            if best is None:
                print("no step met the target", flush=True)
                return 1
        # sustained runs, from the best step down while a run misses (a 60 s run sees more tail)
        lower = [x["rate"] for x in results.get("steps", []) if x["rate"] < best and passed(x, args.p99_ms)]
        candidates = [best, *sorted(lower, reverse=True)]
        results["sustained_runs"] = []
        for rate in candidates[: 1 + args.fallbacks]:
            print(f"\nsustained: {rate:.0f}/s for {args.duration:.0f}s", flush=True)
            before = scrape(offset)
            t0 = time.monotonic()
            r = run_rate(target, data, rate, args.duration, args.timeout)
            elapsed = time.monotonic() - t0
            after = scrape(offset)
            print(_line(rate, r, args.p99_ms), flush=True)
            results["sustained_runs"].append({"rate": rate, **r})
            best = rate
            if passed(r, args.p99_ms):
                break
        hops = hop_table(before, after)
        results["sustained"] = {"rate": best, "seconds": elapsed, "held": passed(r, args.p99_ms), **r}
        if not passed(r, args.p99_ms):
            print(f"no sustained run held the target (last tried {best:.0f}/s)", flush=True)
        results["hops"] = hops
        print(f"\nwhere the time goes (server-side handling time per RPC over the {elapsed:.0f}s run)")
        print(f"{'service':<10} {'method':<18} {'calls':>7} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7}")
        for h in hops:
            print(f"{h['service']:<10} {h['method']:<18} {h['calls']:>7} {h['mean_ms']:>8.2f} "
                  f"{h['p50_ms']:>7.2f} {h['p99_ms']:>7.2f}")  # fmt: skip
        per_call: dict[str, float] = defaultdict(float)
        gw_calls = sum(h["calls"] for h in hops if h["service"] == "gateway" and h["method"] == "Recommend")
        for h in hops:
            if h["service"] != "gateway" and gw_calls:
                per_call[h["service"]] += h["mean_ms"] * h["calls"] / gw_calls
        if per_call:
            print("per gateway Recommend, time spent in each upstream (mean, ms):",
                  ", ".join(f"{k} {v:.2f}" for k, v in per_call.items()))  # fmt: skip
        results["upstream_ms_per_recommend"] = dict(per_call)
    finally:
        if started is not None:
            subprocess.run(
                [sys.executable, "-m", "recsys_tools.cli", "down", "--workdir", str(started)], check=False
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if results["sustained"]["held"] else 1


if __name__ == "__main__":
    sys.exit(main())
