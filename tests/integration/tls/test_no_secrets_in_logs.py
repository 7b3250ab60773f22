"""Nothing secret in logs: the gateway's API keys and the catalog's DSN password never appear in
the services' log output (DEBUG level), whatever the calls (no key, a wrong key, a right key)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.testing import free_port

pytestmark = pytest.mark.slow

API_KEY = "gw-key-Zq8Xv3Lm0Pp2"
WRONG_KEY = "guess-Kk7Yy1Tt9"
DB_PASSWORD = "pw-Hh4Jj6Nn8Rr0"


def _start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, "OMP_NUM_THREADS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_listening(target: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as ch:
        while True:
            try:
                await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.aio.AioRpcError:
                assert time.monotonic() < deadline, f"{target} not answering after {timeout}s"
                await asyncio.sleep(0.2)


async def test_gateway_never_logs_api_keys(tmp_path: Path) -> None:
    port = free_port()
    dead = free_port()  # nothing listens there: upstream calls fail (and get logged)
    log = tmp_path / "gateway.log"
    proc = _start(
        "recsys_gateway",
        {
            "RECSYS_GATEWAY_HOST": "127.0.0.1",
            "RECSYS_GATEWAY_PORT": str(port),
            "RECSYS_GATEWAY_LOG_LEVEL": "DEBUG",
            "RECSYS_GATEWAY_API_KEYS": f"other-key-1,{API_KEY}",
            "RECSYS_GATEWAY_CATALOG_TARGET": f"127.0.0.1:{dead}",
            "RECSYS_GATEWAY_EMBEDDER_TARGET": f"127.0.0.1:{dead}",
            "RECSYS_GATEWAY_RETRIEVER_TARGET": f"127.0.0.1:{dead}",
            "RECSYS_GATEWAY_UPSTREAM_TIMEOUT_S": "1",
        },
        log,
    )
    try:
        target = f"127.0.0.1:{port}"
        await _wait_listening(target)
        async with grpc.aio.insecure_channel(target) as ch:
            stub = gateway_pb2_grpc.GatewayStub(ch)
            req = gateway_pb2.GetMoviesRequest(movie_ids=[1])
            codes = []
            for md in ((), (("x-api-key", WRONG_KEY),), (("x-api-key", API_KEY),)):
                try:
                    await stub.GetMovies(req, metadata=md, timeout=5)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
                    assert API_KEY not in (exc.details() or "") and WRONG_KEY not in (exc.details() or "")
        assert codes[:2] == [grpc.StatusCode.UNAUTHENTICATED] * 2
        assert codes[2] == grpc.StatusCode.UNAVAILABLE  # authenticated; the catalog is down
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "UNAUTHENTICATED" in text or "Unauthenticated" in text or "GetMovies" in text, text[-2000:]
    assert API_KEY not in text
    assert WRONG_KEY not in text
    assert "other-key-1" not in text


async def test_catalog_never_logs_the_dsn_password(tmp_path: Path) -> None:
    """A DSN with a password to a server that is not there: the catalog retries and logs why,
    without the password."""
    port = free_port()
    dead = free_port()
    log = tmp_path / "catalog.log"
    proc = _start(
        "recsys_catalog",
        {
            "RECSYS_CATALOG_HOST": "127.0.0.1",
            "RECSYS_CATALOG_PORT": str(port),
            "RECSYS_CATALOG_LOG_LEVEL": "DEBUG",
            "RECSYS_CATALOG_DSN": f"postgresql://recsys:{DB_PASSWORD}@127.0.0.1:{dead}/recsys",
            "RECSYS_CATALOG_CONNECT_RETRY_INITIAL_S": "0.2",
            "RECSYS_CATALOG_CONNECT_RETRY_MAX_S": "0.5",
        },
        log,
    )
    try:
        await _wait_listening(f"127.0.0.1:{port}")
        await asyncio.sleep(2.0)  # a few connection attempts fail and get logged
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "unavailable" in text, f"no failed connection attempt was logged: {text[-2000:]}"
    assert DB_PASSWORD not in text, [line for line in text.splitlines() if DB_PASSWORD in line][:3]
