"""``python -m recsys_tools.loadgen``: run a ghz config with the Python load generator.

    python -m recsys_tools.loadgen --config bench/ghz/recommend.json \
        [--host H] [-c N] [--rps R] [--duration 10s] [-n N] [--format summary|json|pretty] [--output FILE]

Command-line options override the config file's keys (ghz's names); without a config
file, ``--call`` and a host are required. Exit status: 0 when the run finished (even
with failed calls: see the status code distribution), 1 when it could not start,
2 for a bad config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recsys_tools.loadgen.config import ConfigError, load_config, parse_config
from recsys_tools.loadgen.report import format_summary
from recsys_tools.loadgen.runner import LoadError, run_sync


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recsys_tools.loadgen",
        description="gRPC load generator reading ghz configs and writing ghz reports",
    )
    p.add_argument("host_arg", nargs="?", metavar="HOST", help="target host:port (as ghz's positional)")
    p.add_argument("--config", help="ghz JSON config file")
    p.add_argument("--host", help="target host:port (overrides the config)")
    p.add_argument("--call", help="package.Service.Method")
    p.add_argument("-n", "--total", type=int, help="number of calls (0 = until --duration)")
    p.add_argument("-c", "--concurrency", type=int, help="workers (closed loop), most calls in flight (open)")
    p.add_argument("--connections", type=int, help="gRPC connections shared by the workers")
    p.add_argument("--rps", type=float, help="open loop at this rate (calls scheduled at fixed times)")
    p.add_argument("-z", "--duration", help="run for this long, e.g. 10s (stops at -n if that comes first)")
    p.add_argument("-x", "--max-duration", help="stop after this long even if -n is not reached")
    p.add_argument("-t", "--timeout", help="per-call deadline, e.g. 20s (0 = none)")
    p.add_argument("--connect-timeout", help="connection/reflection timeout, e.g. 10s")
    p.add_argument("-d", "--data", help="call data: JSON object or array of objects (round-robin)")
    p.add_argument("-D", "--data-file", help="call data JSON file")
    p.add_argument("-m", "--metadata", help="metadata: JSON object of strings")
    p.add_argument("-M", "--metadata-file", help="metadata JSON file")
    p.add_argument("--load-schedule", choices=["const", "step", "line"])
    p.add_argument("--load-start", type=float)
    p.add_argument("--load-end", type=float)
    p.add_argument("--load-step", type=float)
    p.add_argument("--load-step-duration")
    p.add_argument("--load-max-duration")
    p.add_argument("--skip-first", type=int, help="leave the first N calls out of the report (warm-up)")
    p.add_argument("--proto", help="proto file instead of reflection")
    p.add_argument("--protoset", help="FileDescriptorSet file instead of reflection")
    p.add_argument("-i", "--import-paths", help="comma-separated proto import paths")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("-O", "--format", choices=["summary", "json", "pretty"])
    p.add_argument("-o", "--output", help="write the report here instead of stdout")
    p.add_argument("--details", action="store_true", help="include per-call details in the JSON report")
    p.add_argument("--insecure", action="store_true", help="accepted as ghz has it (always plaintext)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback target")
    return p


_KEYS = {
    "call": "call",
    "total": "total",
    "concurrency": "concurrency",
    "connections": "connections",
    "rps": "rps",
    "duration": "duration",
    "max_duration": "max-duration",
    "timeout": "timeout",
    "connect_timeout": "connect-timeout",
    "data": "data",
    "data_file": "data-file",
    "metadata": "metadata",
    "metadata_file": "metadata-file",
    "load_schedule": "load-schedule",
    "load_start": "load-start",
    "load_end": "load-end",
    "load_step": "load-step",
    "load_step_duration": "load-step-duration",
    "load_max_duration": "load-max-duration",
    "skip_first": "skip-first",
    "proto": "proto",
    "protoset": "protoset",
    "import_paths": "import-paths",
    "name": "name",
    "format": "format",
    "output": "output",
}


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    for attr, key in _KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            over[key] = value
    host = args.host or args.host_arg
    if host:
        over["host"] = host
    if "metadata" in over:
        try:
            over["metadata"] = json.loads(over["metadata"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"metadata: not valid JSON: {exc}") from exc
    return over


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        over = overrides_from_args(args)
        if args.config:
            config = load_config(args.config, overrides=over)
        else:
            config = parse_config({}, base_dir=Path.cwd(), overrides=over)
    except ConfigError as exc:
        print(f"loadgen: bad config: {exc}", file=sys.stderr)
        return 2
    try:
        report = run_sync(config, allow_remote=args.allow_remote, details=args.details)
    except (LoadError, ConfigError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return 130
    if config.format == "json":
        text = json.dumps(report) + "\n"
    elif config.format == "pretty":
        text = json.dumps(report, indent=2) + "\n"
    else:
        text = format_summary(report)
    if config.output:
        Path(config.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
