"""A Python load generator that speaks ghz: same JSON configs, same JSON report.

    python -m recsys_tools.loadgen --config bench/ghz/recommend.json [-c 16] [--rps 200] [--duration 10s]

In-process (benches):

    from recsys_tools.loadgen import measure
    r = measure("127.0.0.1:50051", "recsys.gateway.v1.Gateway.Recommend", {"user_id": 1}, 16, 5.0)
    r["rps"], r["p50_ms"], r["p99_ms"], r["report"]   # report: ghz's JSON shape

Closed loop (``concurrency`` workers back to back) or open loop (``rps``: calls scheduled at
fixed times, latency from the scheduled time). Methods are resolved through server
reflection (or ``proto``/``protoset``). Only loopback targets unless ``allow_remote``.
"""

from recsys_tools.loadgen.config import (
    ConfigError,
    LoadConfig,
    LoadSchedule,
    load_config,
    normalize_call,
    parse_config,
    parse_duration,
)
from recsys_tools.loadgen.report import CallResult, build_report, format_summary, status_name
from recsys_tools.loadgen.runner import (
    LoadError,
    ResolvedMethod,
    check_target,
    encode_requests,
    measure,
    measure_async,
    resolve_method,
    run,
    run_sync,
)

__all__ = [
    "CallResult",
    "ConfigError",
    "LoadConfig",
    "LoadError",
    "LoadSchedule",
    "ResolvedMethod",
    "build_report",
    "check_target",
    "encode_requests",
    "format_summary",
    "load_config",
    "measure",
    "measure_async",
    "normalize_call",
    "parse_config",
    "parse_duration",
    "resolve_method",
    "run",
    "run_sync",
    "status_name",
]
