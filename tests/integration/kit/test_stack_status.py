"""`recsys status` exits non-zero and names the service when one is NOT_SERVING (issue 16, item 2).

A fake stack: one grpc.aio server with the library health servicer bound on the four service
ports of a free port offset (never the default ports), the catalog NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from recsys_tools.stack import SERVICES


async def _fake_stack() -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    for _ in range(20):
        server = grpc.aio.server()
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        first = server.add_insecure_port("127.0.0.1:0")
        offset = first - SERVICES[0].port
        try:
            for svc in SERVICES[1:]:
                if server.add_insecure_port(f"127.0.0.1:{svc.port + offset}") == 0:
                    raise RuntimeError("port taken")
        except RuntimeError:
            await server.stop(0)
            continue
        if offset == 0:
            await server.stop(0)
            continue
        await server.start()
        return server, servicer, offset
    raise AssertionError("no free port offset")


async def _status(workdir: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recsys_tools.cli",
        "status",
        "--workdir",
        str(workdir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_status_nonzero_when_a_service_is_not_serving(tmp_path: Path) -> None:
    server, servicer, offset = await _fake_stack()
    try:
        (tmp_path / "stack.json").write_text(json.dumps({"pids": {}, "offset": offset}))
        for svc in SERVICES:
            await servicer.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
        rc, out, err = await _status(tmp_path)
        assert rc == 0, out + err

        await servicer.set("recsys.catalog.v1.Catalog", health_pb2.HealthCheckResponse.NOT_SERVING)
        rc, out, err = await _status(tmp_path)
        assert rc != 0, out + err
        assert "not SERVING: catalog (NOT_SERVING)" in err
        assert "gateway" not in err
    finally:
        await server.stop(0)
