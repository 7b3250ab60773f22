"""The web app against a fake gateway (an in-process grpc.aio server with canned data on 127.0.0.1:0)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from recsys_web.server import WebApp
from recsys_web.settings import RecsysWebSettings
from recsys_web.testing import FakeGateway, start_fake_gateway


@dataclass
class Web:
    client: aiohttp.ClientSession
    fake: FakeGateway
    settings: RecsysWebSettings
    app: WebApp

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kw)
        return resp.status, await resp.text()


@pytest.fixture
async def fake_gateway() -> AsyncIterator[tuple[FakeGateway, int]]:
    fake = FakeGateway()
    server, port = await start_fake_gateway(fake)
    yield fake, port
    await server.stop(None)


@pytest.fixture
async def make_web(fake_gateway: tuple[FakeGateway, int]) -> AsyncIterator[Callable[..., Awaitable[Web]]]:
    """Factory: the web process (``WebApp``, as ``python -m recsys_web`` runs it, on an ephemeral
    port) on the fake gateway, and an HTTP client for it; keyword arguments are settings. On the
    fake gateway it is ready before it is returned; with another ``gateway_target`` it is not
    waited for."""
    fake, port = fake_gateway
    made: list[Web] = []

    async def make(**settings: Any) -> Web:
        on_fake = "gateway_target" not in settings
        settings.setdefault("gateway_target", f"127.0.0.1:{port}")
        settings.setdefault("cookie_secret", "test-secret")
        cfg = RecsysWebSettings(log_json=False, port=0, **settings)
        app = await WebApp.started(cfg)
        if on_fake:
            await app.wait_ready(10)
        client = aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{app.port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        made.append(Web(client, fake, cfg, app))
        return made[-1]

    yield make
    for w in made:
        await w.client.close()
        await w.app.stop(0)


@pytest.fixture
async def web(make_web: Callable[..., Awaitable[Web]]) -> Web:
    return await make_web()
