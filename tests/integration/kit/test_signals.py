"""SIGTERM to a real server process: the in-flight call completes, then on_stop runs and it exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc

SCRIPT = Path(__file__).with_name("toy_server.py")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


async def _line(proc: asyncio.subprocess.Process, prefix: str) -> str:
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 20)
        if not raw:
            raise AssertionError(f"server exited before printing {prefix!r}")
        line = raw.decode().strip()
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_drains_in_flight_call(sig: signal.Signals) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "0.5", stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        port = int(await _line(proc, "TOY port"))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = catalog_pb2_grpc.CatalogStub(channel)
            call = asyncio.ensure_future(stub.Describe(catalog_pb2.DescribeRequest(), timeout=20))
            await _line(proc, "TOY entered")
            proc.send_signal(sig)
            resp = await call  # completes during the drain
            assert resp.movie_count == 42
        await _line(proc, "TOY on_stop")
        await _line(proc, "TOY exit")
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_settings_fail_at_start_naming_the_variable() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECSYS_MAX_MESSAGE_BYTES": "lots"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"RECSYS_MAX_MESSAGE_BYTES" in out + err
    assert b"TOY port" not in out and b"Traceback" not in out + err
