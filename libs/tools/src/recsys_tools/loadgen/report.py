"""Results -> ghz's report: the JSON shape of ``ghz -O json`` and its default summary text.

Durations are integer nanoseconds as ghz writes Go ``time.Duration`` values; histogram
marks are seconds (as in ghz). Latency percentiles and the histogram use successful
calls only, as ghz does; ``average`` is over every counted call. ``latencyDistribution``
has ghz's 10/25/50/75/90/95/99 and adds 99.9.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

__all__ = [
    "PERCENTILES",
    "CallResult",
    "build_report",
    "error_string",
    "format_summary",
    "percentile",
    "status_name",
]

PERCENTILES: tuple[float, ...] = (10, 25, 50, 75, 90, 95, 99, 99.9)
HISTOGRAM_BUCKETS = 10
MAX_DETAILS = 1_000_000  # ghz's maxResult

# Go's codes.Code.String(), which ghz prints.
_GO_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def status_name(code: grpc.StatusCode) -> str:
    """grpc.StatusCode -> the name ghz uses ("OK", "DeadlineExceeded", "Unavailable", ...)."""
    return _GO_NAMES.get(code, code.name.title().replace("_", ""))


def error_string(code: grpc.StatusCode, details: str | None) -> str:
    """ghz's error text: ``rpc error: code = Unavailable desc = ...``."""
    return f"rpc error: code = {status_name(code)} desc = {details or ''}"


@dataclass(slots=True)
class CallResult:
    """One finished call. ``timestamp_ns``: wall clock when it was (scheduled to be) sent."""

    timestamp_ns: int
    latency_ns: int
    status: str
    error: str = ""


@dataclass
class _Summary:
    count: int = 0
    ok_latencies: list[int] = field(default_factory=list)
    total_latency_ns: int = 0
    status: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def percentile(sorted_values: Sequence[int], pct: float) -> int:
    """ghz's rank rule: the value at 0-based index ceil(p/100 * n) - 1 (at least 0)."""
    n = len(sorted_values)
    if n == 0:
        return 0
    rank = pct / 100.0 * n
    idx = math.ceil(rank - 1e-9) - 1
    return int(sorted_values[min(max(idx, 0), n - 1)])


def _histogram(ok_sorted: Sequence[int]) -> list[dict[str, Any]]:
    fastest, slowest = ok_sorted[0] / 1e9, ok_sorted[-1] / 1e9
    width = (slowest - fastest) / HISTOGRAM_BUCKETS
    marks = [fastest + width * i for i in range(HISTOGRAM_BUCKETS)] + [slowest]
    counts = [0] * len(marks)
    b = 0
    for v in ok_sorted:
        s = v / 1e9
        while s > marks[b] and b < len(marks) - 1:
            b += 1
        counts[b] += 1
    n = len(ok_sorted)
    return [{"mark": m, "count": c, "frequency": c / n} for m, c in zip(marks, counts, strict=True)]


def _rfc3339(ts: dt.datetime, *, fraction: bool = False) -> str:
    local = ts.astimezone()
    return (local if fraction else local.replace(microsecond=0)).isoformat()


def build_report(
    results: Sequence[CallResult],
    *,
    total_ns: int,
    options: dict[str, Any],
    end_reason: str = "normal",
    name: str = "",
    tags: dict[str, str] | None = None,
    skip_first: int = 0,
    start_ns: int | None = None,
    details: bool = False,
    date: dt.datetime | None = None,
) -> dict[str, Any]:
    """Finished calls (in completion order) -> ghz's JSON report as a dict.

    ``skip_first`` drops the first N finished calls (ghz's --skipFirst: warm-up). Given the
    run's wall-clock start ``start_ns``, ``rps`` is then counted over the time after the last
    skipped call finished (ghz divides by the whole run, which understates the rate).
    ``details`` adds ghz's per-call ``details`` list (capped at 1,000,000 as in ghz).
    """
    counted = results[skip_first:]
    s = _Summary()
    for r in counted:
        s.count += 1
        s.total_latency_ns += r.latency_ns
        s.status[r.status] += 1
        if r.error:
            s.errors[r.error] += 1
        else:
            s.ok_latencies.append(r.latency_ns)
    s.ok_latencies.sort()
    report: dict[str, Any] = {}
    if name:
        report["name"] = name
    report["endReason"] = end_reason
    report["options"] = options
    report["date"] = _rfc3339(date or dt.datetime.now(dt.UTC))
    report["count"] = s.count
    report["total"] = int(total_ns)
    report["average"] = int(s.total_latency_ns / s.count) if s.count else 0
    report["fastest"] = s.ok_latencies[0] if s.ok_latencies else 0
    report["slowest"] = s.ok_latencies[-1] if s.ok_latencies else 0
    window_ns = total_ns
    if skip_first and start_ns is not None and counted and len(results) > skip_first:
        warm = results[skip_first - 1]
        window_ns = total_ns - (warm.timestamp_ns + warm.latency_ns - start_ns)
    report["rps"] = s.count / (window_ns / 1e9) if window_ns > 0 else 0.0
    report["errorDistribution"] = dict(s.errors)
    report["statusCodeDistribution"] = dict(s.status)
    if s.ok_latencies:
        report["latencyDistribution"] = [
            {"percentage": int(p) if float(p).is_integer() else p, "latency": percentile(s.ok_latencies, p)}
            for p in PERCENTILES
        ]
        report["histogram"] = _histogram(s.ok_latencies)
    else:
        report["latencyDistribution"] = None
        report["histogram"] = None
    if details:
        report["details"] = [
            {
                "timestamp": _rfc3339(dt.datetime.fromtimestamp(r.timestamp_ns / 1e9, dt.UTC), fraction=True),
                "latency": r.latency_ns,
                "error": r.error,
                "status": r.status,
            }
            for r in counted[:MAX_DETAILS]
        ]
    if tags:
        report["tags"] = dict(tags)
    return report


def _fmt_ns(ns: float) -> str:
    """ghz-like human duration: ``1.23 ms``, ``50.05 s``."""
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def format_summary(report: dict[str, Any]) -> str:
    """ghz's default text output for a report dict from :func:`build_report`."""
    lines = ["", "Summary:"]
    if report.get("name"):
        lines.append(f"  Name:\t{report['name']}")
    lines += [
        f"  Count:\t{report['count']}",
        f"  Total:\t{_fmt_ns(report['total'])}",
        f"  Slowest:\t{_fmt_ns(report['slowest'])}",
        f"  Fastest:\t{_fmt_ns(report['fastest'])}",
        f"  Average:\t{_fmt_ns(report['average'])}",
        f"  Requests/sec:\t{report['rps']:.2f}",
    ]
    hist = report.get("histogram") or []
    if hist:
        lines += ["", "Response time histogram:"]
        top = max(b["count"] for b in hist) or 1
        for b in hist:
            bar = "∎" * round(40 * b["count"] / top)
            lines.append(f"  {b['mark'] * 1e3:.3f} [{b['count']}]\t|{bar}")
    dist = report.get("latencyDistribution") or []
    if dist:
        lines += ["", "Latency distribution:"]
        lines += [f"  {d['percentage']} % in {_fmt_ns(d['latency'])}" for d in dist]
    lines += ["", "Status code distribution:"]
    for status, n in sorted(report["statusCodeDistribution"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  [{status}]   {n} responses")
    errors = report.get("errorDistribution") or {}
    if errors:
        lines += ["", "Error distribution:"]
        for err, n in sorted(errors.items(), key=lambda kv: -kv[1]):
            lines.append(f"  [{n}]   {err}")
    return "\n".join(lines) + "\n"
