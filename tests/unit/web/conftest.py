"""The web app against a fake gateway (an in-process grpc.aio server with canned data on 127.0.0.1:0)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import test_utils
from recsys_web.app import create_app
from recsys_web.settings import RecsysWebSettings
from recsys_web.testing import FakeGateway, start_fake_gateway


@dataclass
class Web:
    client: test_utils.TestClient  # type: ignore[type-arg]
    fake: FakeGateway
    settings: RecsysWebSettings

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
    """Factory: a web app (test client) on the fake gateway; keyword arguments are settings."""
    fake, port = fake_gateway
    clients: list[test_utils.TestClient] = []  # type: ignore[type-arg]

    async def make(**settings: Any) -> Web:
        settings.setdefault("gateway_target", f"127.0.0.1:{port}")
        settings.setdefault("cookie_secret", "test-secret")
        cfg = RecsysWebSettings(log_json=False, **settings)
        client = test_utils.TestClient(test_utils.TestServer(create_app(cfg)))
        await client.start_server()
        clients.append(client)
        return Web(client, fake, cfg)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def web(make_web: Callable[..., Awaitable[Web]]) -> Web:
    return await make_web()
