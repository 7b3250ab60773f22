"""A trivial unary gRPC echo server on grpc.aio: the floor of Python gRPC on this machine.

    python bench/echo_server.py [--port 50060]          # serve (prints "listening on HOST:PORT")
    python bench/echo_server.py --measure [--duration 5] [--concurrency 1,16,64] [--rps 0]
    python bench/echo_server.py --measure --target 127.0.0.1:50060   # an echo server already running

``--measure`` starts the server in a child process (so client and server each get an
interpreter), then drives it with recsys_tools.loadgen (closed loop at each concurrency
for ``--duration`` seconds, resolved through server reflection like ghz) and prints RPS,
p50 and p99. Whatever a Python gRPC service does, it cannot beat these numbers on the
same machine; compare the gateway's bench with them.

The proto (bench/protos/echo.proto) is compiled on the fly with grpc_tools into a temp
dir. Reflection is on (recsys_core.reflection: it answers method symbols such as
``recsys.bench.echo.v1.Echo.Echo`` too), so real ghz can call it: ``ghz --insecure --call recsys.bench.echo.v1.Echo.Echo -d
'{"message":"hi"}' 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
PROTO = HERE / "protos" / "echo.proto"
SERVICE = "recsys.bench.echo.v1.Echo"
CALL = f"{SERVICE}.Echo"


def compile_echo(out_dir: Path) -> tuple[ModuleType, ModuleType]:
    """Compile echo.proto into ``out_dir`` and import echo_pb2, echo_pb2_grpc."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PROTO.parent}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    sys.path.insert(0, str(out_dir))
    return importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")


async def serve(host: str, port: int) -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from recsys_core.reflection import enable_reflection  # answers method symbols, as ghz asks

    with tempfile.TemporaryDirectory(prefix="echo-proto-") as tmp:
        pb2, pb2_grpc = compile_echo(Path(tmp))

        class Echo(pb2_grpc.EchoServicer):  # type: ignore[name-defined,misc]
            async def Echo(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
                return pb2.EchoResponse(message=request.message, payload=request.payload)

        server = grpc.aio.server()
        pb2_grpc.add_EchoServicer_to_server(Echo(), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        enable_reflection([SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
        bound = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        for name in ("", SERVICE):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        print(f"listening on {host}:{bound}", flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(2)


@contextlib.contextmanager
def child_server(host: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    """Start the echo server in a child process; yield its target ("host:port")."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"echo server did not start (said {line!r}, exit {proc.poll()})")
        yield line.removeprefix("listening on ")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_echo(
    target: str, concurrencies: list[int], duration: float, payload: int = 0, rps: float = 0.0
) -> list[dict[str, Any]]:
    from recsys_tools.loadgen import measure

    data = {"message": "hello"}
    if payload:
        import base64

        data["payload"] = base64.b64encode(b"x" * payload).decode()
    rows = []
    for c in concurrencies:
        r = measure(target, CALL, data, c, duration, rps=rps or None, skip_first=min(c, 100))
        r.pop("report")  # the ghz-shaped report; the flat summary is enough here
        rows.append(r)
    return rows


def floor(concurrencies: tuple[int, ...] = (1, 16, 64), duration: float = 5.0) -> list[dict[str, Any]]:
    """Start an echo server in a child process, measure it at each concurrency, stop it.

    For other benches: ``sys.path.insert(0, "bench"); from echo_server import floor``; each
    row is recsys_tools.loadgen.measure's summary (``rps``, ``p50_ms``, ``p99_ms``, ...).
    """
    with child_server() as target:
        return measure_echo(target, list(concurrencies), duration)


def print_table(rows: list[dict[str, Any]], duration: float) -> None:
    print(
        f"echo: grpc.aio unary, {duration:g} s per row, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(
        f"{'concurrency':>11} {'calls':>8} {'errors':>6} {'RPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}"
    )
    for r in rows:

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        print(
            f"{r['concurrency']:>11} {r['count']:>8} {r['errors']:>6} {r['rps']:>9.0f} "
            f"{f(r['p50_ms']):>8} {f(r['p99_ms']):>8} {f(r['p999_ms']):>9}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50060, help="0 = any free port")
    p.add_argument("--measure", action="store_true", help="start a child server and measure it")
    p.add_argument("--target", help="with --measure: measure this running echo server instead")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per concurrency level")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    p.add_argument("--rps", type=float, default=0.0, help="open loop at this rate instead of closed loop")
    p.add_argument("--payload", type=int, default=0, help="payload bytes per request")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if not args.measure:
        # The event loop the recsys servers run on (RECSYS_ECHO_EVENT_LOOP, default auto: uvloop
        # when installed), so the floor and the services are compared on the same loop.
        from recsys_core.server import loop_factory

        with asyncio.Runner(loop_factory=loop_factory("echo")) as runner:
            runner.run(serve(args.host, args.port))
        return 0
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    started = time.monotonic()
    if args.target:
        rows = measure_echo(args.target, levels, args.duration, args.payload, args.rps)
    else:
        with child_server(args.host) as target:
            rows = measure_echo(target, levels, args.duration, args.payload, args.rps)
    print_table(rows, args.duration)
    print(f"(took {time.monotonic() - started:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
