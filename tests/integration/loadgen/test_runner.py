"""The load generator against real grpc.aio servers on 127.0.0.1:0, resolved through reflection.

The test server is a fake Gateway (the generated recsys stubs): Recommend answers by
user_id (404 -> NOT_FOUND, 503 -> UNAVAILABLE), SimilarMovies handles one call at a
time for SLEEP_S each, so its capacity is at most 1/SLEEP_S calls per second on any machine.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.reflection import enable_reflection
from recsys_tools.loadgen import (
    LoadConfig,
    LoadError,
    LoadSchedule,
    measure,
    measure_async,
    resolve_method,
    run,
)
from recsys_tools.loadgen.__main__ import main as cli_main

REPO = Path(__file__).resolve().parents[3]
GATEWAY = "recsys.gateway.v1.Gateway"
RECOMMEND = f"{GATEWAY}.Recommend"
SIMILAR = f"{GATEWAY}.SimilarMovies"
SLEEP_S = 0.01


class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    def __init__(self) -> None:
        self.users: Counter[int] = Counter()
        self.api_keys: Counter[str] = Counter()
        self.lock = asyncio.Lock()

    async def Recommend(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.users[request.user_id] += 1
        md = dict(context.invocation_metadata() or ())
        self.api_keys[str(md.get("x-api-key", ""))] += 1
        if request.user_id == 404:
            await context.abort(grpc.StatusCode.NOT_FOUND, "user 404 not found")
        if request.user_id == 503:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "catalog unavailable: test")
        return gateway_pb2.RecommendResponse(model_version=f"v{request.user_id}")

    async def SimilarMovies(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with self.lock:  # one at a time: capacity <= 1 / SLEEP_S per second
            await asyncio.sleep(SLEEP_S)
        return gateway_pb2.SimilarMoviesResponse(model_version="v")


async def start_server(method_symbols: bool) -> tuple[grpc.aio.Server, int, FakeGateway]:
    server = grpc.aio.server()
    fake = FakeGateway()
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    if method_symbols:  # the kit's reflection, as every recsys server has it
        enable_reflection([GATEWAY], server)
    else:  # grpcio-reflection as it comes: services and messages only
        reflection.enable_server_reflection([GATEWAY, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, fake


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, FakeGateway]]:
    server, port, fake = await start_server(method_symbols=True)
    yield f"127.0.0.1:{port}", fake
    await server.stop(None)


@pytest.fixture
async def stock_gateway() -> AsyncIterator[tuple[str, FakeGateway]]:
    server, port, fake = await start_server(method_symbols=False)
    yield f"127.0.0.1:{port}", fake
    await server.stop(None)


def config(target: str, **kw: Any) -> LoadConfig:
    kw.setdefault("call", RECOMMEND)
    kw.setdefault("data", ({"user_id": 1},))
    kw.setdefault("timeout", 10.0)
    return LoadConfig(host=target, **kw)


async def test_resolves_method_symbol_through_reflection(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    m = await asyncio.to_thread(resolve_method, target, RECOMMEND)
    assert m.resolved_by == "method symbol"
    assert m.path == "/recsys.gateway.v1.Gateway/Recommend"
    assert m.request_class.DESCRIPTOR.full_name == "recsys.gateway.v1.RecommendRequest"
    assert m.response_class.DESCRIPTOR.full_name == "recsys.gateway.v1.RecommendResponse"


async def test_falls_back_to_service_symbol_on_stock_reflection(
    stock_gateway: tuple[str, FakeGateway],
) -> None:
    target, fake = stock_gateway
    m = await asyncio.to_thread(resolve_method, target, f"{GATEWAY}/Recommend")
    assert m.resolved_by == "service symbol"
    rep = await run(config(target, total=5, concurrency=2))
    assert rep["statusCodeDistribution"] == {"OK": 5} and fake.users[1] == 5


async def test_resolves_from_proto_file(gateway: tuple[str, FakeGateway]) -> None:
    pytest.importorskip("grpc_tools", reason="compiling a proto needs grpcio-tools (requirements/dev.txt)")
    target, _ = gateway
    proto = str(REPO / "protos/recsys/gateway/v1/gateway.proto")
    rep = await run(config(target, total=3, concurrency=1, proto=proto, import_paths=(str(REPO / "protos"),)))
    assert rep["count"] == 3 and rep["statusCodeDistribution"] == {"OK": 3}
    assert rep["options"]["proto"] == proto


async def test_unknown_method_or_service_is_a_clear_error(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    with pytest.raises(
        LoadError, match=r"method 'Nope' not found in recsys\.gateway\.v1\.Gateway .*Recommend"
    ):
        await asyncio.to_thread(resolve_method, target, f"{GATEWAY}.Nope")
    with pytest.raises(LoadError, match=r"service 'x\.v1\.Nope' not found .*its services: .*Gateway"):
        await asyncio.to_thread(resolve_method, target, "x.v1.Nope.Call")


async def test_bad_call_data_names_the_message(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    with pytest.raises(LoadError, match=r"data\[1\]: not a valid recsys.gateway.v1.RecommendRequest"):
        await run(config(target, data=({"user_id": 1}, {"no_such_field": 2}), total=2))


async def test_unreachable_target_fails_fast() -> None:
    with pytest.raises(LoadError, match="cannot connect"):
        await run(config("127.0.0.1:1", total=1, connect_timeout=0.5))


async def test_remote_target_refused() -> None:
    with pytest.raises(LoadError, match="not a loopback address"):
        await run(config("192.0.2.1:50051", total=1))


async def test_closed_loop_sends_exactly_n_round_robin(gateway: tuple[str, FakeGateway]) -> None:
    target, fake = gateway
    data = ({"user_id": 1}, {"user_id": 2}, {"user_id": 3})
    rep = await run(config(target, data=data, total=37, concurrency=5, connections=2))
    assert rep["count"] == 37 and sum(fake.users.values()) == 37
    assert fake.users == Counter({1: 13, 2: 12, 3: 12})  # request i carries data[i % 3]
    assert rep["endReason"] == "normal"
    assert rep["options"]["concurrency"] == 5 and rep["options"]["connections"] == 2


async def test_metadata_is_sent(gateway: tuple[str, FakeGateway]) -> None:
    target, fake = gateway
    await run(config(target, total=4, concurrency=2, metadata=({"x-api-key": "a"}, {"x-api-key": "b"})))
    assert fake.api_keys == Counter({"a": 2, "b": 2})


async def test_status_code_distribution_counts_errors(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    data = ({"user_id": 1}, {"user_id": 404}, {"user_id": 503})
    rep = await run(config(target, data=data, total=30, concurrency=4, skip_first=0))
    assert rep["statusCodeDistribution"] == {"OK": 10, "NotFound": 10, "Unavailable": 10}
    assert rep["errorDistribution"] == {
        "rpc error: code = NotFound desc = user 404 not found": 10,
        "rpc error: code = Unavailable desc = catalog unavailable: test": 10,
    }
    assert sum(b["count"] for b in rep["histogram"]) == 10  # latencies of successful calls only


async def test_duration_bounds_the_run(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    rep = await run(config(target, total=None, duration=0.3, concurrency=2))
    assert rep["count"] > 0 and rep["endReason"] == "timeout"
    assert rep["options"]["duration"] == 300_000_000


async def test_open_loop_sends_total_at_a_rate(gateway: tuple[str, FakeGateway]) -> None:
    target, fake = gateway
    rep = await run(config(target, total=20, concurrency=4, schedule=LoadSchedule(rps=400)))
    assert rep["count"] == 20 and fake.users[1] == 20
    assert rep["options"]["rps"] == 400 and rep["options"]["load-schedule"] == "const"


async def test_open_loop_latency_includes_queueing(gateway: tuple[str, FakeGateway]) -> None:
    """60 calls scheduled over ~0.2 s (300/s) at a server that completes at most 100/s:
    the last call cannot finish before 60 * SLEEP_S = 0.6 s, but was scheduled at 59/300 s,
    so measured from its scheduled time its latency is at least ~0.4 s (whatever the machine),
    although the server spends only SLEEP_S on it."""
    target, _ = gateway
    rep = await run(
        config(
            target,
            call=SIMILAR,
            data=({"movie_id": 1},),
            total=60,
            concurrency=64,
            schedule=LoadSchedule(rps=300),
        ),
        details=True,
    )
    assert rep["statusCodeDistribution"] == {"OK": 60}
    lower_bound_ns = int((60 * SLEEP_S - 59 / 300) * 1e9)
    assert rep["slowest"] >= lower_bound_ns * 0.95
    # Latency grows along the run: later completions waited in the queue longer.
    lat = [d["latency"] for d in rep["details"]]
    assert sum(lat[-10:]) / 10 > 3 * (sum(lat[:10]) / 10)


async def test_measure_api(gateway: tuple[str, FakeGateway]) -> None:
    target, _ = gateway
    r = await measure_async(target, RECOMMEND, [{"user_id": 1}, {"user_id": 404}], 2, 0.0, total=10)
    assert (r["count"], r["ok"], r["errors"]) == (10, 5, 5)
    assert r["status_codes"] == {"OK": 5, "NotFound": 5}
    assert r["p50_ms"] is not None and r["p99_ms"] >= r["p50_ms"] and r["p999_ms"] >= r["p99_ms"]
    assert r["report"]["count"] == 10
    # The synchronous form (its own event loop), as a bench script calls it.
    r = await asyncio.to_thread(measure, target, RECOMMEND, {"user_id": 2}, 2, 0.2)
    assert r["ok"] == r["count"] > 0 and r["errors"] == 0
    with pytest.raises(RuntimeError, match="measure_async"):
        measure(target, RECOMMEND, {"user_id": 2}, 1, 0.1)


async def test_cli_runs_a_ghz_config(gateway: tuple[str, FakeGateway], tmp_path: Path) -> None:
    target, fake = gateway
    (tmp_path / "data.json").write_text(json.dumps([{"user_id": 7}, {"user_id": 8}]))
    cfg = {
        "call": RECOMMEND,
        "host": "127.0.0.1:1",
        "insecure": True,
        "total": 10,
        "concurrency": 2,
        "data-file": "data.json",
        "metadata": {"x-api-key": "k"},
    }
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "report.json"
    argv = [
        "--config",
        str(tmp_path / "c.json"),
        "--host",
        target,
        "-n",
        "6",
        "--format",
        "json",
        "-o",
        str(out),
    ]
    rc = await asyncio.to_thread(cli_main, argv)
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["count"] == 6 and fake.users == Counter({7: 3, 8: 3}) and fake.api_keys["k"] == 6
    assert {"date", "options", "latencyDistribution", "statusCodeDistribution"} <= rep.keys()
    assert await asyncio.to_thread(cli_main, ["--config", str(tmp_path / "c.json"), "-c", "0"]) == 2


@pytest.mark.slow
def test_echo_server_bench_measures() -> None:
    """bench/echo_server.py --measure: child server, reflection, loadgen, a table."""
    pytest.importorskip("grpc_tools", reason="the echo server compiles its proto with grpcio-tools")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/echo_server.py"),
            "--measure",
            "--duration",
            "0.3",
            "--concurrency",
            "1,4",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().startswith(("1 ", "4 "))]
    assert [r[0] for r in rows] == ["1", "4"]
    assert all(r[2] == "0" and int(r[1]) > 0 for r in rows)  # calls > 0, errors == 0
