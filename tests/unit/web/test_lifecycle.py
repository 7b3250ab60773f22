"""The web process has the services' application shape (recsys_core.app.App): it waits for its
dependency (the gateway) before it is ready, re-checks it, and drains on stop."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from grpc_health.v1 import health_pb2
from recsys_core.testing import free_port
from recsys_web.gateway_client import SERVICE
from recsys_web.server import WebApp
from recsys_web.settings import RecsysWebSettings
from recsys_web.testing import FakeGateway, start_fake_gateway


async def _status(session: aiohttp.ClientSession, path: str) -> int:
    async with session.get(path) as resp:
        await resp.read()
        return resp.status


async def _until(session: aiohttp.ClientSession, path: str, status: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := await _status(session, path)) != status:
        assert time.monotonic() < deadline, f"{path} stayed {got}, wanted {status}"
        await asyncio.sleep(0.05)


async def test_readiness_follows_the_gateway_health_without_a_restart(web):
    await web.app.stop(0)  # the fixture's app checks every 2 s; this one every 0.1 s
    app = await WebApp.started(
        web.settings.model_copy(update={"health_check_interval_s": 0.1, "connect_retry_initial_s": 0.05})
    )
    try:
        await app.wait_ready(10)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{app.port}") as s:
            assert await _status(s, "/readyz") == 200
            for name in ("", SERVICE):
                await web.fake.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            await _until(s, "/readyz", 503)
            assert await _status(s, "/healthz") == 200  # alive: no restart wanted
            for name in ("", SERVICE):
                await web.fake.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            await _until(s, "/readyz", 200)
    finally:
        await app.stop(0)


async def test_not_ready_until_a_late_gateway_is_up():
    port = free_port()
    settings = RecsysWebSettings(
        gateway_target=f"127.0.0.1:{port}",
        port=0,
        log_json=False,
        connect_retry_initial_s=0.05,
        connect_retry_max_s=0.2,
        gateway_timeout_s=1.0,
    )
    app = await WebApp.started(settings)
    server = None
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{app.port}") as s:
            assert await _status(s, "/healthz") == 200
            assert await _status(s, "/readyz") == 503
            fake = FakeGateway()
            server, _ = await start_fake_gateway(fake, port=port)
            await app.wait_ready(15)
            assert await _status(s, "/readyz") == 200
            assert await _status(s, "/?seed=1") == 200
    finally:
        await app.stop(0)
        if server is not None:
            await server.stop(None)


async def test_stop_turns_unready_and_lets_an_open_request_finish(make_web):
    web = await make_web(grace_seconds=5.0)
    web.fake.delay_s = 0.5
    page = asyncio.ensure_future(web.client.get("/?seed=1"))
    await asyncio.sleep(0.2)  # the request is in the app, waiting on the gateway
    stopping = asyncio.ensure_future(web.app.stop())
    await asyncio.sleep(0.05)
    assert not web.app.server.serving
    resp = await page
    assert resp.status == 200 and "quiz" in (await resp.text()).lower()
    await stopping
    assert web.app.state.gateway is None  # the channel was closed after the drain
